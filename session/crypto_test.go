package session

import (
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Events waiting for a key are bounded, asked for again on a schedule,
// and handed over once when their key lands.
func TestWaitingKeys(t *testing.T) {
	var w waitingKeys
	ev := func(n int) *event.Event { return &event.Event{ID: id.EventID("$" + string(rune('a'+n%26)))} }
	if !w.add("s1", ev(1)) || w.add("s1", ev(2)) || !w.add("s2", ev(3)) {
		t.Fatal("add should say first only for a session's first event")
	}
	now := time.Now()
	if got := w.due(now); len(got) != 0 {
		t.Errorf("asked again at once: %v", got)
	}
	if got := w.due(now.Add(6 * time.Second)); len(got) != 2 {
		t.Errorf("after 6 s, %d sessions asked again, want 2", len(got))
	}
	if got := w.due(now.Add(7 * time.Second)); len(got) != 0 {
		t.Errorf("asked again twice in a row: %v", got)
	}
	if got := w.take(); got != nil {
		t.Errorf("took %v before any key landed", got)
	}
	w.arrived("s1")
	w.arrived("unknown")
	if got := w.take(); len(got) != 2 {
		t.Errorf("took %d events for s1, want 2", len(got))
	}
	if got := w.take(); got != nil {
		t.Errorf("took %v twice", got)
	}
	for i := range maxWaiting + 10 {
		w.add(id.SessionID("bulk"+string(rune(i))), ev(i))
	}
	if w.n > maxWaiting || len(w.events) > maxWaiting || len(w.asked) > maxWaiting {
		t.Errorf("%d events in %d sessions kept, %d asks: over the bound %d", w.n, len(w.events), len(w.asked), maxWaiting)
	}
}
