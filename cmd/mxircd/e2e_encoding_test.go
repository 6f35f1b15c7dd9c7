package main

import (
	"strings"
	"testing"

	"github.com/mxircd/mxircd/internal/testenv"
)

// One Matrix event is one line of bytes: a client shown it live and a
// client of the same account given it in its replay get the same tags in
// the same order, and the message as a trailing parameter even when it is
// one word ("PRIVMSG #c :word"), which some scripts need.
func TestSameEventSameBytes(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "bytes")
		caps := []string{"server-time", "message-tags", "account-tag"}
		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", caps...)
		phone := dialClient(t, b.addr(), "alice", alice, "phone", caps...)
		awaitBurst(t, laptop, channel)
		awaitBurst(t, phone, channel)
		seeLive(t, laptop, bob, room)
		quit(t, laptop)

		word := say(t, bob, room, "word")
		untilText(t, phone, "word")
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", caps...)
		attachAndReplay(t, laptop, bob, room, channel)

		find := func(who string, c *testenv.IRCClient) string {
			t.Helper()
			var found []string
			for _, line := range c.Lines() {
				if strings.Contains(line, "msgid="+word.String()) {
					found = append(found, line)
				}
			}
			if len(found) != 1 {
				t.Fatalf("%s got %d lines of the event, want 1: %q", who, len(found), found)
			}
			return found[0]
		}
		live, replayed := find("the live client", phone), find("the replaying client", laptop)
		if live != replayed {
			t.Errorf("one event, two renderings:\n live     %q\n replayed %q", live, replayed)
		}
		if want := " PRIVMSG " + channel + " :word"; !strings.HasSuffix(strings.TrimRight(live, "\r\n"), want) {
			t.Errorf("live line %q does not end in %q", live, want)
		}
		for _, tag := range []string{"account=", "msgid=", "time="} {
			if !strings.Contains(live, tag) {
				t.Errorf("live line %q has no %s tag", live, tag)
			}
		}
	})
}
