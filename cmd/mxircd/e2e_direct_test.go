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
