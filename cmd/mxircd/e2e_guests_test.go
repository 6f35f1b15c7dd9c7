package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// guestGateway is a test gateway with [guests] on, changed by change.
func guestGateway(t *testing.T, hs *testenv.Homeserver, driver string, change func(*Config)) *gateway {
	t.Helper()
	return startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
		cfg.Guests.Enabled = true
		cfg.Guests.HistoryOnJoin = 5
		if change != nil {
			change(cfg)
		}
	}))
}

// createGuestRoom makes a room with an alias that lets guests in
// (m.room.guest_access can_join), public or invite-only by preset.
func createGuestRoom(t *testing.T, acct *testenv.Account, aliasLocal, preset string) id.RoomID {
	t.Helper()
	visibility := "private"
	if preset == "public_chat" {
		visibility = "public" // in the room directory
	}
	resp, err := acct.Client.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{
		RoomAliasName: aliasLocal, Preset: preset, Visibility: visibility,
		InitialState: []*event.Event{{
			Type:    event.StateGuestAccess,
			Content: event.Content{Parsed: &event.GuestAccessEventContent{GuestAccess: event.GuestAccessCanJoin}},
		}},
	})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	return resp.RoomID
}

// lurk connects without a login and returns the client and the guest
// nick the gateway gave it.
func lurk(t *testing.T, g *gateway, nick string, caps ...string) (*testenv.IRCClient, string) {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	if len(caps) > 0 {
		c.Send("CAP LS 302")
		c.Send("CAP REQ :%s", strings.Join(caps, " "))
		c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
		c.Send("CAP END")
	}
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :lurker", nick)
	welcome := c.Expect(t, irc.RPL_WELCOME)
	guest := welcome.Params[0]
	if !strings.HasPrefix(guest, "Guest") || guest == nick {
		t.Fatalf("welcomed as %q, want a guest nick", guest)
	}
	c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "connected as a guest")
	}, "the guest greeting")
	return c, guest
}

func expectText(t *testing.T, c *testenv.IRCClient, command, target, text string) *irc.Message {
	t.Helper()
	return c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == command && m.Param(0) == target && strings.Contains(m.Trailing(), text)
	}, fmt.Sprintf("%s %s containing %q", command, target, text))
}

