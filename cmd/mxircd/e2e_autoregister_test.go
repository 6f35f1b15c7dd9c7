package main

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// anonymous connects without a login and returns the client, the account
// the gateway registered for it and the password it was shown.
func anonymous(t *testing.T, g *gateway, nick string) (*testenv.IRCClient, id.UserID, string) {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :anonymous", nick)
	made := c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "a Matrix account was made for you: ")
	}, "the notice naming the account")
	_, user, _ := strings.Cut(made.Trailing(), "made for you: ")
	pw := c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && strings.HasPrefix(m.Trailing(), "Its password is ")
	}, "the notice with the password")
	password, _, _ := strings.Cut(strings.TrimPrefix(pw.Trailing(), "Its password is "), " ")
	c.Expect(t, irc.RPL_WELCOME)
	return c, id.UserID(user), password
}

// TestAutoRegister: a connection without a login gets an account of its
// own named after its nick, can join and talk as it, and can come back
// to it with the password it was shown; another connection with the same
// nick gets another account.
func TestAutoRegister(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.Enabled = true
			}))
			bob := hs.Register(t, "bob")
			aliasLocal := uniq("autoreg")
			room := createRoom(t, bob, aliasLocal, "")
			channel := "#" + aliasLocal + ":" + hs.ServerName
			nick := uniq("Anon")

			c1, user1, password := anonymous(t, g, nick)
			if want := strings.ToLower(nick); user1.Localpart() != want || user1.Homeserver() != hs.ServerName {
				t.Fatalf("registered %s, want @%s:%s", user1, want, hs.ServerName)
			}
			c1.Send("JOIN %s", channel)
			// The nick as typed is the account's display name, so the
			// client keeps it (the localpart is lower case).
			if join := c1.ExpectMatch(t, isCmd("JOIN", channel), "own JOIN"); join.Prefix.Name != nick {
				t.Errorf("own JOIN from %s, want the nick %s kept", join.Prefix, nick)
			}
			if resp, err := bob.Client.GetDisplayName(ctxFor(t), user1); err != nil || resp.DisplayName != nick {
				t.Errorf("display name of %s = %+v (%v), want %s", user1, resp, err, nick)
			}
			c1.Send("PRIVMSG %s :hello from nowhere", channel)
			bobSees(t, bob, room, user1, "hello from nowhere")

			// The same nick again, without a login, while the first holds
			// it: in use (433), and registration waits for another nick.
			dup := testenv.DialIRC(t, g.ircAddr())
			dup.Send("NICK %s", nick)
			dup.Send("USER %s 0 * :anonymous", nick)
			dup.Expect(t, irc.ERR_NICKNAMEINUSE)
			other := uniq("Other")
			dup.Send("NICK %s", other)
			if w := dup.Expect(t, irc.RPL_WELCOME); w.Param(0) != other {
				t.Errorf("001 = %s, want it for %s", w, other)
			}
			// Nor may it change to that nick once registered...
			dup.Send("NICK %s", nick)
			dup.Expect(t, irc.ERR_NICKNAMEINUSE)
			// ...until the holder changes nick, which frees the old one.
			moved := uniq("Moved")
			c1.Send("NICK %s", moved)
			c1.ExpectMatch(t, isCmd("NICK", moved), "the holder's NICK")
			dup.Send("NICK %s", nick)
			dup.ExpectMatch(t, isCmd("NICK", nick), "the freed nick taken")
			// A NICK to the nick one has is no change: nothing is said.
			dup.Send("NICK %s", nick)
			dup.Send("PING :same")
			dup.ExpectMatch(t, func(m *irc.Message) bool {
				if m.Command == "NICK" || m.Command == irc.ERR_NICKNAMEINUSE {
					t.Errorf("after NICK to the same nick: %s", m)
				}
				return m.Command == "PONG"
			}, "PONG")
			dup.Close()

			// Once the first has gone, the nick is free again, but not its
			// account: another one is made.
			c1.Close()
			var c2 *testenv.IRCClient
			var user2 id.UserID
			for deadline := time.Now().Add(20 * time.Second); ; {
				c := testenv.DialIRC(t, g.ircAddr())
				c.Send("NICK %s", nick)
				c.Send("USER %s 0 * :anonymous", nick)
				first := c.ExpectMatch(t, func(m *irc.Message) bool {
					return m.Command == irc.ERR_NICKNAMEINUSE || m.Command == "NOTICE" && strings.Contains(m.Trailing(), "made for you: ")
				}, "433 or the account notice")
				if first.Command == "NOTICE" {
					_, u, _ := strings.Cut(first.Trailing(), "made for you: ")
					c2, user2 = c, id.UserID(u)
					c2.Expect(t, irc.RPL_WELCOME)
					break
				}
				c.Close()
				if time.Now().After(deadline) {
					t.Fatalf("%s still in use 20s after its holder quit", nick)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if user2 == user1 || user2.Localpart() != strings.ToLower(nick)+"_2" {
				t.Fatalf("second anonymous %s got %s, want a %s_2 account of its own", nick, user2, strings.ToLower(nick))
			}
			c2.Close()

			// A nick with nothing a localpart can be made of is told so.
			odd := testenv.DialIRC(t, g.ircAddr())
			odd.Send("NICK []")
			odd.Send("USER odd 0 * :anonymous")
			odd.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "pick another nick")
			}, "the refusal of the nick")
			odd.Expect(t, "ERROR")

			// The password shown logs back in to the first account.
			c3 := connect(t, g, "whoever", &testenv.Account{UserID: user1, Password: password})
			c3.Send("PRIVMSG %s :back again", channel)
			bobSees(t, bob, room, user1, "back again")
		})
	}
}

