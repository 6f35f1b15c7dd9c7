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

// Each IRCv3 capability, negotiated, changes what the client gets as its
// specification says; the tests without them (elsewhere) cover the rest.
func TestIRCv3Capabilities(t *testing.T) {
	caps := []string{"account-tag", "away-notify", "draft/channel-rename", "draft/no-implicit-names", "echo-message",
		"extended-join", "invite-notify", "message-tags", "multi-prefix", "server-time", "setname", "userhost-in-names"}
	_, alice, bob, room, channel, c := aliceMeetsBob(t, "caps", caps...)
	ctx := ctxFor(t)

	// multi-prefix and userhost-in-names: alice created the room (level 100).
	c.Send("NAMES %s", channel)
	names := c.Expect(t, irc.RPL_NAMREPLY)
	if !strings.Contains(" "+names.Trailing()+" ", " @+alice!"+alice.Localpart+"@localhost ") {
		t.Errorf("NAMES = %q, want @+alice!%s@localhost", names.Trailing(), alice.Localpart)
	}

	// account-tag on messages; echo-message with the real event ID.
	sent, err := bob.Client.SendText(ctx, room, "tagged")
	if err != nil {
		t.Fatal(err)
	}
	m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "tagged")
	if m.Tags["account"] != bob.UserID.String() || m.Tags["msgid"] != sent.EventID.String() || m.Tags["time"] == "" {
		t.Errorf("tags = %v", m.Tags)
	}
	c.Send("PRIVMSG %s :echo me", channel)
	echo := expectFrom(t, c, "PRIVMSG", "alice", "echo me")
	ev := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "echo me"
	})
	if echo.Tags["msgid"] != ev.ID.String() {
		t.Errorf("echo msgid %q, want the event ID %s", echo.Tags["msgid"], ev.ID)
	}

	// extended-join and no-implicit-names, on a room joined elsewhere.
	aliasLocal := uniq("extjoin")
	other := createRoom(t, bob, aliasLocal, "")
	joinRoom(t, alice, other)
	otherChannel := "#" + aliasLocal + ":localhost"
	join := c.ExpectMatch(t, isCmd("JOIN", otherChannel), "JOIN")
	if join.Param(1) != alice.UserID.String() || join.Param(2) == "" {
		t.Errorf("extended JOIN = %s", join)
	}
	for _, m := range c.Drain(t) {
		if m.Command == irc.RPL_NAMREPLY {
			t.Errorf("NAMES sent despite draft/no-implicit-names: %s", m)
		}
	}

	// away-notify.
	if err := bob.Client.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "brb"}); err != nil {
		t.Fatal(err)
	}
	away := c.ExpectMatch(t, isCmd("AWAY"), "AWAY from bob")
	if away.Prefix.Name != bob.Localpart || away.Param(0) != "brb" {
		t.Errorf("AWAY = %s", away)
	}

	// invite-notify: alice's other client invites someone.
	carol := testenv.SharedHomeserver(t).Register(t, "carol")
	if _, err := alice.Client.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	inv := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "INVITE" && m.Param(1) == channel }, "INVITE notify")
	if inv.Param(0) != carol.Localpart || inv.Prefix.Name != "alice" {
		t.Errorf("INVITE = %s", inv)
	}
	// account-tag: the inviter's account, as on every line from them.
	if !strings.Contains(inv.Tags["account"], alice.Localpart) {
		t.Errorf("INVITE account tag = %q, want alice's account", inv.Tags["account"])
	}

	// setname both ways.
	if err := bob.Client.SetDisplayName(ctx, "Bobby Tables"); err != nil {
		t.Fatal(err)
	}
	c.ExpectMatch(t, isCmd("SETNAME", "Bobby Tables"), "SETNAME from bob")
	c.Send("SETNAME :Alice Liddell")
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "SETNAME" && m.Prefix.Name == "alice" }, "own SETNAME")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := bob.Client.GetDisplayName(ctx, alice.UserID)
		if err == nil && resp.DisplayName == "Alice Liddell" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's display name = %+v, %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// draft/channel-rename.
	alias := id.NewRoomAlias(uniq("renamedcap"), "localhost")
	if _, err := bob.Client.CreateAlias(ctx, alias, other); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.SendStateEvent(ctx, other, event.StateCanonicalAlias, "", &event.CanonicalAliasEventContent{Alias: alias}); err != nil {
		t.Fatal(err)
	}
	c.ExpectMatch(t, isCmd("RENAME", otherChannel, alias.String()), "RENAME")
}

