package main

import (
	"context"
	"fmt"
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

// linesUntilPong sends PING token and returns the commands of the lines
// before its PONG.
func linesUntilPong(t *testing.T, c *testenv.IRCClient, token string) []*irc.Message {
	t.Helper()
	c.Send("PING %s", token)
	var before []*irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "PONG" && m.Trailing() == token {
			return true
		}
		before = append(before, m)
		return false
	}, "PONG "+token)
	return before
}

func hasLine(msgs []*irc.Message, pred func(*irc.Message) bool) bool {
	for _, m := range msgs {
		if pred(m) {
			return true
		}
	}
	return false
}

// PING is a barrier (issue 17): the replies to the commands before it,
// even those the homeserver answers later, come before its PONG.
func TestPingIsABarrier(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice := hs.Register(t, "alice")
		c := connectWithCaps(t, g, "alice", alice, "echo-message")
		c.Drain(t)

		c.Send("PRIVMSG nobody%s :hello", uniq("x"))
		if before := linesUntilPong(t, c, "after-privmsg"); !hasLine(before, isCmd(irc.ERR_NOSUCHNICK)) {
			t.Errorf("PONG came before the PRIVMSG's 401: %v", before)
		}

		// A new channel: the room is created, then shown through sync.
		channel := "#" + uniq("barrier") + ":" + hs.ServerName
		c.Send("JOIN %s", channel)
		before := linesUntilPong(t, c, "after-join")
		if !hasLine(before, isCmd("JOIN", channel)) || !hasLine(before, isCmd(irc.RPL_ENDOFNAMES, "alice", channel)) {
			t.Fatalf("PONG came before the JOIN burst: %v", before)
		}

		// With echo-message the echo is the reply to a message.
		c.Send("PRIVMSG %s :echo me", channel)
		before = linesUntilPong(t, c, "after-echo")
		if !hasLine(before, func(m *irc.Message) bool {
			return m.Command == "PRIVMSG" && strings.EqualFold(m.Param(0), channel) && m.Trailing() == "echo me"
		}) {
			t.Errorf("PONG came before the echo: %v", before)
		}

		// Nothing pending: answered at once, and still in order.
		for _, tok := range []string{"a", "b", "c"} {
			c.Send("PING %s", tok)
		}
		for _, tok := range []string{"a", "b", "c"} {
			if m := c.Expect(t, "PONG"); m.Trailing() != tok {
				t.Errorf("PONG %q, want %q", m.Trailing(), tok)
			}
		}
	})
}

// PING waits for what sync brings after a request answered: the PART of a
// room left, the burst of a room joined again, and a channel MODE query
// that asks the homeserver (issue 17; irssi sends MODE right after JOIN).
func TestPingWaitsForPartRejoinAndModes(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		_, bob, _, channel := twoInARoom(t, hs, "rejoin")
		c := connect(t, g, "bob", bob)
		about := func(command string, i int) func(*irc.Message) bool {
			return func(m *irc.Message) bool { return m.Command == command && strings.EqualFold(m.Param(i), channel) }
		}
		c.ExpectMatch(t, about(irc.RPL_ENDOFNAMES, 1), "bob's burst of "+channel)
		c.Drain(t)

		for i := 0; i < 3; i++ {
			c.Send("PART %s", channel)
			c.Send("JOIN %s", channel)
			c.Send("MODE %s", channel)
			before := linesUntilPong(t, c, fmt.Sprintf("rejoin-%d", i))
			for _, want := range []struct {
				what string
				pred func(*irc.Message) bool
			}{
				{"PART", about("PART", 0)},
				{"JOIN", about("JOIN", 0)},
				{"366", about(irc.RPL_ENDOFNAMES, 1)},
				{"324", about(irc.RPL_CHANNELMODEIS, 1)},
			} {
				if !hasLine(before, want.pred) {
					t.Fatalf("round %d: PONG came before the %s: %v", i, want.what, before)
				}
			}
		}
	})
}

