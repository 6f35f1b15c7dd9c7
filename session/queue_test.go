package session

import (
	"context"
	"testing"
	"time"
)

// Work that only touches the store (history, channel names, settings)
// and read markers does not wait behind a message send, which may retry
// for 45 seconds; a stopping session still finishes both queues before it
// ends.
func TestSideWorkDoesNotWaitBehindSends(t *testing.T) {
	s := unstartedSession(t)
	release, started := make(chan struct{}), make(chan struct{})
	if !s.enqueue(func(ctx context.Context) func() { close(started); <-release; return nil }) {
		t.Fatal("the send was refused")
	}
	<-started
	ran := make(chan struct{})
	if !s.enqueueSide(func(ctx context.Context) func() { close(ran); return nil }) {
		t.Fatal("the side work was refused")
	}
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the side work waited behind a send that has not finished")
	}

	s.handleEvent(stopEvent{})
	if s.ctx.Err() != nil {
		t.Fatal("the session ended with a send still running")
	}
	close(release)
	select {
	case <-s.ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end once both queues were done")
	}
}

// Channel names that cannot be queued for saving are kept to save later,
// not dropped.
func TestUnqueuedNamesAreKept(t *testing.T) {
	s := unstartedSession(t)
	defer s.cancel()
	release := make(chan struct{})
	defer close(release)
	// Fill the queue until it refuses: the worker may already have taken
	// the first job off it.
	for i := 0; s.enqueueSide(func(ctx context.Context) func() { <-release; return nil }); i++ {
		if i > 2*maxJobs {
			t.Fatal("the side queue never fills")
		}
	}
	s.unsavedNames = map[string]string{"!r:x": "#made-up"}
	s.flushNames()
	if s.unsavedNames["!r:x"] != "#made-up" {
		t.Errorf("a name that could not be queued for saving was dropped: %v", s.unsavedNames)
	}
}