// MONITOR follows Matrix presence: 730 when a watched user is online, 731
// when not, and away changes of watched users arrive as AWAY.
func TestMonitor(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, stranger := hs.Register(t, "alice"), hs.Register(t, "stranger")
	ctx := ctxFor(t)
	if err := stranger.Client.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOffline}); err != nil {
		t.Fatal(err)
	}
	c := connectWithCaps(t, g, "alice", alice, "away-notify", "extended-monitor")
	c.Drain(t)
	c.Send("MONITOR + %s,nobody-known", stranger.UserID)
	off := c.Expect(t, "731")
	if !strings.Contains(off.Param(1), stranger.UserID.String()) && !strings.Contains(off.Param(1), "nobody-known") {
		t.Errorf("731 = %s", off)
	}
	c.Send("MONITOR L")
	list := c.Expect(t, "732")
	if !strings.Contains(list.Param(1), strings.ToLower(stranger.UserID.String())) {
		t.Errorf("732 = %s", list)
	}
	c.Expect(t, "733")

	// Homeservers send presence only of users who share a room, so share one.
	room := createRoom(t, stranger, uniq("monitor"), "")
	joinRoom(t, alice, room)
	if err := stranger.Client.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline}); err != nil {
		t.Fatal(err)
	}
	on := c.Expect(t, "730")
	if !strings.HasPrefix(on.Param(1), stranger.Localpart+"!") {
		t.Errorf("730 = %s", on)
	}
	if err := stranger.Client.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "away now"}); err != nil {
		t.Fatal(err)
	}
	c.ExpectMatch(t, isCmd("AWAY", "away now"), "AWAY for a monitored user")
	c.Send("MONITOR C")
	c.Send("MONITOR L")
	c.Expect(t, "733")
}

// labeled-response: every command's replies carry its label: one line
// labeled, several in a labeled-response batch, none as ACK; a labeled
// message's answer is its echo.
func TestLabeledResponse(t *testing.T) {
	_, _, bob, _, channel, c := aliceMeetsBob(t, "labels", "labeled-response", "batch", "echo-message", "message-tags")
	c.Send("@label=p1 PING :x")
	pong := c.Expect(t, "PONG")
	if pong.Tags["label"] != "p1" {
		t.Errorf("PONG = %s", pong)
	}
	c.Send("@label=u1 FROBNICATE")
	if m := c.Expect(t, irc.ERR_UNKNOWNCOMMAND); m.Tags["label"] != "u1" {
		t.Errorf("421 = %s", m)
	}
	c.Send("@label=w1 WHOIS %s", bob.Localpart)
	open := c.ExpectMatch(t, isCmd("BATCH"), "BATCH +")
	if open.Tags["label"] != "w1" || open.Param(1) != "labeled-response" {
		t.Fatalf("batch opening = %s", open)
	}
	ref := open.Param(0)[1:]
	lines := 0
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "BATCH" && m.Param(0) == "-"+ref {
			return true
		}
		if m.Tags["batch"] != ref {
			t.Errorf("line outside the batch: %s", m)
		}
		lines++
		return false
	}, "BATCH -")
	if lines < 4 {
		t.Errorf("WHOIS batch had %d lines", lines)
	}
	c.Send("@label=m1 PRIVMSG %s :labeled hello", channel)
	echo := expectFrom(t, c, "PRIVMSG", "alice", "labeled hello")
	if echo.Tags["label"] != "m1" || echo.Tags["msgid"] == "" {
		t.Errorf("echo = %s, want label m1 and a msgid", echo)
	}
	// The TOPIC itself comes from Matrix, before or after the ACK.
	c.Send("@label=t1 TOPIC %s :labeled topic", channel)
	var ack, topic *irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		switch {
		case m.Tags["label"] == "t1":
			ack = m
		case m.Command == "TOPIC" && m.Param(1) == "labeled topic":
			topic = m
		}
		return ack != nil && topic != nil
	}, "ACK and TOPIC")
	if ack.Command != "ACK" {
		t.Errorf("TOPIC response = %s, want ACK", ack)
	}
}

// A labeled multiline message is answered by its echo: the multiline
// batch itself, labeled on its opening line.
func TestLabeledMultilineEcho(t *testing.T) {
	_, _, _, _, channel, c := aliceMeetsBob(t, "labelml", "labeled-response", "batch", "echo-message", "draft/multiline", "message-tags")
	c.Send("@label=ml BATCH +b1 draft/multiline %s", channel)
	c.Send("@batch=b1 PRIVMSG %s :first", channel)
	c.Send("@batch=b1 PRIVMSG %s :second", channel)
	c.Send("BATCH -b1")
	open := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "BATCH" && m.Tags["label"] == "ml" }, "labeled batch")
	if open.Param(1) != "draft/multiline" || open.Tags["batch"] != "" {
		t.Fatalf("opening = %s, want the multiline batch", open)
	}
	ref := open.Param(0)[1:]
	first := c.Expect(t, "PRIVMSG")
	second := c.Expect(t, "PRIVMSG")
	if first.Trailing() != "first" || second.Trailing() != "second" || first.Tags["batch"] != ref || second.Tags["batch"] != ref {
		t.Errorf("lines = %s / %s", first, second)
	}
	if end := c.Expect(t, "BATCH"); end.Param(0) != "-"+ref {
		t.Errorf("end = %s", end)
	}
}