// The reason a client gives to PART comes back on its own PART line, and
// on the PART others on this gateway see, as on any IRC server, even
// where the homeserver drops it from the event.
func TestPartReasonReachesTheLeaver(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "partwhy")
		// alice on the same gateway sees the reason too.
		ca := connect(t, g, "alice", alice)
		awaitBurst(t, ca, channel)
		c := connect(t, g, "bob", bob)
		awaitBurst(t, c, channel)
		c.Send("PART %s :off to lunch", channel)
		part := c.ExpectMatch(t, isCmd("PART", channel), "bob's PART")
		if part.Trailing() != "off to lunch" || len(part.Params) != 2 {
			t.Errorf("PART = %s, want the reason \"off to lunch\"", part)
		}
		seen := ca.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "PART" && m.Prefix.Name == bob.Localpart }, "bob's PART seen by alice")
		if seen.Trailing() != "off to lunch" || len(seen.Params) != 2 {
			t.Errorf("PART seen by alice = %s, want the reason \"off to lunch\"", seen)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ev := alice.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
			return ev.Type == event.StateMember && ev.GetStateKey() == bob.UserID.String() &&
				ev.Content.AsMember().Membership == event.MembershipLeave
		})
		// Dendrite v0.15.2 drops /leave's reason (its LeaveRoomByID never
		// reads it), so Matrix users see none there; Synapse keeps it.
		if r := ev.Content.AsMember().Reason; r != "" && r != "off to lunch" {
			t.Errorf("Matrix leave reason = %q", r)
		}
	})
}

// A nick that shares no room is taken as a user of matrix.server_name, who
// gets a DM if they exist (issue 17); one who does not is 401, and a
// message to yourself comes back to you.
func TestPrivmsgToNickWithoutSharedRoom(t *testing.T) {
	unencryptedDMs := func(c *Config) { c.Encryption.EncryptNewDMs = false }
	forEachStoreWith(t, unencryptedDMs, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, carol := hs.Register(t, "alice"), hs.Register(t, "carol")
		c := connect(t, b.g, "alice", alice)
		c.Drain(t)
		ctx := ctxFor(t)

		c.Send("PRIVMSG %s :hello stranger", carol.Localpart)
		before := linesUntilPong(t, c, "after-dm")
		if hasLine(before, isCmd(irc.ERR_NOSUCHNICK)) {
			t.Fatalf("PRIVMSG to an existing user without a shared room: %v", before)
		}
		var invited id.RoomID
		carol.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
			for roomID := range resp.Rooms.Invite {
				invited = roomID
			}
			return invited != ""
		})
		joinRoom(t, carol, invited)
		ev := carol.WaitForEvent(t, ctx, invited, func(ev *event.Event) bool {
			return ev.Type == event.EventMessage && ev.Sender == alice.UserID
		})
		if body := ev.Content.AsMessage().Body; body != "hello stranger" {
			t.Errorf("carol got %q", body)
		}

		missing := uniq("nobody")
		c.Send("PRIVMSG %s :anyone there?", missing)
		c.ExpectMatch(t, isCmd(irc.ERR_NOSUCHNICK, "alice", missing), "401 for a user the homeserver does not know")

		c.Send("PRIVMSG alice :note to self")
		m := expectFrom(t, c, "PRIVMSG", "alice", "note to self")
		if m.Param(0) != "alice" {
			t.Errorf("message to self came back as %s", m)
		}
		// With echo-message: the echo and the delivery.
		e := connectWithCaps(t, b.g, "alice", alice, "echo-message")
		e.Drain(t)
		e.Send("PRIVMSG alice :echoed note")
		n := 0
		for _, m := range e.Drain(t) {
			if m.Command == "PRIVMSG" && m.Trailing() == "echoed note" {
				n++
			}
		}
		if n != 2 {
			t.Errorf("a message to self with echo-message came %d times, want 2 (echo and delivery)", n)
		}
		// A TAGMSG to oneself too, labeled on the echo alone, with its
		// client-only tags.
		l := connectWithCaps(t, b.g, "alice", alice, "echo-message", "labeled-response", "batch", "message-tags")
		l.Drain(t)
		l.Send("@label=t1;+draft/react=👍;+draft/reply=$x TAGMSG alice")
		var tagmsgs, labeled int
		for _, m := range linesUntilPong(t, l, "after-tagmsg") {
			if m.Command == "TAGMSG" && m.Tags["+draft/react"] == "👍" {
				tagmsgs++
				if m.Tags["label"] == "t1" {
					labeled++
				}
			}
		}
		if tagmsgs != 2 || labeled != 1 {
			t.Errorf("a TAGMSG to self came %d times, %d labeled; want 2, 1 labeled", tagmsgs, labeled)
		}
	})
}

