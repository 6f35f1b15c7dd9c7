package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// createRoom makes a public room with an alias and topic as acct.
func createRoom(t *testing.T, acct *testenv.Account, aliasLocal, topic string) id.RoomID {
	t.Helper()
	resp, err := acct.Client.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{
		RoomAliasName: aliasLocal, Topic: topic, Preset: "public_chat",
	})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	return resp.RoomID
}

// twoInARoom registers alice and bob in a fresh room with an alias that
// alice created (so she is its op) and bob joined.
func twoInARoom(t *testing.T, hs *testenv.Homeserver, prefix string) (alice, bob *testenv.Account, room id.RoomID, channel string) {
	t.Helper()
	alice, bob = hs.Register(t, "alice"), hs.Register(t, "bob")
	aliasLocal := uniq(prefix)
	room = createRoom(t, alice, aliasLocal, "")
	joinRoom(t, bob, room)
	return alice, bob, room, "#" + aliasLocal + ":" + hs.ServerName
}

func joinRoom(t *testing.T, acct *testenv.Account, room id.RoomID) {
	t.Helper()
	if _, err := acct.Client.JoinRoom(ctxFor(t), room.String(), nil); err != nil {
		t.Fatalf("%s joins %s: %v", acct.UserID, room, err)
	}
}

// uniq makes alias localparts that never collide between tests sharing a
// homeserver.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d%d", prefix, time.Now().UnixNano()%1e9, uniqSeq.Add(1))
}

var uniqSeq atomic.Int64

// A person logs in with SASL and sees the welcome, ISUPPORT, the MOTD and
// every room they are in, with topic and names.
func TestConnectBurst(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice := hs.Register(t, "alice")
		bob := hs.Register(t, "bob")
		aliasLocal := uniq("burst")
		room := createRoom(t, alice, aliasLocal, "Talk about bursts")
		joinRoom(t, bob, room)
		bare := createRoom(t, alice, "", "")

		c := connect(t, g, "alice", alice)
		isupport := map[string]bool{}
		c.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == irc.RPL_ISUPPORT {
				for _, tok := range m.Params[1 : len(m.Params)-1] {
					name, _, _ := strings.Cut(tok, "=")
					isupport[name] = true
				}
			}
			return m.Command == irc.RPL_ENDOFMOTD
		}, "end of MOTD")
		for _, tok := range []string{"CASEMAPPING", "CHANTYPES", "PREFIX", "CHANMODES", "NETWORK", "UTF8ONLY", "LINELEN"} {
			if !isupport[tok] {
				t.Errorf("ISUPPORT lacks %s", tok)
			}
		}

		channel := "#" + aliasLocal + ":" + hs.ServerName
		bursts := map[string][]*irc.Message{}
		for len(bursts) < 2 || !hasEnd(bursts) {
			m := c.ExpectMatch(t, func(*irc.Message) bool { return true }, "burst line")
			var ch string
			switch m.Command {
			case "JOIN":
				ch = m.Param(0)
				if m.Prefix.Name != "alice" {
					t.Fatalf("JOIN from %q, want own nick: %s", m.Prefix.Name, m)
				}
			case irc.RPL_TOPIC, "333", irc.RPL_NAMREPLY, irc.RPL_ENDOFNAMES:
				ch = m.Param(1)
				if m.Command == irc.RPL_NAMREPLY {
					ch = m.Param(2)
				}
			default:
				continue
			}
			bursts[ch] = append(bursts[ch], m)
		}
		aliasBurst := bursts[channel]
		if len(aliasBurst) < 5 {
			t.Fatalf("burst for %s: %v", channel, aliasBurst)
		}
		if got := aliasBurst[1]; got.Command != irc.RPL_TOPIC || got.Trailing() != "Talk about bursts" {
			t.Errorf("332 = %s", got)
		}
		if got := aliasBurst[2]; got.Command != "333" || got.Param(2) != "@alice" && !strings.HasPrefix(got.Param(2), "alice") {
			t.Errorf("333 = %s", got)
		}
		names := aliasBurst[3]
		bobNick := bob.Localpart
		if !strings.Contains(" "+names.Trailing()+" ", " "+bobNick+" ") || !strings.Contains(names.Trailing(), "@alice") {
			t.Errorf("353 = %s, want @alice (creator is op) and %s", names, bobNick)
		}
		if _, ok := bursts[bare.String()]; !ok {
			t.Errorf("room without alias not shown as its ID %s; bursts: %v", bare, keys(bursts))
		}
	})
}