// MONITOR of an account on this gateway follows its clients at once, not
// the homeserver's presence (late, and for users who share no room never
// sent): 730 when its client connects, AWAY when it sets itself away, 731
// when it quits.
func TestMonitorAccountsHere(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(c *Config) { c.Bouncer.AlwaysOn = false }))
			alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
			c := connectWithCaps(t, g, "alice", alice, "away-notify", "extended-monitor")
			c.Drain(t)
			c.Send("MONITOR + %s", bob.Localpart) // shares no room with alice
			if m := c.Expect(t, "731"); m.Param(1) != bob.Localpart {
				t.Errorf("731 = %s", m)
			}
			b := connect(t, g, bob.Localpart, bob)
			if m := c.Expect(t, "730"); !strings.HasPrefix(m.Param(1), bob.Localpart+"!") {
				t.Errorf("730 = %s", m)
			}
			b.Send("AWAY :at lunch")
			b.Expect(t, irc.RPL_NOWAWAY)
			c.ExpectMatch(t, isCmd("AWAY", "at lunch"), "AWAY of the monitored user")
			c.Send("WHOIS %s", bob.Localpart)
			c.ExpectMatch(t, isCmd(irc.RPL_AWAY, "alice", bob.Localpart, "at lunch"), "301 in WHOIS")
			// away-notify: one who joins while away is said to be.
			aliasLocal := uniq("awayjoin")
			room := createRoom(t, alice, aliasLocal, "")
			c.ExpectMatch(t, isCmd("JOIN", "#"+aliasLocal+":"+hs.ServerName), "own JOIN")
			joinRoom(t, bob, room)
			c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && m.Prefix.Name == bob.Localpart }, "bob's JOIN")
			if m := c.Expect(t, "AWAY"); m.Prefix.Name != bob.Localpart || m.Param(0) != "at lunch" {
				t.Errorf("after the JOIN of one away: %s", m)
			}
			// A nick nobody has: whoever takes it here is online under it,
			// and offline again when they give it up.
			free := uniq("free")
			c.Send("MONITOR + %s", free)
			c.Expect(t, "731")
			b.Send("NICK %s", free)
			if m := c.Expect(t, "730"); m.Param(1) != free+"!"+bob.Localpart+"@localhost" {
				t.Errorf("730 for a nick taken = %s", m)
			}
			// A change of case is no news; the 731 names the nick as it
			// was last held.
			b.Send("NICK %s", strings.ToUpper(free))
			b.ExpectMatch(t, isCmd("NICK", strings.ToUpper(free)), "bob's NICK")
			b.Send("NICK %s", bob.Localpart)
			if m := c.Expect(t, "731"); m.Param(1) != strings.ToUpper(free) {
				t.Errorf("731 for a nick given up = %s, want %s", m, strings.ToUpper(free))
			}
			c.Send("MONITOR - %s", free)
			b.Send("QUIT :bye")
			if m := c.Expect(t, "731"); m.Param(1) != bob.Localpart {
				t.Errorf("731 after QUIT = %s", m)
			}
			// A second client of alice's that monitors bob hears of him too.
			c2 := connectWithCaps(t, g, "alice", alice, "away-notify", "extended-monitor")
			c2.Drain(t)
			c2.Send("MONITOR + %s", bob.Localpart)
			c2.Expect(t, "731")
			b = connect(t, g, bob.Localpart, bob)
			c.Expect(t, "730")
			c2.Expect(t, "730")
			c2.Send("MONITOR - %s", bob.Localpart)
			b.Send("QUIT :bye")
			c.Expect(t, "731")
			c2.Send("PING :after")
			c2.ExpectMatch(t, func(m *irc.Message) bool {
				if m.Command == "731" || m.Command == "730" {
					t.Errorf("MONITOR news after MONITOR -: %s", m)
				}
				return m.Command == "PONG"
			}, "PONG")
		})
	}
}

// extended-monitor with setname: a watched account on this gateway that
// shares no room with the watcher changes its display name, and the
// watcher sees SETNAME (no member event would tell it).
func TestMonitorSetname(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(c *Config) { c.AutoRegister.Enabled = true }))
			alice := hs.Register(t, "alice")
			c := connectWithCaps(t, g, "alice", alice, "extended-monitor", "setname")
			c.Drain(t)
			nick := uniq("Anon")
			c.Send("MONITOR + %s", nick)
			c.Expect(t, "731")
			b, _, _ := anonymous(t, g, nick)
			c.Expect(t, "730")
			b.Send("SETNAME :A New Name")
			m := c.ExpectMatch(t, isCmd("SETNAME", "A New Name"), "SETNAME of the monitored user")
			if !strings.EqualFold(m.Prefix.Name, nick) {
				t.Errorf("SETNAME from %s, want %s", m.Prefix, nick)
			}
		})
	}
}