// WHOIS and INVITE of a nick nobody in a shared room holds take it as a
// user of the server, as PRIVMSG does: anyone on an IRC network can be
// looked up and invited. A user the homeserver does not know is 401.
func TestWhoisAndInviteWithoutSharedRoom(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, _, room, channel := twoInARoom(t, hs, "stranger")
		dave := hs.Register(t, "dave")
		c := connect(t, g, "alice", alice)
		awaitBurst(t, c, channel)

		c.Send("WHOIS %s", dave.Localpart)
		user := c.ExpectMatch(t, isCmd(irc.RPL_WHOISUSER), "311 for dave")
		if user.Param(1) != dave.Localpart || user.Param(2) != dave.Localpart || user.Param(3) != hs.ServerName {
			t.Errorf("311 = %s", user)
		}
		// The server is this IRC server, as clients expect of 312; the
		// homeserver is in the text.
		if server := c.ExpectMatch(t, isCmd(irc.RPL_WHOISSERVER), "312 for dave"); server.Param(2) != server.Prefix.Name || !strings.Contains(server.Trailing(), hs.ServerName) {
			t.Errorf("312 = %s, want this server and the homeserver", server)
		}
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFWHOIS), "318 for dave")

		missing := uniq("nobody")
		c.Send("WHOIS %s", missing)
		before := linesUntilPong(t, c, "after-whois")
		if !hasLine(before, isCmd(irc.ERR_NOSUCHNICK)) || !hasLine(before, isCmd(irc.RPL_ENDOFWHOIS)) {
			t.Errorf("WHOIS of an unknown user: %v, want 401 and 318", before)
		}

		c.Send("INVITE %s %s", dave.Localpart, channel)
		c.ExpectMatch(t, isCmd(irc.RPL_INVITING), "341 for dave")
		dave.SyncUntil(t, ctxFor(t), func(resp *mautrix.RespSync) bool {
			_, ok := resp.Rooms.Invite[room]
			return ok
		})
		c.Send("INVITE %s %s", missing, channel)
		before = linesUntilPong(t, c, "after-invite")
		if !hasLine(before, isCmd(irc.ERR_NOSUCHNICK)) {
			t.Errorf("INVITE of an unknown user: %v, want 401", before)
		}
		// To a channel alice is not on: 442, as RFC 2812 says.
		c.Send("INVITE %s #%s", dave.Localpart, uniq("elsewhere"))
		c.ExpectMatch(t, isCmd(irc.ERR_NOTONCHANNEL), "442 for a channel alice is not on")
	})
}

// USERHOST answers for nicks of shared rooms and for users of the server
// who share none (irctest's away test): + when here, - when away, unknown
// nicks left out.
func TestUserhost(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, _, channel := twoInARoom(t, hs, "userhost")
		dave := hs.Register(t, "dave")
		c := connect(t, g, "alice", alice)
		awaitBurst(t, c, channel)
		d := connect(t, g, "dave", dave)
		d.Drain(t)

		// Dave's presence turns online with his session's first syncs.
		missing := uniq("nobody")
		want := bob.Localpart + "=+" + bob.Localpart + "@" + hs.ServerName + " " +
			dave.Localpart + "=+" + dave.Localpart + "@" + hs.ServerName
		var got string
		for deadline := time.Now().Add(20 * time.Second); got != want && time.Now().Before(deadline); {
			c.Send("USERHOST %s %s %s", bob.Localpart, missing, dave.Localpart)
			got = c.ExpectMatch(t, isCmd(irc.RPL_USERHOST), "302").Trailing()
			if got != want {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if got != want {
			t.Errorf("302 = %q, want %q", got, want)
		}

		d.Send("AWAY :not here")
		d.ExpectMatch(t, isCmd(irc.RPL_NOWAWAY), "306")
		// Eventually (TestAwayOfAStranger says why).
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			c.Send("USERHOST %s", dave.Localpart)
			r := c.ExpectMatch(t, isCmd(irc.RPL_USERHOST), "302 after AWAY")
			if strings.HasPrefix(r.Trailing(), dave.Localpart+"=-") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("302 of an away user = %q, want %s=-...", r.Trailing(), dave.Localpart)
			}
		}
	})
}

