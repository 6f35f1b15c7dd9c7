package main

import (
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Direct messages are queries: a DM opened from Matrix arrives as PRIVMSG
// to the user, with its first message; PRIVMSG to a nick or Matrix ID
// answers in, or creates, the DM room, recorded in m.direct.
func TestDirectMessages(t *testing.T) {
	// carol reads with a client that does not decrypt. bob shares no room
	// with alice, so his DM invitation is accepted only with "all".
	unencryptedDMs := func(c *Config) {
		c.Encryption.EncryptNewDMs = false
		c.Matrix.AcceptDMInvites = "all"
	}
	forEachStoreWith(t, unencryptedDMs, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		g := b.g
		alice, bob, carol := hs.Register(t, "alice"), hs.Register(t, "bob"), hs.Register(t, "carol")
		c := connect(t, g, "alice", alice)
		c.Drain(t)
		ctx := ctxFor(t)

		dm, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{alice.UserID},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Client.SendText(ctx, dm.RoomID, "psst, alice"); err != nil {
			t.Fatal(err)
		}
		m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "psst, alice")
		if m.Param(0) != "alice" {
			t.Errorf("DM arrived as %s, want a PRIVMSG to alice", m)
		}
		c.Send("PRIVMSG %s :hi back", bob.Localpart)
		ev := bob.WaitForEvent(t, ctx, dm.RoomID, func(ev *event.Event) bool {
			return ev.Type == event.EventMessage && ev.Sender == alice.UserID
		})
		if body := ev.Content.AsMessage().Body; body != "hi back" {
			t.Errorf("bob got %q", body)
		}

		// A first message to someone with no DM yet creates one.
		c.Send("PRIVMSG %s :hello carol", carol.UserID)
		c.Send("PRIVMSG %s :second line", carol.UserID)
		var invited id.RoomID
		carol.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
			for roomID := range resp.Rooms.Invite {
				invited = roomID
			}
			return invited != ""
		})
		joinRoom(t, carol, invited)
		// Dendrite can send a room just joined twice, in the sync after the
		// join and in the next, so each event counts once.
		var got []string
		counted := map[id.EventID]bool{}
		carol.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
			for _, ev := range timeline(resp, invited) {
				if ev.Type == event.EventMessage && ev.Sender == alice.UserID && !counted[ev.ID] {
					counted[ev.ID] = true
					ev.Content.ParseRaw(ev.Type)
					got = append(got, ev.Content.AsMessage().Body)
				}
			}
			return len(got) >= 2
		})
		if got[0] != "hello carol" || got[1] != "second line" {
			t.Errorf("carol got %q, want both lines in order", got)
		}
		var direct event.DirectChatsEventContent
		if err := alice.Client.GetAccountData(ctx, event.AccountDataDirectChats.Type, &direct); err != nil {
			t.Fatal(err)
		}
		if rooms := direct[carol.UserID]; len(rooms) != 1 || rooms[0] != invited {
			t.Errorf("m.direct for carol = %v, want [%s]", rooms, invited)
		}

		if _, err := carol.Client.SendText(ctx, invited, "hi alice"); err != nil {
			t.Fatal(err)
		}
		expectFrom(t, c, "PRIVMSG", carol.Localpart, "hi alice")

		// No channel was opened for either query.
		c.Drain(t)
		for _, line := range c.Lines() {
			if m, err := irc.ParseMessage(line); err == nil && m.Command == "JOIN" {
				t.Errorf("a DM showed up as a channel: %s", line)
			}
		}
		c.Send("PRIVMSG nobody-at-all :hi")
		c.Expect(t, irc.ERR_NOSUCHNICK)
	})
}

// A reply to someone who invited the account to a DM goes into that room:
// it accepts the invitation, as JOIN of it would, rather than making a
// second room for the same conversation (which left each side's history
// of the query split across two rooms). The room is encrypted (the
// gateway encrypts the DMs it creates), and the reply, sent before sync
// has shown the room, is encrypted too.
func TestReplyAcceptsDirectInvite(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
		ca := connect(t, g, "alice", alice)
		ca.Expect(t, irc.RPL_ENDOFMOTD)
		cb := connect(t, g, "bob", bob)
		cb.Expect(t, irc.RPL_ENDOFMOTD)
		// Each gateway device can be sent keys only once it has published
		// its own, which comes after the welcome.
		waitGatewayDevice(t, alice)
		waitGatewayDevice(t, bob)

		// They share no room, so bob's invitation waits (accept_dm_invites
		// "known").
		ca.Send("PRIVMSG %s :hello bob", bob.Localpart)
		cb.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "INVITE" && m.Prefix != nil && m.Prefix.Name == alice.Localpart
		}, "alice's DM invitation")
		cb.Send("PRIVMSG %s :hi alice", alice.Localpart)
		m := expectFrom(t, ca, "PRIVMSG", bob.Localpart, "hi alice")
		if m.Param(0) != "alice" {
			t.Errorf("bob's reply arrived as %s, want a PRIVMSG to alice", m)
		}
		expectFrom(t, cb, "PRIVMSG", alice.Localpart, "hello bob") // the invitation's first words

		ctx := ctxFor(t)
		joined, err := bob.Client.JoinedRooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(joined.JoinedRooms) != 1 {
			t.Fatalf("bob is in %v, want only alice's DM", joined.JoinedRooms)
		}
		room := joined.JoinedRooms[0]
		var direct event.DirectChatsEventContent
		if err := alice.Client.GetAccountData(ctx, event.AccountDataDirectChats.Type, &direct); err != nil {
			t.Fatal(err)
		}
		if rooms := direct[bob.UserID]; len(rooms) != 1 || rooms[0] != room {
			t.Errorf("alice's m.direct for bob = %v, want [%s]", rooms, room)
		}
		var enc event.EncryptionEventContent
		if err := bob.Client.StateEvent(ctx, room, event.StateEncryption, "", &enc); err != nil {
			t.Fatalf("the DM alice's gateway made is not encrypted: %v", err)
		}
		msgs, err := bob.Client.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatal(err)
		}
		replies := 0
		for _, ev := range msgs.Chunk {
			switch {
			case ev.Sender != bob.UserID:
			case ev.Type == event.EventMessage:
				t.Errorf("bob's reply went into the encrypted DM in the clear: %s", ev.Content.VeryRaw)
			case ev.Type == event.EventEncrypted:
				replies++
			}
		}
		if replies != 1 {
			t.Errorf("bob sent %d encrypted events into the DM, want his one reply", replies)
		}
	})
}
