package session

import (
	"testing"

	"maunium.net/go/mautrix/event"
)

// A refusal is recorded once, only for a session that events wait for,
// and forgotten with them.
func TestWithheldIsToldOnce(t *testing.T) {
	var w waitingKeys
	if got := w.withhold("s1", "why"); got != nil || w.why("s1") != "" {
		t.Fatalf("a refusal for a session nothing waits for was kept (%v, %q)", got, w.why("s1"))
	}
	first := &event.Event{ID: "$first"}
	w.add("s1", first)
	w.add("s1", &event.Event{ID: "$second"})
	if got := w.withhold("s1", "blocked"); got != first {
		t.Errorf("withhold returned %v, want the first waiting event", got)
	}
	if got := w.withhold("s1", "blocked again"); got != nil {
		t.Errorf("a second refusal was news: %v", got)
	}
	if got := w.why("s1"); got != "blocked" {
		t.Errorf("why = %q, want the first reason", got)
	}
	w.arrived("s1")
	w.take()
	if got := w.why("s1"); got != "" {
		t.Errorf("the reason outlived the events: %q", got)
	}
	if got := withheldWhy(&event.RoomKeyWithheldEventContent{Code: "x.custom", Reason: "because"}); got != `"because" (x.custom)` {
		t.Errorf("an unknown code reads %q", got)
	}
}