// With short_aliases, accounts on matrix.server_name are short like
// aliases (issue 17): 900, account-tag, extended-join and WHOIS name
// "alice", the login a client types, not @alice:server; 900's mask has
// the user part filled in.
func TestShortAccountNames(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(c *Config) { c.Matrix.ShortAliases = true }))
			alice, bob, room, channel := twoInARoom(t, hs, "shortacct")
			c := testenv.DialIRC(t, g.ircAddr())
			c.Send("CAP LS 302")
			c.Send("CAP REQ :sasl account-tag extended-join")
			c.ExpectMatch(t, isCmd("CAP", "*", "ACK"), "CAP ACK")
			c.Send("AUTHENTICATE PLAIN")
			c.Expect(t, "AUTHENTICATE")
			c.Send("AUTHENTICATE %s", b64("\x00"+alice.Localpart+"\x00"+alice.Password))
			m := c.Expect(t, irc.RPL_LOGGEDIN)
			if want := "*!" + alice.Localpart + "@"; m.Param(2) != alice.Localpart || !strings.HasPrefix(m.Param(1), want) {
				t.Errorf("900 = %s, want mask %s… and account %s", m, want, alice.Localpart)
			}
			c.Send("NICK alice")
			c.Send("USER alice 0 * :Alice")
			c.Send("CAP END")
			c.Expect(t, irc.RPL_WELCOME)
			waitNames(t, c, channel, bob.Localpart)
			if _, err := bob.Client.SendText(ctxFor(t), room, "tagged"); err != nil {
				t.Fatal(err)
			}
			m = expectFrom(t, c, "PRIVMSG", bob.Localpart, "tagged")
			if m.Tags["account"] != bob.Localpart {
				t.Errorf("account tag %q, want %q", m.Tags["account"], bob.Localpart)
			}
			c.Send("WHOIS %s", bob.Localpart)
			c.ExpectMatch(t, isCmd("330", "alice", bob.Localpart, bob.Localpart), "330 with the short account")
		})
	}
}

// MODE <you> +i, which irssi sends on connect, comes from the full
// nick!user@host others see (issue 17).
func TestUserModeSource(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice := hs.Register(t, "alice")
		c := connect(t, g, "alice", alice)
		c.Drain(t)
		c.Send("MODE alice +i")
		m := c.ExpectMatch(t, isCmd("MODE", "alice", "+i"), "MODE +i")
		if want := "alice!" + alice.Localpart + "@" + hs.ServerName; m.Prefix.String() != want {
			t.Errorf("MODE +i from %q, want %q", m.Prefix, want)
		}
	})
}

// JOIN of a channel the client is already in is ignored (issue 17):
// clients that rejoin on reconnect must not see every channel twice.
func TestJoinOfJoinedChannelIsIgnored(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, _, channel := twoInARoom(t, hs, "rejoin")
		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
		waitNames(t, c, channel, bob.Localpart)
		c.Drain(t)
		c.Send("JOIN %s", channel)
		for _, m := range c.Drain(t) {
			if m.Command == "JOIN" || m.Command == irc.RPL_NAMREPLY || m.Command == irc.RPL_ENDOFNAMES || m.Command == irc.RPL_TOPIC {
				t.Errorf("JOIN of a joined channel answered with %s, want nothing", m)
			}
		}
	})
}