// Issue 16: connections without a login read public rooms through one
// shared guest session, cannot talk, see the real members only, and turn
// into their account's session when they log in.
func TestGuestsLurk(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := guestGateway(t, hs, driver, func(cfg *Config) { cfg.Guests.MaxChannels = 2 })
			bob, alice := hs.Register(t, "bob"), hs.Register(t, "alice")
			aliasLocal := uniq("lurk")
			room := createGuestRoom(t, bob, aliasLocal, "public_chat")
			channel := "#" + aliasLocal + ":" + hs.ServerName
			privLocal := uniq("closed")
			createGuestRoom(t, bob, privLocal, "private_chat")
			aliceRoom := createRoom(t, alice, uniq("alices"), "")
			say(t, bob, room, "said before any lurker came")

			l1, guest1 := lurk(t, g, "reader")
			l2, guest2 := lurk(t, g, "reader")
			if guest1 == guest2 {
				t.Fatalf("both lurkers are %s", guest1)
			}
			l3, guest3 := lurk(t, g, "reader", "extended-join")
			for i, l := range []*testenv.IRCClient{l1, l2, l3} {
				l.Send("JOIN %s", channel)
				// Its own JOIN, then the room's recent messages.
				join := l.ExpectMatch(t, isCmd("JOIN", channel), "own JOIN")
				if own := []string{guest1, guest2, guest3}[i]; join.Prefix.Name != own {
					t.Fatalf("lurker %s was shown the JOIN of %s", own, join.Prefix)
				}
				expectText(t, l, "PRIVMSG", channel, "said before any lurker came")
			}
			// Lines depend on what each client asked for.
			carol := hs.Register(t, "carol")
			joinRoom(t, carol, room)
			plain := l1.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && m.Prefix.Name == carol.Localpart }, "carol's JOIN")
			extended := l3.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && m.Prefix.Name == carol.Localpart }, "carol's extended JOIN")
			if len(plain.Params) != 1 || len(extended.Params) != 3 || extended.Params[1] != carol.UserID.String() {
				t.Fatalf("JOIN without extended-join %v, with it %v", plain, extended)
			}
			if _, err := carol.Client.LeaveRoom(ctxFor(t), room); err != nil {
				t.Fatal(err)
			}
			l3.ExpectMatch(t, isCmd("PART", channel), "carol's PART")
			l3.Close()

			// The homeserver sees one membership for both lurkers.
			members, err := bob.Client.JoinedMembers(ctxFor(t), room)
			if err != nil {
				t.Fatal(err)
			}
			if len(members.Joined) != 2 {
				t.Fatalf("room members on Matrix: %v; want bob and one guest", members.Joined)
			}
			metricsURL := httptest.NewServer(g.metrics.Handler(slog.Default()))
			defer metricsURL.Close()
			families := scrape(t, metricsURL.URL)
			if v, _ := sample(families, "mxircd_lurkers"); v != 2 {
				t.Errorf("mxircd_lurkers = %v, want 2", v)
			}
			if v, ok := sample(families, "mxircd_attached_clients"); v != 0 || !ok {
				t.Errorf("mxircd_attached_clients = %v (%v), want 0: lurkers are not attached clients", v, ok)
			}

			say(t, bob, room, "live for every reader")
			for _, l := range []*testenv.IRCClient{l1, l2} {
				expectText(t, l, "PRIVMSG", channel, "live for every reader")
			}

			// Reading only: messages and topic changes are refused with
			// how to log in; nothing reaches Matrix.
			l1.Send("PRIVMSG %s :let me in", channel)
			refused := l1.ExpectMatch(t, isCmd(irc.ERR_CANNOTSENDTOCHAN), "404")
			if !strings.Contains(refused.Trailing(), "IDENTIFY") || !strings.Contains(refused.Trailing(), "SASL") {
				t.Errorf("the refusal does not say how to log in: %s", refused)
			}
			l1.Send("TOPIC %s :new topic", channel)
			topic := l1.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "cannot change the topic")
			}, "TOPIC refused")
			if !strings.Contains(topic.Trailing(), "IDENTIFY") {
				t.Errorf("the refusal does not say how to log in: %s", topic)
			}

			// NAMES: the real members and the lurker itself, never the
			// other lurker.
			l1.Send("NAMES %s", channel)
			names := l1.ExpectMatch(t, isCmd(irc.RPL_NAMREPLY), "353").Trailing()
			fields := strings.Fields(strings.NewReplacer("@", "", "+", "").Replace(names))
			has := func(nick string) bool {
				for _, f := range fields {
					if f == nick {
						return true
					}
				}
				return false
			}
			if !has(bob.Localpart) || !has(guest1) || has(guest2) || len(fields) != 2 {
				t.Errorf("NAMES for %s = %q; want bob (%s) and itself only", guest1, names, bob.Localpart)
			}

			// Queries are fine.
			l1.Send("MODE %s", channel)
			l1.ExpectMatch(t, isCmd(irc.RPL_CHANNELMODEIS), "324")
			l1.Send("MODE %s b", channel) // the ban list, as some clients ask on joining
			l1.ExpectMatch(t, isCmd(irc.RPL_ENDOFBANLIST), "368")
			l1.Send("MODE %s +m", channel)
			l1.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "cannot change modes")
			}, "MODE +m refused")
			l1.Send("LIST %s", aliasLocal)
			l1.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == irc.RPL_LIST && m.Param(1) == channel }, "LIST of the room")
			l1.ExpectMatch(t, isCmd(irc.RPL_LISTEND), "323")

			// Invite-only rooms are not for guests.
			l1.Send("JOIN #%s:%s", privLocal, hs.ServerName)
			closed := l1.ExpectMatch(t, isCmd(irc.ERR_INVITEONLYCHAN), "473")
			if !strings.Contains(closed.Trailing(), "log in") {
				t.Errorf("473 does not say to log in: %s", closed)
			}

			// The second lurker logs in on the same connection: it parts
			// what it read, then gets its account's rooms.
			l2.Send("PRIVMSG mxircd :IDENTIFY %s %s", alice.UserID, alice.Password)
			l2.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "PART" && m.Param(0) == channel && m.Prefix != nil && m.Prefix.Name == guest2
			}, "PART of the lurk channel")
			aliceChannel := l2.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" }, "the account's JOIN burst")
			if aliceChannel.Param(0) == channel {
				t.Fatalf("after login, the lurk channel came back: %s", aliceChannel)
			}
			l2.Send("PRIVMSG %s :logged in now", aliceChannel.Param(0))
			ev := alice.WaitForEvent(t, ctxFor(t), aliceRoom, func(e *event.Event) bool {
				return e.Type == event.EventMessage && e.Sender == alice.UserID
			})
			if body := ev.Content.AsMessage().Body; body != "logged in now" {
				t.Errorf("alice's room got %q", body)
			}
			if n, c := g.sessions.Lurkers(), g.sessions.AttachedClients(); n != 1 || c != 1 {
				t.Errorf("after one logged in: %d lurkers, %d attached clients; want 1 and 1", n, c)
			}

			// The shared guest session has no encryption: no device keys,
			// where a logged-in account's gateway device has them.
			guestUser, _ := g.store.InitSetting(ctxFor(t), "guest_account", "")
			keys, err := bob.Client.QueryKeys(ctxFor(t), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{
				id.UserID(guestUser): {}, alice.UserID: {}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(keys.DeviceKeys[id.UserID(guestUser)]) != 0 || len(keys.DeviceKeys[alice.UserID]) == 0 {
				t.Errorf("device keys: guest %s has %d, alice %d; want none and some",
					guestUser, len(keys.DeviceKeys[id.UserID(guestUser)]), len(keys.DeviceKeys[alice.UserID]))
			}

			// The other lurker reads on.
			say(t, bob, room, "still reading")
			expectText(t, l1, "PRIVMSG", channel, "still reading")

			// PART leaves the shared session in the room; JOIN again
			// enters at once.
			l1.Send("PART %s", channel)
			l1.ExpectMatch(t, isCmd("PART", channel), "PART")
			if members, err := bob.Client.JoinedMembers(ctxFor(t), room); err != nil || len(members.Joined) != 2 {
				t.Fatalf("after the lurker parted, members on Matrix: %v (%v); want bob and the guest", members, err)
			}
			l1.Send("JOIN %s", channel)
			l1.ExpectMatch(t, isCmd("JOIN", channel), "JOIN again")

			// Until the room is no longer public.
			if _, err := bob.Client.SendStateEvent(ctxFor(t), room, event.StateJoinRules, "",
				&event.JoinRulesEventContent{JoinRule: event.JoinRuleInvite}); err != nil {
				t.Fatal(err)
			}
			part := l1.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "PART" && m.Param(0) == channel && m.Prefix != nil && m.Prefix.Name == guest1
			}, "PART when the room turned invite-only")
			if !strings.Contains(part.Trailing(), "no longer public") {
				t.Errorf("PART reason %q", part.Trailing())
			}
			// What is said there afterwards reaches it no more: a line
			// said later in another room it reads comes, that one not.
			otherLocal := uniq("other")
			other := createGuestRoom(t, bob, otherLocal, "public_chat")
			l1.Send("JOIN #%s:%s", otherLocal, hs.ServerName)
			l1.ExpectMatch(t, isCmd("JOIN", "#"+otherLocal+":"+hs.ServerName), "JOIN of another room")
			say(t, bob, room, "now private")
			say(t, bob, other, "marker")
			seen := []string{}
			l1.ExpectMatch(t, func(m *irc.Message) bool {
				seen = append(seen, m.String())
				return m.Command == "PRIVMSG" && m.Trailing() == "marker"
			}, "marker")
			for _, m := range l1.Drain(t) {
				seen = append(seen, m.String())
			}
			for _, line := range seen {
				if strings.Contains(line, "now private") {
					t.Fatalf("a lurker read a room after it turned invite-only: %s", line)
				}
			}

			// guests.max_channels (2 here): the lurker reads the other
			// room; it may join one more, not two.
			thirdLocal, fourthLocal := uniq("third"), uniq("fourth")
			createGuestRoom(t, bob, thirdLocal, "public_chat")
			createGuestRoom(t, bob, fourthLocal, "public_chat")
			l1.Send("JOIN #%s:%s", thirdLocal, hs.ServerName)
			l1.ExpectMatch(t, isCmd("JOIN", "#"+thirdLocal+":"+hs.ServerName), "JOIN of a second room")
			l1.Send("JOIN #%s:%s", fourthLocal, hs.ServerName)
			full := l1.ExpectMatch(t, isCmd(irc.ERR_TOOMANYCHANNELS), "405")
			if !strings.Contains(full.Trailing(), "PART one first, or log in") {
				t.Errorf("405 says %q", full.Trailing())
			}

			// WHOIS names only the channels the lurker reads, not the
			// shared session's others (the first room, which it left).
			l1.Send("WHOIS %s", bob.Localpart)
			whois := l1.ExpectMatch(t, isCmd(irc.RPL_WHOISCHANNELS), "319").Trailing()
			if !strings.Contains(whois, otherLocal) || !strings.Contains(whois, thirdLocal) || strings.Contains(whois, aliasLocal) {
				t.Errorf("WHOIS channels %q; want the two it reads only", whois)
			}
		})
	}
}

