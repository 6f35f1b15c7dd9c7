package main

import (
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Threads (issue 18): a thread message is marked with its root (a quote,
// or +draft/reply and mxircd.org/thread tags); a reply from IRC to a
// message in a thread stays in the thread.
func TestThreads(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) { testThreads(t, hs, g) })
}

func testThreads(t *testing.T, hs *testenv.Homeserver, g *gateway) {
	alice, bob, room, channel := twoInARoom(t, hs, "threads")
	plain := connect(t, g, "alice", alice)
	plain.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
	waitNames(t, plain, channel, bob.Localpart)
	ctx := ctxFor(t)
	tagged := connectWithCaps(t, g, "alicet", alice, "message-tags", "echo-message")
	tagged.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alicet", channel), "tagged client's burst")

	root := say(t, bob, room, "shall we meet at noon?")
	expectFrom(t, plain, "PRIVMSG", bob.Localpart, "shall we meet at noon?")
	expectFrom(t, tagged, "PRIVMSG", bob.Localpart, "shall we meet at noon?")
	inThread := sendContent(t, bob, room, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "noon works for me",
		RelatesTo: (&event.RelatesTo{}).SetThread(root, root),
	})
	m := expectFrom(t, plain, "PRIVMSG", bob.Localpart, "noon works for me")
	if want := "(thread re " + bob.Localpart + ": \"shall we meet at noon?\") noon works for me"; m.Trailing() != want {
		t.Errorf("thread message without tags = %q, want %q", m.Trailing(), want)
	}
	m = expectFrom(t, tagged, "PRIVMSG", bob.Localpart, "noon works for me")
	if m.Trailing() != "noon works for me" || m.Tags["+draft/reply"] != root.String() || m.Tags["mxircd.org/thread"] != root.String() {
		t.Errorf("thread message with tags = %s, want +draft/reply and mxircd.org/thread = %s", m, root)
	}

	// alice answers the thread message from IRC: it stays in the thread.
	tagged.Send("@+draft/reply=%s PRIVMSG %s :see you there", inThread, channel)
	ev := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "see you there"
	})
	rel := ev.Content.AsMessage().RelatesTo
	if rel.GetThreadParent() != root || rel.GetReplyTo() != inThread || rel.IsFallingBack {
		t.Errorf("IRC reply in a thread relates %+v, want m.thread to %s replying to %s (not falling back)", rel, root, inThread)
	}
	// A reply to a message outside any thread stays a plain reply.
	tagged.Send("@+draft/reply=%s PRIVMSG %s :about noon", root, channel)
	ev = bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "about noon"
	})
	if rel := ev.Content.AsMessage().RelatesTo; rel.GetThreadParent() != "" || rel.GetReplyTo() != root {
		t.Errorf("IRC reply to a root relates %+v, want a plain reply to %s", rel, id.EventID(root))
	}
}