// One display name change is one SETNAME, however many rooms it comes
// through as member events (issue 17).
func TestDisplayNameChangeIsOneSetname(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "setname")
		aliasB := uniq("setnameb")
		roomB := createRoom(t, bob, aliasB, "")
		joinRoom(t, alice, roomB)
		chanB := "#" + aliasB + ":" + hs.ServerName
		c := connectWithCaps(t, g, "alice", alice, "setname")
		waitNames(t, c, channel, bob.Localpart)
		waitNames(t, c, chanB, bob.Localpart)
		c.Drain(t)

		if err := bob.Client.SetDisplayName(ctxFor(t), "Renamed_Bob"); err != nil {
			t.Fatal(err)
		}
		// Each room's member event comes before a message sent after it.
		say(t, bob, room, "after the rename in a")
		say(t, bob, roomB, "after the rename in b")
		var setnames, nicks int
		seen := 0
		c.ExpectMatch(t, func(m *irc.Message) bool {
			switch m.Command {
			case "SETNAME":
				setnames++
			case "NICK":
				nicks++
			case "PRIVMSG":
				if strings.HasPrefix(m.Trailing(), "after the rename") {
					seen++
				}
			}
			return seen == 2
		}, "both messages after the rename")
		if setnames != 1 || nicks != 1 {
			t.Errorf("one display name change gave %d SETNAME and %d NICK, want 1 and 1", setnames, nicks)
		}
	})
}

// The homeserver's refusals read as a person would say them (issue 17):
// power levels instead of event auth internals, and "no such channel" for
// a room that does not exist, which Dendrite answers with a bare 500.
func TestRefusalsInPlainWords(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "refusal")
		if _, err := alice.Client.SendStateEvent(ctxFor(t), room, event.StateTopic, "", &event.TopicEventContent{Topic: "alice's topic"}); err != nil {
			t.Fatal(err)
		}
		c := connect(t, g, "bob", bob)
		c.ExpectMatch(t, isCmd(irc.RPL_TOPIC, "bob", channel, "alice's topic"), "burst with the topic")

		c.Send("TOPIC %s :bob's topic", channel)
		m := c.ExpectMatch(t, isCmd(irc.ERR_CHANOPRIVSNEEDED, "bob", channel), "482 for TOPIC")
		if want := "You need power level 50 to change the topic; you have 0"; m.Trailing() != want {
			t.Errorf("TOPIC refused with %q, want %q", m.Trailing(), want)
		}
		// The same topic again: the homeserver would take it without a
		// check (no new event), so it is refused here.
		c.Send("TOPIC %s :alice's topic", channel)
		m = c.ExpectMatch(t, isCmd(irc.ERR_CHANOPRIVSNEEDED, "bob", channel), "482 for the same TOPIC")
		if want := "You need power level 50 to change the topic; you have 0"; m.Trailing() != want {
			t.Errorf("the same TOPIC refused with %q, want %q", m.Trailing(), want)
		}

		missing := "#" + uniq("nowhere") + ":elsewhere.example"
		c.Send("JOIN %s", missing)
		m = c.ExpectMatch(t, isCmd(irc.ERR_NOSUCHCHANNEL, "bob", missing), "403 for a room that does not exist")
		if strings.Contains(m.Trailing(), "HTTP") || strings.Contains(m.Trailing(), "500") {
			t.Errorf("JOIN of a missing room: %q, want it to say there is no such room", m.Trailing())
		}
	})
}

// A labeled REDACT is answered: Dendrite gives a redaction back without
// its transaction ID, so its labeled response cannot wait for the echo.
func TestLabeledRedactIsAnswered(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, _, room, channel := twoInARoom(t, hs, "labredact")
		c := connectWithCaps(t, g, "alice", alice, "message-tags", "draft/message-redaction",
			"labeled-response", "batch", "echo-message")
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
		own, err := alice.Client.SendText(ctxFor(t), room, "to be deleted")
		if err != nil {
			t.Fatal(err)
		}
		expectFrom(t, c, "PRIVMSG", "alice", "to be deleted")
		c.Send("@label=r1 REDACT %s %s", channel, own.EventID)
		c.ExpectMatch(t, func(m *irc.Message) bool { return m.Tags["label"] == "r1" }, "the labeled response to REDACT")
	})
}