func hasEnd(bursts map[string][]*irc.Message) bool {
	for _, ms := range bursts {
		if ms[len(ms)-1].Command != irc.RPL_ENDOFNAMES {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// PASS with the account in USER logs in too.
func TestLoginWithPASS(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice := hs.Register(t, "alice")
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("PASS :%s", alice.Password)
	c.Send("NICK al")
	c.Send("USER %s 0 * :Alice", alice.Localpart) // bare localpart: matrix.server_name applies
	c.Expect(t, irc.RPL_WELCOME)
}

// A wrong password is refused with 904, changes nothing, and the client may
// try again on the same connection.
func TestWrongPasswordSASL(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice := hs.Register(t, "alice")
	wrongPassword := alice.Password + "x"

	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("CAP LS 302")
	c.Send("NICK alice")
	c.Send("USER a 0 * :a")
	c.Send("CAP REQ :sasl")
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
	sendPlain(c, alice.UserID.String(), wrongPassword)
	c.Expect(t, irc.ERR_SASLFAIL)
	if n := g.sessions.SessionCount(); n != 0 {
		t.Errorf("a failed login left %d sessions", n)
	}
	sendPlain(c, alice.UserID.String(), alice.Password)
	c.Expect(t, irc.RPL_SASLSUCCESS)
	c.Send("CAP END")
	c.Expect(t, irc.RPL_WELCOME)

	// Once a token is stored, a wrong password is still refused: the stored
	// verifier does not match and the homeserver says no.
	c2 := testenv.DialIRC(t, g.ircAddr())
	c2.Send("CAP REQ :sasl")
	c2.Send("NICK alice2")
	c2.Send("USER a 0 * :a")
	sendPlain(c2, alice.UserID.String(), wrongPassword)
	c2.Expect(t, irc.ERR_SASLFAIL)
}

func sendPlain(c *testenv.IRCClient, account, password string) {
	c.Send("AUTHENTICATE PLAIN")
	c.Send("AUTHENTICATE %s", b64("\x00"+account+"\x00"+password))
}

// A wrong PASS gets 464 and the connection ends.
func TestWrongPasswordPASS(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice := hs.Register(t, "alice")
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("PASS wrong-password")
	c.Send("NICK alice")
	c.Send("USER %s 0 * :a", alice.UserID)
	c.Expect(t, irc.ERR_PASSWDMISMATCH)
	c.ExpectClosed(t)
}

// Reconnecting reuses the gateway's device: five connections, one device.
// A token the homeserver revokes ends the always-on session, and the next
// login is a fresh one on the same device.
func TestOneDevicePerAccount(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice := hs.Register(t, "alice")
		for i := 0; i < 5; i++ {
			c := connect(t, g, "alice", alice)
			c.Drain(t)
			c.Send("QUIT :bye")
			c.ExpectClosed(t)
		}
		devices := gatewayDevices(t, alice)
		if len(devices) != 1 {
			t.Fatalf("gateway devices after 5 connections: %v, want exactly one", devices)
		}

		// Log the gateway's device out behind its back.
		acct, err := g.store.Account(ctxFor(t), alice.UserID)
		if err != nil {
			t.Fatal(err)
		}
		stale, _ := mautrix.NewClient(hs.URL, alice.UserID, acct.AccessToken)
		if _, err := stale.Logout(ctxFor(t)); err != nil {
			t.Fatalf("logout: %v", err)
		}
		waitNoSession(t, g)
		c := connect(t, g, "alice", alice)
		c.Drain(t)
		if devices := gatewayDevices(t, alice); len(devices) != 1 {
			t.Fatalf("gateway devices after relogin: %v", devices)
		}
	})
}

// alwaysOff turns always-on off for the client's account, so that its
// session ends with its last client.
func alwaysOff(t *testing.T, c *testenv.IRCClient) {
	t.Helper()
	c.Send("ALWAYSON OFF")
	c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "Always-on is now off")
	}, "ALWAYSON OFF confirmed")
}

