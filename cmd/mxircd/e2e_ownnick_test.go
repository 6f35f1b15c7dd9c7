package main

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// ownNickGateway is a gateway with the default nick rule: a client is given
// the nick other users see the account under.
func ownNickGateway(t *testing.T, hs *testenv.Homeserver, driver string) *gateway {
	t.Helper()
	return startTestGateway(t, gatewayConfig(t, hs, driver, func(c *Config) { c.IRC.KeepClientNick = false }))
}

// A client that registers as "root" (WeeChat sends the Unix login) is
// renamed after the welcome to the nick other users see, made from the
// account's display name; its own lines carry that nick, and a Matrix
// user's "Nick:" line names it.
func TestOwnNickIsTheAccounts(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := ownNickGateway(t, hs, driver)
			alice, bob, room, channel := twoInARoom(t, hs, "ownnick")
			if err := alice.Client.SetDisplayName(ctxFor(t), "Alice Liddell"); err != nil {
				t.Fatal(err)
			}
			const want = "Alice_Liddell"

			c := connectWithCaps(t, g, "root", alice, "echo-message")
			m := c.ExpectMatch(t, isCmd("NICK"), "NICK after registration")
			if m.Prefix == nil || m.Prefix.Name != "root" || m.Param(0) != want {
				t.Fatalf("NICK line %s: want root renamed to %s", m, want)
			}
			c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")
			waitNames(t, c, channel, bob.Localpart)

			c.Send("PRIVMSG %s :hello", channel)
			echo := c.ExpectMatch(t, isCmd("PRIVMSG", channel, "hello"), "echo")
			if echo.Prefix == nil || echo.Prefix.Name != want {
				t.Errorf("echo %s: want it from %s", echo, want)
			}
			if _, err := bob.Client.SendText(ctxFor(t), room, want+": are you there?"); err != nil {
				t.Fatal(err)
			}
			got := c.ExpectMatch(t, isCmd("PRIVMSG", channel), "bob's line")
			if !strings.HasPrefix(got.Trailing(), want+": ") {
				t.Errorf("bob's line %s: want it to start with the client's nick %s", got, want)
			}

			// A client connecting to the running session is welcomed under
			// that nick at once, with no NICK after: irssi answers 001 with
			// "MODE <001's nick> +i", which got 502 for "root".
			c2 := testenv.DialIRC(t, g.ircAddr())
			c2.Send("PASS %s", alice.Password)
			c2.Send("NICK root")
			c2.Send("USER %s 0 * :test", alice.Localpart)
			welcome := c2.Expect(t, irc.RPL_WELCOME)
			if welcome.Param(0) != want {
				t.Errorf("001 %s: want it addressed to %s", welcome, want)
			}
			c2.Send("MODE %s +i", welcome.Param(0))
			for _, m := range linesUntilPong(t, c2, "after-mode") {
				if m.Command == "NICK" || m.Command == irc.ERR_USERSDONTMATCH {
					t.Errorf("after a welcome under the account's nick: %s", m)
				}
			}
		})
	}
}

// /nick after registration changes the account's display name, which a
// Matrix user sees, and the member event renames the client.
func TestOwnNickChangesDisplayName(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := ownNickGateway(t, hs, driver)
			alice, bob, room, channel := twoInARoom(t, hs, "ownnickchange")

			c := connectWithCaps(t, g, "root", alice)
			first := c.ExpectMatch(t, isCmd("NICK"), "NICK after registration").Param(0)
			if first == "root" || first == "" {
				t.Fatalf("client kept nick %q", first)
			}
			c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")
			waitNames(t, c, channel, bob.Localpart)

			c.Send("NICK Wonder")
			m := c.ExpectMatch(t, isCmd("NICK", "Wonder"), "NICK Wonder")
			if m.Prefix == nil || m.Prefix.Name != first {
				t.Errorf("NICK line %s: want it from %s", m, first)
			}
			bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
				if ev.Type != event.StateMember || ev.GetStateKey() != alice.UserID.String() {
					return false
				}
				_ = ev.Content.ParseRaw(ev.Type)
				return ev.Content.AsMember().Displayname == "Wonder"
			})

			// A nick a Matrix user here holds is refused and changes nothing.
			c.Send("NICK %s", bob.Localpart)
			if m := c.Expect(t, irc.ERR_NICKNAMEINUSE); m.Param(1) != bob.Localpart {
				t.Errorf("433 %s", m)
			}
		})
	}
}
