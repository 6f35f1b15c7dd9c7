package main

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

// After a restart an always-on session resumes from its stored sync token
// with an incremental sync: no full-state sync, its rooms' state read from
// the store. Its channels, members and topics are right, changes made
// while the gateway was down included, and a message sent meanwhile
// arrives once.
func TestRestartResumesIncrementally(t *testing.T) {
	// Without lazy-loaded members, so that the stored state is complete
	// (TestLazyMembers covers a resume with them).
	noLazy := func(c *Config) { c.Matrix.LazyMembers = false }
	forEachStoreWith(t, noLazy, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "resume")
		carol := hs.Register(t, "carol")
		ctx := ctxFor(t)
		_, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Resume Lounge", Topic: "lounge topic", Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Client.SendStateEvent(ctx, room, event.StateTopic, "", &event.TopicEventContent{Topic: "before the restart"}); err != nil {
			t.Fatal(err)
		}

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		burst := awaitBurst(t, laptop, channel)
		var lounge string
		for _, m := range burst {
			if m.Command == "JOIN" && m.Param(0) != channel {
				lounge = m.Param(0)
			}
		}
		if lounge == "" {
			burst = append(burst, awaitJoinOther(t, laptop, channel)...)
			for _, m := range burst {
				if m.Command == "JOIN" && m.Param(0) != channel {
					lounge = m.Param(0)
				}
			}
		}
		waitNames(t, laptop, channel, bob.Localpart)
		quit(t, laptop)
		waitSessions(t, b.g, 1)
		before := say(t, bob, room, "before the restart")
		waitStored(t, b.g, alice.UserID, before)

		b.stop(t)
		if _, err := alice.Client.SendStateEvent(ctx, room, event.StateTopic, "", &event.TopicEventContent{Topic: "set while down"}); err != nil {
			t.Fatal(err)
		}
		joinRoom(t, carol, room)
		down := say(t, bob, room, "while the gateway is down")
		b.start(t)
		waitSessions(t, b.g, 1)
		waitStored(t, b.g, alice.UserID, down)

		if n := b.g.sessions.FullStateSyncs(); n != 0 {
			t.Errorf("%d sessions resumed with a full-state sync, want none", n)
		}
		if n := b.g.sessions.RoomStatesLoaded(); n < 2 {
			t.Errorf("%d rooms' state loaded from the store, want both of alice's", n)
		}

		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		burst = awaitBurst(t, laptop, channel, lounge)
		topics := map[string]string{}
		names := map[string][]string{}
		for _, m := range burst {
			switch m.Command {
			case irc.RPL_TOPIC:
				topics[m.Param(1)] = m.Trailing()
			case irc.RPL_NAMREPLY:
				names[m.Param(2)] = append(names[m.Param(2)], strings.Fields(m.Trailing())...)
			}
		}
		if got := topics[channel]; got != "set while down" {
			t.Errorf("topic of %s after the restart: %q, want the one set while the gateway was down", channel, got)
		}
		if got := topics[lounge]; got != "lounge topic" {
			t.Errorf("topic of %s after the restart: %q", lounge, got)
		}
		for _, want := range []string{"@alice", bob.Localpart, carol.Localpart} {
			if !slices.Contains(names[channel], want) {
				t.Errorf("NAMES of %s after the restart: %v, want %s among them", channel, names[channel], want)
			}
		}
		if n := b.g.sessions.MemberFetches(); n != 0 {
			t.Errorf("%d member lists fetched after a resume, want none: the stored state of a gateway that never loaded members lazily is complete", n)
		}
		s := sentinel(t, bob, room)
		rest, _ := untilText(t, laptop, s.text)
		var got []string
		for _, m := range channelMessages(append(burst, rest...), channel) {
			got = append(got, m.Trailing())
		}
		for _, text := range []string{"before the restart", "while the gateway is down"} {
			if n := countOf(got, text); n != 1 {
				t.Errorf("%q replayed %d times, want once: %q", text, n, got)
			}
		}
	})
}

// awaitJoinOther waits for the JOIN of a channel other than channel.
func awaitJoinOther(t *testing.T, c *testenv.IRCClient, channel string) []*irc.Message {
	t.Helper()
	var lines []*irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		lines = append(lines, m)
		return m.Command == "JOIN" && m.Param(0) != channel
	}, "the JOIN of the second room")
	return lines
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
