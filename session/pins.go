package session

import (
	"encoding/json"
	"slices"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Pinned events: a change of m.room.pinned_events shows as a notice from
// who made it, naming each message pinned or unpinned (with a quote when
// the room's recent messages hold it). What was pinned before comes from
// the event's prev_content.

// showPins tells clients what a pinned-events change pinned and unpinned.
func (s *Session) showPins(r *room, ev *event.Event) {
	if s.isIgnored(ev.Sender) || !parseContent(ev) {
		return
	}
	now := ev.Content.AsPinnedEvents().Pinned
	var before []id.EventID
	if ev.Unsigned.PrevContent != nil {
		var prev event.PinnedEventsEventContent
		if json.Unmarshal(ev.Unsigned.PrevContent.VeryRaw, &prev) == nil {
			before = prev.Pinned
		}
	}
	var pinned, unpinned []id.EventID
	for _, e := range now {
		if !slices.Contains(before, e) {
			pinned = append(pinned, e)
		}
	}
	for _, e := range before {
		if !slices.Contains(now, e) {
			unpinned = append(unpinned, e)
		}
	}
	if len(pinned) == 0 && len(unpinned) == 0 {
		return
	}
	s.broadcastIn(r, ev.ID, live, func(a *Attachment, out output) {
		var parts []string
		if len(pinned) > 0 {
			parts = append(parts, "pinned "+s.pinList(a, r, pinned))
		}
		if len(unpinned) > 0 {
			parts = append(parts, "unpinned "+s.pinList(a, r, unpinned))
		}
		s.sendNote(a, out, r, ev, strings.Join(parts, " and "))
	})
}

// pinList names pinned messages: a quote where the message is known, its
// ID otherwise (CHATHISTORY AROUND can show it).
func (s *Session) pinList(a *Attachment, r *room, events []id.EventID) string {
	names := make([]string, len(events))
	for i, e := range events {
		if m := r.recall(e); m != nil {
			names[i] = s.nickOf(a, m.sender) + "'s message \"" + m.text + "\""
		} else {
			names[i] = "message " + string(e)
		}
	}
	return strings.Join(names, ", ")
}