// A user who set themselves away is answered with 301 by WHOIS and by a
// message to them, also when they share no room with the asker (their
// presence is asked of the homeserver).
func TestAwayOfAStranger(t *testing.T) {
	unencryptedDMs := func(c *Config) { c.Encryption.EncryptNewDMs = false }
	forEachStoreWith(t, unencryptedDMs, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, dave := hs.Register(t, "alice"), hs.Register(t, "dave")
		c := connect(t, b.g, "alice", alice)
		c.Drain(t)
		d := connect(t, b.g, "dave", dave)
		d.Drain(t)

		away := func(command string) []*irc.Message {
			var got []*irc.Message
			for _, m := range linesUntilPong(t, c, "after-"+command) {
				if m.Command == irc.RPL_AWAY {
					got = append(got, m)
				}
			}
			return got
		}
		c.Send("WHOIS %s", dave.Localpart)
		if got := away("whois-here"); len(got) != 0 {
			t.Errorf("WHOIS of a user who is here: %v", got)
		}
		d.Send("AWAY :gone fishing")
		d.ExpectMatch(t, isCmd(irc.RPL_NOWAWAY), "306")
		// Presence is eventually consistent: a /sync of dave's session
		// that was on its way with set_presence=online may land after
		// the AWAY, until his next sync sets it again.
		var got []*irc.Message
		for deadline := time.Now().Add(20 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
			c.Send("WHOIS %s", dave.Localpart)
			if got = away("whois-away"); len(got) == 0 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if len(got) != 1 || got[0].Param(1) != dave.Localpart || got[0].Trailing() != "gone fishing" {
			t.Errorf("WHOIS of an away user: %v, want one 301", got)
		}
		c.Send("PRIVMSG %s :are you there?", dave.Localpart)
		if got := away("privmsg-away"); len(got) != 1 || got[0].Trailing() != "gone fishing" {
			t.Errorf("PRIVMSG to an away user: %v, want one 301", got)
		}
	})
}

// TOPIC, PART and MODE of a channel one is not on tell a room that exists
// (442) from a name nobody has (403), as IRC servers do.
func TestNotOnChannelOrNoSuchChannel(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
		aliasLocal := uniq("notmine")
		createRoom(t, bob, aliasLocal, "")
		existing, missing := "#"+aliasLocal+":"+hs.ServerName, "#"+uniq("nothing")+":"+hs.ServerName
		c := connect(t, g, "alice", alice)
		c.Expect(t, irc.RPL_ENDOFMOTD)
		for _, command := range []string{"TOPIC", "PART", "MODE"} {
			c.Send("%s %s", command, existing)
			c.ExpectMatch(t, isCmd(irc.ERR_NOTONCHANNEL, "alice", existing), command+": 442 for a room alice is not in")
			c.Send("%s %s", command, missing)
			c.ExpectMatch(t, isCmd(irc.ERR_NOSUCHCHANNEL, "alice", missing), command+": 403 for a name nobody has")
		}
	})
}

// An own SETNAME is confirmed once to every client of the account that
// takes setname, in no room as in two (the member events that follow are
// not told again), and WHOIS of oneself shows the new real name.
func TestOwnSetnameIsConfirmedOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		loner := hs.Register(t, "loner")
		c := connectWithCaps(t, g, "loner", loner, "setname")
		c.Expect(t, irc.RPL_ENDOFMOTD)
		c.Send("SETNAME :Lone Ranger")
		c.ExpectMatch(t, isCmd("SETNAME", "Lone Ranger"), "SETNAME confirmed without a room")
		c.Send("WHOIS loner")
		if m := c.Expect(t, irc.RPL_WHOISUSER); m.Trailing() != "Lone Ranger" {
			t.Errorf("311 of oneself = %s, want the real name Lone Ranger", m)
		}

		alice, bob, room, channel := twoInARoom(t, hs, "ownsetname")
		aliasB := uniq("ownsetnameb")
		roomB := createRoom(t, bob, aliasB, "")
		joinRoom(t, alice, roomB)
		ca := connectWithCaps(t, g, "alice", alice, "setname")
		waitNames(t, ca, channel, bob.Localpart)
		waitNames(t, ca, "#"+aliasB+":"+hs.ServerName, bob.Localpart)
		ca.Drain(t)
		ca.Send("SETNAME :Alice Liddell")
		// The PONG comes once the homeserver has answered the SETNAME:
		// told by then, by its answer or by a member event.
		setnames, seen := 0, 0
		for _, m := range linesUntilPong(t, ca, "after-setname") {
			if m.Command == "SETNAME" {
				setnames++
			}
		}
		say(t, bob, room, "after alice's rename in a")
		say(t, bob, roomB, "after alice's rename in b")
		ca.ExpectMatch(t, func(m *irc.Message) bool {
			switch {
			case m.Command == "SETNAME":
				setnames++
			case m.Command == "PRIVMSG" && strings.HasPrefix(m.Trailing(), "after alice's rename"):
				seen++
			}
			return seen == 2
		}, "both messages after the rename")
		if setnames != 1 {
			t.Errorf("one own SETNAME was confirmed %d times, want once", setnames)
		}
	})
}