func waitNoSession(t *testing.T, g *gateway) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.sessions.SessionCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("session still running after its clients left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gatewayDevices(t *testing.T, acct *testenv.Account) []id.DeviceID {
	t.Helper()
	resp, err := acct.Client.GetDevicesInfo(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []id.DeviceID
	for _, d := range resp.Devices {
		if d.DeviceID != acct.Client.DeviceID {
			out = append(out, d.DeviceID)
		}
	}
	return out
}

// Messages go both ways: Matrix text, notices and emotes arrive as PRIVMSG,
// NOTICE and ACTION; IRC PRIVMSG, NOTICE and ACTION become m.text, m.notice
// and m.emote, and are not echoed back to the sender.
func TestMessagesBothWays(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "chat")

		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "end of names")
		c.Drain(t)

		ctx := ctxFor(t)
		send := func(content *event.MessageEventContent) {
			if _, err := bob.Client.SendMessageEvent(ctx, room, event.EventMessage, content); err != nil {
				t.Fatal(err)
			}
		}
		send(&event.MessageEventContent{MsgType: event.MsgText, Body: "hello from matrix"})
		m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "hello from matrix")
		if m.Param(0) != channel || m.Prefix.User != bob.Localpart || m.Prefix.Host != hs.ServerName {
			t.Errorf("PRIVMSG = %s", m)
		}
		if len(m.Tags) != 0 {
			t.Errorf("tags sent without message-tags/server-time: %s", m)
		}
		send(&event.MessageEventContent{MsgType: event.MsgNotice, Body: "a notice"})
		expectFrom(t, c, "NOTICE", bob.Localpart, "a notice")
		send(&event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves"})
		m = expectFrom(t, c, "PRIVMSG", bob.Localpart, "waves")
		if m.Trailing() != "\x01ACTION waves\x01" {
			t.Errorf("emote = %q", m.Trailing())
		}
		send(&event.MessageEventContent{MsgType: event.MsgText, Body: "line one\nline two"})
		expectFrom(t, c, "PRIVMSG", bob.Localpart, "line one")
		expectFrom(t, c, "PRIVMSG", bob.Localpart, "line two")

		long := strings.Repeat("abcdefghi ", 300)
		send(&event.MessageEventContent{MsgType: event.MsgText, Body: long + "END"})
		var got []string
		for len(got) == 0 || !strings.HasSuffix(got[len(got)-1], "END") {
			m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "")
			if n := len(m.String()) + 2; n > 512 {
				t.Fatalf("line of %d bytes: %s", n, m)
			}
			got = append(got, m.Trailing())
			if len(got) > 20 {
				t.Fatal("long message never ended")
			}
		}
		if joined := strings.Join(got, " "); joined != long+"END" {
			t.Errorf("long message split into %d lines lost text: %q", len(got), joined)
		}

		c.Send("PRIVMSG %s :hello from irc", channel)
		c.Send("NOTICE %s :irc notice", channel)
		c.Send("PRIVMSG %s :\x01ACTION dances\x01", channel)
		want := []struct {
			msgType event.MessageType
			body    string
		}{{event.MsgText, "hello from irc"}, {event.MsgNotice, "irc notice"}, {event.MsgEmote, "dances"}}
		// One sync can carry several of them, so collect across responses.
		var fromIRC []*event.Event
		bob.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
			for _, ev := range timeline(resp, room) {
				if ev.Type == event.EventMessage && ev.Sender == alice.UserID {
					ev.Content.ParseRaw(ev.Type)
					fromIRC = append(fromIRC, ev)
				}
			}
			return len(fromIRC) >= len(want)
		})
		for i, w := range want {
			if c := fromIRC[i].Content.AsMessage(); c.MsgType != w.msgType || c.Body != w.body {
				t.Errorf("bob got %s %q, want %s %q", c.MsgType, c.Body, w.msgType, w.body)
			}
		}
		// Our own messages do not come back to us (no echo-message yet).
		for _, m := range c.Drain(t) {
			if m.Command == "PRIVMSG" && m.Prefix.Name == "alice" {
				t.Errorf("own message echoed: %s", m)
			}
		}
	})
}

