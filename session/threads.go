package session

import (
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Threads: a message in a thread is shown in its channel marked with the
// thread's root, as a short quote ((thread re bob: "…")), or, for clients
// with message-tags, +draft/reply naming the message it answers (the
// root, when it answers none in particular) and tagThread naming the
// root. A reply from IRC (+draft/reply) to a message in a thread stays in
// that thread: an m.thread relation to the root with the reply as
// m.in_reply_to, which is also the fallback for clients without threads.
// Dendrite v0.15.2 has no /threads endpoint: the service's THREADS
// (search.go) lists a room's threads from the messages the gateway stored.

// tagThread names a thread message's root event for clients with
// message-tags.
const tagThread = "mxircd.org/thread"

// threadRootOf is the root of the thread a message is in, or "".
func threadRootOf(ev *event.Event) id.EventID {
	if c, ok := ev.Content.Parsed.(*event.MessageEventContent); ok {
		return c.RelatesTo.GetThreadParent()
	}
	return ""
}

// threadContext is the quote shown before a thread message to clients
// without message-tags: what it answers, or its thread's root.
func (s *Session) threadContext(a *Attachment, r *room, c *event.MessageEventContent) string {
	target := c.RelatesTo.GetNonFallbackReplyTo()
	if target == "" {
		target = c.RelatesTo.GetThreadParent()
	}
	if m := r.recall(target); m != nil {
		return "(thread re " + s.nickOf(a, m.sender) + ": \"" + m.text + "\") "
	}
	return "(in a thread) "
}

// replyRelation is the relation of a message from IRC that answers
// target in r: in target's thread when target is in one (as far as the
// room's recent messages tell), else a plain reply.
func (s *Session) replyRelation(r *room, target id.EventID) *event.RelatesTo {
	if m := r.recall(target); m != nil && m.thread != "" {
		rel := &event.RelatesTo{Type: event.RelThread, EventID: m.thread}
		return rel.SetReplyTo(target)
	}
	return (&event.RelatesTo{}).SetReplyTo(target)
}