// A nick a client on this gateway uses names that client's account, as
// on any IRC network, also when it is not the account's localpart
// (irc.keep_client_nick) and no room is shared: WHOIS finds it and a
// PRIVMSG reaches it.
func TestNickOfAClientHere(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			// carol's session takes alice's DM without asking.
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(c *Config) {
				c.Matrix.AcceptDMInvites = "all"
				c.Encryption.EncryptNewDMs = false
			}))
			nickOfAClientHere(t, hs, g)
		})
	}
}

func nickOfAClientHere(t *testing.T, hs *testenv.Homeserver, g *gateway) {
	alice, carol := hs.Register(t, "alice"), hs.Register(t, "carol")
	nick := uniq("netcat")
	cc := connect(t, g, nick, carol)
	cc.Expect(t, irc.RPL_ENDOFMOTD)
	c := connect(t, g, "alice", alice)
	c.Expect(t, irc.RPL_ENDOFMOTD)
	c.Send("WHOIS %s", nick)
	if m := c.Expect(t, irc.RPL_WHOISUSER); m.Param(1) != nick || m.Param(2) != carol.Localpart {
		t.Errorf("311 = %s, want %s as %s", m, nick, carol.Localpart)
	}
	if m := c.ExpectMatch(t, isCmd("330"), "330"); !strings.Contains(m.Param(2), carol.Localpart) {
		t.Errorf("330 = %s, want carol's account", m)
	}
	c.Send("PRIVMSG %s :hello netcat", nick)
	cc.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Trailing() == "hello netcat" }, "alice's message")
}

// JOIN and, on the next lines, commands on that channel (as bots and
// scripts send them): they wait for the JOIN and act on the joined room,
// in order, and a PING after them still comes back last.
func TestCommandsRightAfterJoin(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
		c := connect(t, g, "alice", alice)
		c.Expect(t, irc.RPL_ENDOFMOTD)
		aliasLocal := uniq("quick")
		channel := "#" + aliasLocal + ":" + hs.ServerName
		c.Send("JOIN %s", channel)
		c.Send("TOPIC %s :set at once", channel)
		c.Send("PRIVMSG %s :first words", channel)
		lines := linesUntilPong(t, c, "after-join")
		for _, m := range lines {
			switch m.Command {
			case irc.ERR_NOSUCHCHANNEL, irc.ERR_NOTONCHANNEL, irc.ERR_CANNOTSENDTOCHAN:
				t.Errorf("a command right after JOIN was refused: %s", m)
			}
		}
		if !hasLine(lines, isCmd("JOIN", channel)) {
			t.Errorf("no JOIN before the PONG: %v", lines)
		}
		room, err := bob.Client.ResolveAlias(ctxFor(t), id.RoomAlias(channel))
		if err != nil {
			t.Fatal(err)
		}
		joinRoom(t, bob, room.RoomID)
		var topic event.TopicEventContent
		if err := bob.Client.StateEvent(ctxFor(t), room.RoomID, event.StateTopic, "", &topic); err != nil || topic.Topic != "set at once" {
			t.Errorf("topic = %q (%v), want the one set right after JOIN", topic.Topic, err)
		}
		bobSees(t, bob, room.RoomID, alice.UserID, "first words")
	})
}