// JOIN of a new alias on the account's server creates the room; others
// joining, setting topics, leaving and being kicked show as IRC lines; TOPIC
// and PART from IRC act on Matrix.
func TestChannelLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice := hs.Register(t, "alice")
		bob := hs.Register(t, "bob")
		c := connect(t, g, "alice", alice)
		c.Drain(t)
		ctx := ctxFor(t)

		aliasLocal := uniq("new")
		channel := "#" + aliasLocal + ":" + hs.ServerName
		c.Send("JOIN %s", channel)
		c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN "+channel)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "end of names")
		resolved, err := bob.Client.ResolveAlias(ctx, id.RoomAlias(channel))
		if err != nil {
			t.Fatalf("the room JOIN created has no alias: %v", err)
		}
		room := resolved.RoomID

		joinRoom(t, bob, room)
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "JOIN" && m.Prefix.Name == bob.Localpart && m.Param(0) == channel
		}, "bob's JOIN")

		c.Send("TOPIC %s :set from irc", channel)
		c.ExpectMatch(t, isCmd("TOPIC", channel, "set from irc"), "TOPIC echo")
		bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
			return ev.Type == event.StateTopic && ev.Content.AsTopic().Topic == "set from irc"
		})
		c.Send("TOPIC %s", channel)
		c.ExpectMatch(t, isCmd(irc.RPL_TOPIC, "alice", channel, "set from irc"), "332")

		// In a public_chat room the topic needs power level 50: bob, on IRC
		// too, is refused with 482 and the topic stays.
		cb := connect(t, g, "bob", bob)
		cb.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "bob", channel), "bob's burst")
		cb.Send("TOPIC %s :bob's topic", channel)
		cb.ExpectMatch(t, isCmd(irc.ERR_CHANOPRIVSNEEDED, "bob", channel), "482 for bob")
		cb.Send("QUIT")
		cb.ExpectClosed(t)

		if _, err := alice.Client.SendStateEvent(ctx, room, event.StateTopic, "", &event.TopicEventContent{Topic: "from element"}); err != nil {
			t.Fatal(err)
		}
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "TOPIC" && m.Param(1) == "from element"
		}, "TOPIC from the other client")

		if _, err := bob.Client.LeaveRoom(ctx, room, &mautrix.ReqLeave{Reason: "off"}); err != nil {
			t.Fatal(err)
		}
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "PART" && m.Prefix.Name == bob.Localpart && m.Param(0) == channel
		}, "bob's PART")

		joinRoom(t, bob, room)
		c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && m.Prefix.Name == bob.Localpart }, "bob rejoins")
		if _, err := alice.Client.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "behave"}); err != nil {
			t.Fatal(err)
		}
		m := c.ExpectMatch(t, isCmd("KICK", channel, bob.Localpart), "KICK of bob")
		if m.Prefix.Name != "alice" || m.Param(2) != "behave" {
			t.Errorf("KICK = %s", m)
		}

		c.Send("PART %s :done here", channel)
		c.ExpectMatch(t, isCmd("PART", channel), "own PART")
		joined, err := alice.Client.JoinedRooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range joined.JoinedRooms {
			if r == room {
				t.Fatal("PART did not leave the Matrix room")
			}
		}
		// The room still exists: 404 (only members send), not 403.
		c.Send("PRIVMSG %s :still here?", channel)
		c.ExpectMatch(t, isCmd(irc.ERR_CANNOTSENDTOCHAN, "alice", channel), "404 after PART")
		missing := "#" + uniq("nothing") + ":" + hs.ServerName
		c.Send("PRIVMSG %s :anyone?", missing)
		c.ExpectMatch(t, isCmd(irc.ERR_NOSUCHCHANNEL, "alice", missing), "403 for a room nobody has")
	})
}

// Rooms joined or left from another Matrix client appear and disappear;
// JOIN by room ID works; joining what does not exist gets 403.
func TestRoomsFromElsewhere(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice := hs.Register(t, "alice")
	bob := hs.Register(t, "bob")
	c := connect(t, g, "alice", alice)
	c.Drain(t)
	ctx := ctxFor(t)

	aliasLocal := uniq("elsewhere")
	room := createRoom(t, bob, aliasLocal, "bob's room")
	channel := "#" + aliasLocal + ":" + hs.ServerName
	joinRoom(t, alice, room)
	c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst for a room joined elsewhere")
	c.ExpectMatch(t, isCmd(irc.RPL_TOPIC, "alice", channel, "bob's room"), "its topic")
	c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "its names")

	if _, err := alice.Client.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "PART" && m.Prefix.Name == "alice" && m.Param(0) == channel
	}, "PART for a room left elsewhere")

	// By room ID: the channel keeps its alias name.
	c.Send("JOIN %s", room)
	c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN by room ID")

	c.Send("JOIN #%s:%s", uniq("nosuch"), "example.invalid")
	c.Expect(t, irc.ERR_NOSUCHCHANNEL)
	c.Send("JOIN #:nolocalpart")
	c.Expect(t, irc.ERR_NOSUCHCHANNEL)
}