// Issue 16: an idle lurker is dropped (PING and PONG do not count), and
// lurkers count towards the per-address connection cap.
func TestGuestsIdleAndCapped(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := guestGateway(t, hs, driver, func(cfg *Config) {
				cfg.Guests.IdleTimeout = Duration{2 * time.Second}
				cfg.IRC.MaxConnectionsPerAddress = 2
				cfg.IRC.LimitExempt = nil
			})
			first, _ := lurk(t, g, "idle")
			second, _ := lurk(t, g, "idle")
			third, err := net.Dial("tcp", g.ircAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer third.Close()
			third.SetReadDeadline(time.Now().Add(20 * time.Second))
			all, _ := io.ReadAll(third)
			if !strings.HasPrefix(string(all), "ERROR :Closing link: too many connections from your address") {
				t.Fatalf("a third lurker from one address got %q", all)
			}

			// first only answers pings; second keeps reading.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(300 * time.Millisecond):
						first.Send("PING :alive")
						second.Send("NAMES")
					}
				}
			}()
			lines := first.ExpectClosed(t)
			last := lines[len(lines)-1]
			if last.Command != "ERROR" || !strings.Contains(last.Trailing(), "Idle guest") {
				t.Fatalf("idle lurker closed with %v", last)
			}
			second.Drain(t) // still connected
		})
	}
}

