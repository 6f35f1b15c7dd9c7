package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store"
)

// With encryption off (encryption.enabled = false, or when an account's
// keys cannot be loaded), nothing typed on IRC reaches an end-to-end
// encrypted room: every message event is refused with one line, and what
// Matrix never encrypts (topics, redactions) still works there.

func encryptionOff(c *Config) { c.Encryption.Enabled = false }

var encryptionState = &event.Event{
	Type:    event.StateEncryption,
	Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
}

// createEncryptedRoom makes a public room with an alias whose initial
// state has m.room.encryption, as acct.
func createEncryptedRoom(t *testing.T, acct *testenv.Account, aliasLocal string) id.RoomID {
	t.Helper()
	resp, err := acct.Client.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{
		RoomAliasName: aliasLocal, Preset: "public_chat",
		InitialState: []*event.Event{encryptionState},
	})
	if err != nil {
		t.Fatalf("create encrypted room: %v", err)
	}
	return resp.RoomID
}

// roomRaw is every event of room as acct reads it from the homeserver, as
// raw JSON: what anyone with the homeserver's database could read.
func roomRaw(t *testing.T, acct *testenv.Account, room id.RoomID) []string {
	t.Helper()
	var out []string
	from := ""
	for range 100 {
		resp, err := acct.Client.Messages(ctxFor(t), room, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatalf("/messages of %s: %v", room, err)
		}
		for _, ev := range resp.Chunk {
			raw, _ := json.Marshal(ev)
			out = append(out, string(raw))
		}
		if len(resp.Chunk) == 0 || resp.End == "" || resp.End == from {
			return out
		}
		from = resp.End
	}
	t.Fatalf("/messages of %s never ended", room)
	return nil
}

// expectRefusal waits for the one line saying that a message to target was
// not sent because the room is encrypted: FAIL with standard replies (and
// for TAGMSG, whose specification answers with FAIL), NOTICE otherwise.
func expectRefusal(t *testing.T, c *testenv.IRCClient, command, target string, standard bool) {
	t.Helper()
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if !strings.Contains(m.Trailing(), "end-to-end encrypted") || !strings.Contains(m.Trailing(), "not sent") {
			return false
		}
		if standard {
			return m.Command == "FAIL" && m.Param(0) == command && m.Param(1) == "CANNOT_ENCRYPT" && m.Param(2) == target
		}
		return m.Command == "NOTICE" && strings.Contains(m.Trailing(), target)
	}, command+" to "+target+" refused as encrypted")
}

func TestNoPlaintextIntoEncryptedRoom(t *testing.T) {
	forEachStoreWith(t, encryptionOff, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		g := b.g
		alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
		aliasLocal := uniq("sealed")
		room := createEncryptedRoom(t, alice, aliasLocal) // alice is op: she may set the topic
		channel := "#" + aliasLocal + ":" + hs.ServerName
		joinRoom(t, bob, room)
		sent, err := bob.Client.SendText(ctxFor(t), room, "a message to reply to")
		if err != nil {
			t.Fatal(err)
		}

		// One client with standard replies, tags and multiline; one with none.
		c := connectWithCaps(t, g, "alice", alice, "standard-replies", "message-tags", "batch", "draft/multiline", "echo-message")
		c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")
		// In the burst: after NAMES, or before them when they wait for
		// the room's member list (lazy-loaded members).
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && m.Param(0) == channel && strings.Contains(m.Trailing(), "end-to-end encrypted")
		}, "a notice that the channel is encrypted, in its burst")
		waitNames(t, c, channel, bob.Localpart)
		plain := connect(t, g, "alice2", alice)
		plain.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst of the plain client")

		c.Send("PRIVMSG %s :secret one", channel)
		expectRefusal(t, c, "PRIVMSG", channel, true)
		c.Send("NOTICE %s :secret two", channel)
		expectRefusal(t, c, "NOTICE", channel, true)
		c.Send("PRIVMSG %s :\x01ACTION secret three\x01", channel)
		expectRefusal(t, c, "PRIVMSG", channel, true)
		c.Send("BATCH +m1 draft/multiline %s", channel)
		c.Send("@batch=m1 PRIVMSG %s :secret four", channel)
		c.Send("@batch=m1 PRIVMSG %s :secret five", channel)
		c.Send("BATCH -m1")
		expectRefusal(t, c, "PRIVMSG", channel, true)
		c.Send("@+draft/reply=%s PRIVMSG %s :secret six", sent.EventID, channel)
		expectRefusal(t, c, "PRIVMSG", channel, true)
		c.Send("@+draft/reply=%s;+draft/react=secret-seven TAGMSG %s", sent.EventID, channel)
		expectRefusal(t, c, "TAGMSG", channel, true)
		plain.Send("PRIVMSG %s :secret eight", channel)
		expectRefusal(t, plain, "PRIVMSG", channel, false)

		// What Matrix does not encrypt still goes through.
		c.Send("TOPIC %s :an open topic", channel)
		bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
			return ev.Type == event.StateTopic && ev.Sender == alice.UserID
		})
		c.Send("@+typing=active TAGMSG %s", channel)
		own, err := alice.Client.SendText(ctxFor(t), room, "alice's own message from Matrix")
		if err != nil {
			t.Fatal(err)
		}
		c.Send("REDACT %s %s", channel, own.EventID)
		bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
			return ev.Type == event.EventRedaction && ev.Redacts == own.EventID
		})

		for _, raw := range roomRaw(t, bob, room) {
			if strings.Contains(raw, "secret") {
				t.Errorf("text typed on IRC reached the encrypted room: %s", raw)
			}
		}
		for _, m := range c.Drain(t) {
			if m.Command == "PRIVMSG" && strings.Contains(m.Trailing(), "secret") {
				t.Errorf("a refused message was echoed as sent: %s", m)
			}
		}
	})
}