// NAMES, WHO, WHOIS and MODE answer from the session's state; nicks that
// would collide with the client's own get their server part.
func TestLookups(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bob, _, channel := twoInARoom(t, hs, "lookup")

	// alice takes bob's localpart as her nick, so bob must be shown as
	// localpart:server.
	c := connect(t, g, bob.Localpart, alice)
	c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, bob.Localpart, channel), "burst")
	bobNick := bob.Localpart + ":" + hs.ServerName

	names := waitNames(t, c, channel, bobNick)
	if got := strings.Fields(names.Trailing()); len(got) != 2 || !contains(got, "@"+bob.Localpart) || !contains(got, bobNick) {
		t.Errorf("NAMES = %q, want @%s (own nick, op) and %s", names.Trailing(), bob.Localpart, bobNick)
	}

	c.Send("WHO %s", channel)
	var who []*irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == irc.RPL_WHOREPLY {
			who = append(who, m)
		}
		return m.Command == irc.RPL_ENDOFWHO
	}, "315")
	if len(who) != 2 {
		t.Errorf("WHO gave %d lines", len(who))
	}

	// A mask lists those one shares a room with whose nick (or
	// nick!user@host) matches it; a user of the server sharing no room
	// is found by nick; someone who does not exist, not at all.
	whoList := func(mask string) []string {
		t.Helper()
		c.Send("WHO %s", mask)
		var nicks []string
		c.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == irc.RPL_WHOREPLY {
				nicks = append(nicks, m.Param(5))
			}
			return m.Command == irc.RPL_ENDOFWHO
		}, "315 for WHO "+mask)
		return nicks
	}
	if got := whoList("*"); len(got) != 2 {
		t.Errorf("WHO * = %q, want both members", got)
	}
	if got := whoList(strings.ToUpper(bob.Localpart[:3]) + "*:*"); len(got) != 1 || got[0] != bobNick {
		t.Errorf("WHO of a nick mask = %q, want %s", got, bobNick)
	}
	if got := whoList("*!" + alice.Localpart + "@*"); len(got) != 1 || got[0] != bob.Localpart {
		t.Errorf("WHO of a user mask = %q, want alice (nick %s)", got, bob.Localpart)
	}
	if got := whoList("nobody-matches-*"); len(got) != 0 {
		t.Errorf("WHO of a mask nobody matches = %q", got)
	}
	stranger := hs.Register(t, "stranger")
	if got := whoList(stranger.Localpart); len(got) != 1 || got[0] != stranger.Localpart {
		t.Errorf("WHO of a user sharing no room = %q, want %s", got, stranger.Localpart)
	}
	if got := whoList("nobody-at-all"); len(got) != 0 {
		t.Errorf("WHO of nobody = %q", got)
	}

	c.Send("WHO %s %%tnafr,42", channel)
	whox := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "354" && m.Param(2) == bobNick }, "354 for bob")
	if whox.Param(1) != "42" || whox.Param(3) != "H" || whox.Param(4) != bob.UserID.String() {
		t.Errorf("WHOX reply = %s, want token, nick, flags, account (MXID), realname", whox)
	}
	c.Expect(t, irc.RPL_ENDOFWHO)

	c.Send("WHOIS %s", bobNick)
	c.ExpectMatch(t, isCmd(irc.RPL_WHOISUSER, bob.Localpart, bobNick, bob.Localpart, hs.ServerName), "311")
	c.ExpectMatch(t, isCmd(irc.RPL_WHOISCHANNELS, bob.Localpart, bobNick, channel), "319")
	c.ExpectMatch(t, isCmd("330", bob.Localpart, bobNick, bob.UserID.String()), "330 with the MXID")
	c.Expect(t, irc.RPL_ENDOFWHOIS)
	c.Send("WHOIS nobody-here")
	c.Expect(t, irc.ERR_NOSUCHNICK)

	c.Send("MODE %s", channel)
	m := c.Expect(t, irc.RPL_CHANNELMODEIS)
	// +s: createRoom does not publish the room in the directory.
	if m.Param(2) != "+nst" {
		t.Errorf("MODE = %s", m)
	}
	c.Send("MODE %s b", channel)
	c.Expect(t, irc.RPL_ENDOFBANLIST)
	c.Send("MODE %s +k key", channel) // channel keys mean nothing in Matrix
	c.Expect(t, irc.ERR_UNKNOWNMODE)
	c.Send("MODE %s", bob.Localpart)
	c.Expect(t, irc.RPL_UMODEIS)

	// A nick a Matrix user holds cannot be taken; a free one can.
	c.Send("NICK %s", strings.ReplaceAll(bobNick, ":", "x"))
	c.Expect(t, "NICK")
	c.Send("NICK alice2")
	c.ExpectMatch(t, isCmd("NICK", "alice2"), "NICK change")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Bad input gets an error reply and changes nothing else.