// Issue 16: the guests' account is kept in the store and used again by the
// next gateway; one the homeserver no longer takes is replaced by a newly
// registered guest.
func TestGuestsStoredAccount(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			bob := hs.Register(t, "bob")
			aliasLocal := uniq("relurk")
			room := createGuestRoom(t, bob, aliasLocal, "public_chat")
			channel := "#" + aliasLocal + ":" + hs.ServerName

			reg, err := mautrix.NewClient(hs.URL, "", "")
			if err != nil {
				t.Fatal(err)
			}
			known, _, err := reg.RegisterGuest(ctxFor(t), &mautrix.ReqRegister[any]{})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name, token string
				reused      bool
			}{
				{"kept", known.AccessToken, true},
				{"refused", "not-a-token", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := gatewayConfig(t, hs, driver, func(cfg *Config) { cfg.Guests.Enabled = true })
					st, err := store.Open(ctxFor(t), store.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN})
					if err != nil {
						t.Fatal(err)
					}
					off := false
					if err := st.PutAccount(ctxFor(t), &store.Account{UserID: known.UserID, Homeserver: hs.URL,
						DeviceID: known.DeviceID.String(), AccessToken: tc.token, AlwaysOn: &off}); err != nil {
						t.Fatal(err)
					}
					if err := st.PutSetting(ctxFor(t), "guest_account", known.UserID.String()); err != nil {
						t.Fatal(err)
					}
					st.Close()
					g := startTestGateway(t, cfg)

					l, _ := lurk(t, g, "reader")
					l.Send("JOIN %s", channel)
					l.ExpectMatch(t, isCmd("JOIN", channel), "JOIN")
					say(t, bob, room, "to the guest "+tc.name)
					expectText(t, l, "PRIVMSG", channel, "to the guest "+tc.name)
					defer func() {
						// The shared session ends with its last lurker.
						l.Send("QUIT")
						l.ExpectClosed(t)
						for deadline := time.Now().Add(20 * time.Second); g.sessions.SessionCount() > 0; time.Sleep(50 * time.Millisecond) {
							if time.Now().After(deadline) {
								t.Fatalf("%d sessions still running after the last lurker left", g.sessions.SessionCount())
							}
						}
					}()
					members, err := bob.Client.JoinedMembers(ctxFor(t), room)
					if err != nil {
						t.Fatal(err)
					}
					stored, _ := g.store.InitSetting(ctxFor(t), "guest_account", "")
					_, member := members.Joined[id.UserID(stored)]
					if reused := stored == known.UserID.String(); reused != tc.reused || !member {
						t.Fatalf("stored guest %q (the seeded one: %s; a member of the room: %v), want reused = %v", stored, known.UserID, member, tc.reused)
					}
				})
			}
		})
	}
}
