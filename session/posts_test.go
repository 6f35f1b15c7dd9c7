package session

import (
	"context"
	"testing"
)

// What other sessions post reaches the owner in the order they posted it,
// without the posters waiting on the owner: a MONITOR told a nick's change
// of case and then its release must not hear them the other way round.
func TestPostFromOtherKeepsOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Session{ctx: ctx, events: make(chan any)} // unbuffered: every post waits for the owner
	const n = 500
	for i := range n {
		s.postFromOther(i) // returns at once though nothing reads yet
	}
	for want := range n {
		if got := <-s.events; got != want {
			t.Fatalf("event %d arrived as the %dth", got, want)
		}
	}
	// A stopped session drops what waits, and later posts return at once.
	s.postFromOther(-1)
	cancel()
	s.postFromOther(-2)
}