func TestBadInput(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice := hs.Register(t, "alice")
	c := connect(t, g, "alice", alice)
	c.Drain(t)

	c.Send("FROBNICATE now")
	c.ExpectMatch(t, isCmd(irc.ERR_UNKNOWNCOMMAND, "alice", "FROBNICATE"), "421")
	c.Send("PRIVMSG #x:y :%s", strings.Repeat("a", 600))
	c.Expect(t, "417")
	c.SendRaw("PRIVMSG #x:y :bad \xff\xfe utf-8\r\n")
	// UTF8ONLY promises FAIL to every client, standard-replies or not.
	c.ExpectMatch(t, isCmd("FAIL", "PRIVMSG", "INVALID_UTF8"), "FAIL INVALID_UTF8")
	c.SendRaw("PRIVMSG #x:y :nul \x00 byte\r\n")
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "NUL") }, "NOTICE about NUL")
	c.Send("CAP REQ standard-replies")
	c.ExpectMatch(t, isCmd("CAP", "alice", "ACK"), "ACK")
	c.SendRaw("PRIVMSG #x:y :bad \xff\xfe utf-8\r\n")
	c.ExpectMatch(t, isCmd("FAIL", "PRIVMSG", "INVALID_UTF8"), "FAIL INVALID_UTF8")
	c.SendRaw("PRIVMSG #x:y :nul \x00 byte\r\n")
	c.ExpectMatch(t, isCmd("FAIL", "*", "INVALID_MESSAGE"), "FAIL for NUL")
	c.Send("JOIN")
	c.Expect(t, irc.ERR_NEEDMOREPARAMS)
	c.Send("PRIVMSG")
	c.Expect(t, irc.ERR_NORECIPIENT)
	c.Send("PRIVMSG nobody :hi")
	c.Expect(t, irc.ERR_NOSUCHNICK)
	c.Send("USER again 0 * :x")
	c.Expect(t, irc.ERR_ALREADYREGISTERED)
	c.Send("AUTHENTICATE PLAIN")
	c.Expect(t, irc.ERR_SASLALREADY)
	c.Drain(t) // still connected and answering
}

// A homeserver that is down gets a clear error, quickly, not a hang.
func TestHomeserverDown(t *testing.T) {
	cfg := defaultConfig()
	cfg.IRC.KeepClientNick = true // the client keeps the nick the test gives it
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.Matrix.Homeserver = "http://127.0.0.1:1" // nothing listens on port 1
	cfg.Store.Path = t.TempDir() + "/mxircd.db"
	g := startTestGateway(t, cfg)
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("CAP REQ :sasl")
	c.Send("NICK alice")
	c.Send("USER alice 0 * :a")
	sendPlain(c, "@alice:localhost", "password")
	m := c.Expect(t, irc.ERR_SASLFAIL)
	if !strings.Contains(m.Trailing(), "Login failed") {
		t.Errorf("904 = %s, want the reason", m)
	}
}

// Two IRC clients on one account share its session: both see the rooms and
// what others say, and what one types appears on the other from the user's
// own nick, once.
func TestTwoClientsOneAccount(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bob, room, channel := twoInARoom(t, hs, "shared")

	laptop := connect(t, g, "alice", alice)
	laptop.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "laptop burst")
	phone := connect(t, g, "alicephone", alice)
	phone.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alicephone", channel), "phone burst")
	if n := g.sessions.SessionCount(); n != 1 {
		t.Fatalf("%d sessions for one account", n)
	}
	if devices := gatewayDevices(t, alice); len(devices) != 1 {
		t.Fatalf("two clients made devices %v", devices)
	}

	if _, err := bob.Client.SendText(ctxFor(t), room, "hi both"); err != nil {
		t.Fatal(err)
	}
	expectFrom(t, laptop, "PRIVMSG", bob.Localpart, "hi both")
	expectFrom(t, phone, "PRIVMSG", bob.Localpart, "hi both")

	laptop.Send("PRIVMSG %s :typed on the laptop", channel)
	expectFrom(t, phone, "PRIVMSG", "alicephone", "typed on the laptop")
	bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "typed on the laptop"
	})
	for _, m := range laptop.Drain(t) {
		if m.Command == "PRIVMSG" && strings.Contains(m.Trailing(), "typed on the laptop") {
			t.Errorf("the laptop got its own message back: %s", m)
		}
	}
	for _, m := range phone.Drain(t) {
		if m.Command == "PRIVMSG" && strings.Contains(m.Trailing(), "typed on the laptop") {
			t.Errorf("the phone got the laptop's message twice: %s", m)
		}
	}

	// One client leaving keeps the session for the other.
	laptop.Send("QUIT")
	laptop.ExpectClosed(t)
	if _, err := bob.Client.SendText(ctxFor(t), room, "still there?"); err != nil {
		t.Fatal(err)
	}
	expectFrom(t, phone, "PRIVMSG", bob.Localpart, "still there?")
}