// A DM opened from IRC into an existing encrypted DM room is refused; a new
// DM made by PRIVMSG is unencrypted, and the user is told so before
// anything else of it.
func TestDirectMessagesAndEncryption(t *testing.T) {
	// bob shares no room with alice: his DM invitation is accepted with "all".
	acceptAll := func(c *Config) { encryptionOff(c); c.Matrix.AcceptDMInvites = "all" }
	forEachStoreWith(t, acceptAll, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		g := b.g
		alice, bob, carol := hs.Register(t, "alice"), hs.Register(t, "bob"), hs.Register(t, "carol")
		c := connectWithCaps(t, g, "alice", alice, "standard-replies")
		c.Drain(t)
		ctx := ctxFor(t)

		dm, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{alice.UserID},
			InitialState: []*event.Event{encryptionState},
		})
		if err != nil {
			t.Fatal(err)
		}
		// alice's gateway accepts a DM invite by itself; wait for her join.
		bob.WaitForEvent(t, ctx, dm.RoomID, func(ev *event.Event) bool {
			return ev.Type == event.StateMember && ev.GetStateKey() == alice.UserID.String() && ev.Content.AsMember().Membership == event.MembershipJoin
		})
		if _, err := bob.Client.SendText(ctx, dm.RoomID, "are you there?"); err != nil {
			t.Fatal(err)
		}
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "PRIVMSG" && m.Prefix.Name == bob.Localpart
		}, "bob's DM as a query")
		c.Send("PRIVMSG %s :secret answer", bob.Localpart)
		expectRefusal(t, c, "PRIVMSG", bob.Localpart, true)
		for _, raw := range roomRaw(t, bob, dm.RoomID) {
			if strings.Contains(raw, "secret") {
				t.Errorf("text typed on IRC reached the encrypted DM: %s", raw)
			}
		}

		c.Send("PRIVMSG %s :hello carol", carol.UserID)
		first := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTE" || m.Command == "PRIVMSG" || m.Command == "FAIL"
		}, "the first line about the new DM")
		if first.Command != "NOTE" || first.Param(1) != "UNENCRYPTED_DM" || !strings.Contains(first.Trailing(), "not end-to-end encrypted: end-to-end encryption is off on this gateway") {
			t.Errorf("the first line about the new DM is %s, want a NOTE that it is not encrypted", first)
		}
		var invited id.RoomID
		carol.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
			for roomID := range resp.Rooms.Invite {
				invited = roomID
			}
			return invited != ""
		})
		joinRoom(t, carol, invited)
		waitInRoom(t, carol, invited, "hello carol")
	})
}

// A message waiting in the outbox when the room turned encrypted is not
// sent at the next start, and its sender is told.
func TestOutboxIntoRoomThatTurnedEncrypted(t *testing.T) {
	forEachStoreWith(t, encryptionOff, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "turned")
		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, channel)
		quit(t, laptop)
		b.stop(t)

		// As a run that died with the message accepted and unsent would
		// have left it.
		st, err := store.Open(context.Background(), store.Config{Driver: b.cfg.Store.Driver, Path: b.cfg.Store.Path, DSN: b.cfg.Store.DSN})
		if err != nil {
			t.Fatal(err)
		}
		e := store.OutboxEntry{UserID: alice.UserID, TxnID: "mxircd.1.1~laptop", RoomID: room, Type: event.EventMessage.Type, Content: text("secret left in the outbox")}
		if err := st.PutOutbox(ctxFor(t), &e); err != nil {
			t.Fatal(err)
		}
		st.Close()
		// The room's creator turns encryption on while the gateway is down.
		if _, err := alice.Client.SendStateEvent(ctxFor(t), room, event.StateEncryption, "", encryptionState.Content.Parsed); err != nil {
			t.Fatal(err)
		}

		b.start(t)
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		laptop.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "could not be sent") &&
				strings.Contains(m.Trailing(), "end-to-end encrypted") && strings.Contains(m.Trailing(), "secret left in the outbox")
		}, "NOTICE that the message could not be sent into the encrypted room")
		waitOutbox(t, b.g, alice, "emptied", func(out []store.OutboxEntry) bool { return len(out) == 0 })
		s := sentinel(t, bob, room)
		untilText(t, laptop, s.text)
		for _, raw := range roomRaw(t, bob, room) {
			if strings.Contains(raw, "secret") {
				t.Errorf("the outbox's message reached the encrypted room: %s", raw)
			}
		}
	})
}