// bobSees waits until acct sees a message from sender with body in room.
func bobSees(t *testing.T, acct *testenv.Account, room id.RoomID, sender id.UserID, body string) {
	t.Helper()
	acct.SyncUntil(t, ctxFor(t), func(resp *mautrix.RespSync) bool {
		for _, ev := range timeline(resp, room) {
			if ev.Type == event.EventMessage && ev.Sender == sender {
				_ = ev.Content.ParseRaw(ev.Type)
				if ev.Content.AsMessage().Body == body {
					return true
				}
			}
		}
		return false
	})
}

// TestAutoRegisterSharedSecret: with the homeserver's shared secret the
// account is registered through the admin API; with a wrong one the
// client is told in plain words and disconnected, and no account is made.
func TestAutoRegisterSharedSecret(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.Enabled = true
				cfg.AutoRegister.SharedSecret = testenv.RegistrationSharedSecret
			}))
			nick := uniq("Secret")
			c, user, password := anonymous(t, g, nick)
			if user.Localpart() != strings.ToLower(nick) {
				t.Fatalf("registered %s for %s", user, nick)
			}
			c.Close()
			connect(t, g, "whoever", &testenv.Account{UserID: user, Password: password}) // fails the test unless SASL logs in

			bad := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.Enabled = true
				cfg.AutoRegister.SharedSecret = "not the secret"
			}))
			nick = uniq("Refused")
			c = testenv.DialIRC(t, bad.ircAddr())
			c.Send("NICK %s", nick)
			c.Send("USER %s 0 * :anonymous", nick)
			refused := c.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "Could not make a Matrix account for you")
			}, "the refusal")
			if strings.Contains(refused.Trailing(), "{") || !strings.Contains(refused.Trailing(), "shared secret") {
				t.Errorf("refusal %q is not in plain words", refused.Trailing())
			}
			c.Expect(t, "ERROR")
			// Nothing was registered under that name.
			cli, err := mautrix.NewClient(hs.URL, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cli.RegisterAvailable(ctxFor(t), strings.ToLower(nick)); err != nil {
				t.Fatalf("the refused name was taken after all: %v", err)
			}
		})
	}
}