// The homeserver going away under an attached client is said once, and the
// session resumes by itself when it is back.
func TestHomeserverRestart(t *testing.T) {
	hs := testenv.StartHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bob, room, channel := twoInARoom(t, hs, "restart")
	c := connect(t, g, "alice", alice)
	c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")

	hs.Stop()
	c.Timeout = 30 * time.Second
	gone := c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "Cannot reach the homeserver")
	}, "notice that the homeserver is gone")
	// In words, not the homeserver's internal address and sync filter.
	for _, leak := range []string{hs.URL, "http", "filter", "_matrix", "dial tcp"} {
		if strings.Contains(gone.Trailing(), leak) {
			t.Errorf("the notice shows %q: %q", leak, gone.Trailing())
		}
	}
	hs.Restart(t)
	c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "reachable again")
	}, "notice that it is back")
	if _, err := bob.Client.SendText(ctxFor(t), room, "after the restart"); err != nil {
		t.Fatal(err)
	}
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "after the restart")
	c.Send("PRIVMSG %s :me too", channel)
	bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "me too"
	})
}

// Nicks come from display names; a display name change is a NICK line, and
// the MXID stays visible in WHOIS.
func TestNicksFromDisplayNames(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bob, _, channel := twoInARoom(t, hs, "nicks")
	ctx := ctxFor(t)
	if err := bob.Client.SetDisplayName(ctx, "Bob Builder"); err != nil {
		t.Fatal(err)
	}
	c := connect(t, g, "alice", alice)
	c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
	waitNames(t, c, channel, "Bob_Builder")

	if err := bob.Client.SetDisplayName(ctx, "Robert"); err != nil {
		t.Fatal(err)
	}
	m := c.ExpectMatch(t, isCmd("NICK", "Robert"), "NICK to the new display name")
	if m.Prefix.Name != "Bob_Builder" || m.Prefix.User != bob.Localpart {
		t.Errorf("NICK = %s", m)
	}
	c.Send("WHOIS Robert")
	c.ExpectMatch(t, isCmd("330", "alice", "Robert", bob.UserID.String()), "330 with the MXID")
	c.Send("PRIVMSG Robert :hi robert")
	for _, line := range c.Drain(t) {
		if line.Command == irc.ERR_NOSUCHNICK {
			t.Errorf("PRIVMSG to the new nick failed: %s", line)
		}
	}
	c.Send("NAMES %s", channel)
	names := c.Expect(t, irc.RPL_NAMREPLY)
	if !strings.Contains(names.Trailing(), "Robert") {
		t.Errorf("NAMES after the rename: %s", names)
	}
	nickLines := 0
	for _, line := range c.Lines() {
		if m, err := irc.ParseMessage(line); err == nil && m.Command == "NICK" {
			nickLines++
		}
	}
	if nickLines != 1 {
		t.Errorf("%d NICK lines for one display name change", nickLines)
	}
}

// LIST shows the joined channels and the homeserver's public directory;
// LIST *term* searches it.
func TestList(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bob, _, channel := twoInARoom(t, hs, "listjoined")
	term := uniq("findme")
	public, err := bob.Client.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{
		RoomAliasName: term, Name: "Find Me", Topic: "a public room", Preset: "public_chat", Visibility: "public",
	})
	if err != nil {
		t.Fatal(err)
	}
	publicChannel := "#" + term + ":" + hs.ServerName
	c := connect(t, g, "alice", alice)
	c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")

	list := func(arg string) map[string]*irc.Message {
		c.Send("LIST %s", arg)
		c.Expect(t, irc.RPL_LISTSTART)
		got := map[string]*irc.Message{}
		c.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == irc.RPL_LIST {
				got[m.Param(1)] = m
			}
			return m.Command == irc.RPL_LISTEND
		}, "323")
		return got
	}
	all := list("")
	if m := all[channel]; m == nil || m.Param(2) != "2" {
		t.Errorf("joined channel in LIST: %v", m)
	}
	if m := all[publicChannel]; m == nil || m.Param(2) != "1" || !strings.Contains(m.Trailing(), "Find Me") || !strings.Contains(m.Trailing(), "a public room") {
		t.Errorf("directory room in LIST: %v (room %s)", m, public.RoomID)
	}
	found := list("*" + term + "*")
	if found[publicChannel] == nil || found[channel] != nil {
		t.Errorf("LIST *%s* = %v", term, keys(found))
	}
	if none := list("*" + uniq("nothingmatches") + "*"); len(none) != 0 {
		t.Errorf("LIST of an unknown term = %v", keys(none))
	}
}

