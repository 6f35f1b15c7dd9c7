package main

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Room upgrades (issue 18): when a room is replaced, alice's account
// follows to the successor, and the channel keeps its name: a NOTICE, a
// PART of the old room, a JOIN of the new one under the same name, and
// from then on the channel is the new room both ways. (Dendrite v0.15.2
// upgrades rooms and moves the alias; history across the upgrade stays
// with each room.)
func TestRoomUpgrade(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "upgrade")
		ctx := ctxFor(t)
		// bob may upgrade the room.
		pl := powerLevels(t, alice, room)
		pl.SetUserLevel(bob.UserID, 100)
		if _, err := alice.Client.SendStateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
			t.Fatal(err)
		}
		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
		waitNames(t, c, channel, bob.Localpart)

		resp, err := bob.Client.UpgradeRoom(ctx, room, &mautrix.ReqUpgradeRoom{NewVersion: "10"})
		if err != nil {
			t.Fatal(err)
		}
		next := resp.ReplacementRoom
		var seen []*irc.Message
		c.ExpectMatch(t, func(m *irc.Message) bool {
			seen = append(seen, m)
			return m.Command == "JOIN" && m.Param(0) == channel && m.Prefix.Name == "alice"
		}, "alice's JOIN of the new room under the old name")
		var notice, part bool
		for _, m := range seen[:len(seen)-1] {
			switch {
			case m.Command == "NOTICE" && m.Param(0) == channel && strings.Contains(m.Trailing(), "upgraded to a new room"):
				notice = true
			case m.Command == "PART" && m.Param(0) == channel && m.Prefix.Name == "alice":
				if !notice {
					t.Errorf("PART before the notice saying why")
				}
				part = true
			case m.Command == "PART" || m.Command == "JOIN" || m.Command == "RENAME":
				t.Errorf("unexpected %s during the upgrade", m)
			}
		}
		if !notice || !part {
			t.Errorf("before the JOIN: notice %v, part %v; lines:\n%s", notice, part, formatMsgs(seen))
		}
		waitMembership(t, bob, next, alice.UserID, event.MembershipJoin)

		// The channel is the new room now, both ways.
		if _, err := bob.Client.SendText(ctx, next, "welcome to the new room"); err != nil {
			t.Fatal(err)
		}
		if m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "welcome to the new room"); m.Param(0) != channel {
			t.Errorf("a message in the new room arrived as %s, want it in %s", m, channel)
		}
		c.Send("PRIVMSG %s :glad to be here", channel)
		bob.WaitForEvent(t, ctx, next, func(ev *event.Event) bool {
			return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "glad to be here"
		})
		c.Send("LIST")
		n := 0
		c.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == irc.RPL_LIST && m.Param(1) == channel {
				n++
			}
			return m.Command == irc.RPL_LISTEND
		}, "LIST")
		if n != 1 {
			t.Errorf("LIST shows %s %d times, want once", channel, n)
		}

		// After a restart of the session (a new client on a fresh
		// gateway), the old room stays hidden.
		g2 := testGateway(t, hs, "sqlite")
		c2 := connect(t, g2, "alice", alice)
		awaitBurst(t, c2, channel)
		c2.Send("NAMES %s", channel) // answered after the whole burst
		c2.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "366 after the burst")
		joins := 0
		for _, line := range c2.Lines() {
			m, err := irc.ParseMessage(line)
			if err == nil && m.Command == "JOIN" {
				joins++
				if m.Param(0) != channel {
					t.Errorf("after a restart the old room shows as %s", m.Param(0))
				}
			}
		}
		if joins != 1 {
			t.Errorf("%d channels after a restart, want 1", joins)
		}
	})
}