// Formatting and mentions cross both ways: Matrix HTML becomes IRC codes
// and pills become nicks; IRC codes become HTML and a nick becomes a pill
// with m.mentions.
func TestFormattingAndMentions(t *testing.T) {
	_, alice, bob, room, channel, c := aliceMeetsBob(t, "format")
	ctx := ctxFor(t)

	if _, err := bob.Client.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "bold and Alice",
		Format: event.FormatHTML, FormattedBody: `<b>bold</b> and <a href="https://matrix.to/#/` + alice.UserID.String() + `">Alice</a>`,
	}); err != nil {
		t.Fatal(err)
	}
	m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "bold")
	if m.Trailing() != "\x02bold\x02 and alice" {
		t.Errorf("formatted message on IRC = %q, want bold codes and the own nick for the pill", m.Trailing())
	}

	c.Send("PRIVMSG %s :%s: \x02look\x02 at this", channel, bob.Localpart)
	ev := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == alice.UserID
	})
	content := ev.Content.AsMessage()
	if content.Body != bob.Localpart+": look at this" {
		t.Errorf("body = %q", content.Body)
	}
	if !strings.Contains(content.FormattedBody, "<strong>look</strong>") || !strings.Contains(content.FormattedBody, "https://matrix.to/#/"+bob.UserID.String()) {
		t.Errorf("formatted_body = %q, want bold and a pill for bob", content.FormattedBody)
	}
	if content.Mentions == nil || len(content.Mentions.UserIDs) != 1 || content.Mentions.UserIDs[0] != bob.UserID {
		t.Errorf("m.mentions = %+v, want bob", content.Mentions)
	}
}

// A message typed just before QUIT is still sent: the session finishes its
// queued requests before it stops.
func TestMessageBeforeQuit(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bob, room, channel := twoInARoom(t, hs, "lastwords")
	c := connect(t, g, "alice", alice)
	c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
	for i := 1; i <= 3; i++ {
		c.Send("PRIVMSG %s :last words %d", channel, i)
	}
	c.Send("QUIT :bye")
	c.ExpectClosed(t)
	var got []string
	bob.SyncUntil(t, ctxFor(t), func(resp *mautrix.RespSync) bool {
		for _, ev := range timeline(resp, room) {
			if ev.Type == event.EventMessage && ev.Sender == alice.UserID {
				ev.Content.ParseRaw(ev.Type)
				got = append(got, ev.Content.AsMessage().Body)
			}
		}
		return len(got) >= 3
	})
	if strings.Join(got, "|") != "last words 1|last words 2|last words 3" {
		t.Errorf("bob got %q", got)
	}
}

// AWAY sets Matrix presence; others' presence shows in WHOIS and WHO.
func TestAwayPresence(t *testing.T) {
	_, alice, bob, _, _, c := aliceMeetsBob(t, "away")
	ctx := ctxFor(t)

	// Dendrite applies presence changes asynchronously: wait for them.
	waitPresence := func(want event.Presence, msg string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			p, err := bob.Client.GetPresence(ctx, alice.UserID)
			if err == nil && p.Presence == want && p.StatusMsg == msg {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("alice's presence = %+v, %v; want %s %q", p, err, want, msg)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.Send("AWAY :at lunch")
	c.Expect(t, irc.RPL_NOWAWAY)
	waitPresence(event.PresenceUnavailable, "at lunch")
	c.Send("AWAY")
	c.Expect(t, irc.RPL_UNAWAY)
	waitPresence(event.PresenceOnline, "")

	// bob goes away in Matrix: WHOIS says so, WHO flags him G.
	if err := bob.Client.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "in a meeting"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.Send("WHOIS %s", bob.Localpart)
		var away *irc.Message
		c.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == irc.RPL_AWAY {
				away = m
			}
			return m.Command == irc.RPL_ENDOFWHOIS
		}, "318")
		if away != nil {
			if away.Trailing() != "in a meeting" {
				t.Errorf("301 = %s", away)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's presence never reached WHOIS")
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.Send("WHO %s", bob.Localpart)
	m := c.Expect(t, irc.RPL_WHOREPLY)
	if m.Param(6) != "G" {
		t.Errorf("WHO flags = %q, want G", m.Param(6))
	}
}
