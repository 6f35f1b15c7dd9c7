package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
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
	release, started := make(chan struct{}), make(chan struct{})
	defer close(release)
	// The worker takes the first job and blocks in it; then the queue is
	// filled until it refuses, so no job leaves it before flushNames.
	if !s.enqueueSide(func(ctx context.Context) func() { close(started); <-release; return nil }) {
		t.Fatal("the first job was refused")
	}
	<-started
	for i := 0; s.enqueueSide(func(ctx context.Context) func() { <-release; return nil }); i++ {
		if i > 2*maxJobs {
			t.Fatal("the side queue never fills")
		}
	}
	s.unsavedNames = map[id.RoomID]string{"!r:x": "#made-up"}
	s.flushNames()
	if s.unsavedNames["!r:x"] != "#made-up" {
		t.Errorf("a name that could not be queued for saving was dropped: %v", s.unsavedNames)
	}
}

// Requests keep their order within a room, and a room whose request does
// not finish (a room key going to 1,000 devices) holds up no other room:
// the other room's requests all run while it blocks. A request of no room
// waits for everything queued before it, and what is queued after it
// waits for it, in whichever room.
func TestRoomLanes(t *testing.T) {
	s := unstartedSession(t)
	defer s.cancel()
	var mu sync.Mutex
	var ran []string
	record := func(name string) job {
		return func(ctx context.Context) func() {
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
			return nil
		}
	}
	slow, blocked := make(chan struct{}), make(chan struct{})
	if !s.enqueueIn("!slow:x", func(ctx context.Context) func() { close(blocked); <-slow; return nil }) {
		t.Fatal("the slow request was refused")
	}
	<-blocked
	// Queued behind the blocked request in its room: must not run.
	s.enqueueIn("!slow:x", record("slow 2"))
	const n = 50
	fast := make(chan struct{})
	for i := range n {
		s.enqueueIn("!fast:x", record(fmt.Sprintf("fast %d", i)))
	}
	s.enqueueIn("!fast:x", func(ctx context.Context) func() { close(fast); return nil })
	// Other rooms, interleaved, in their own lanes.
	for i := range n {
		s.enqueueIn(id.RoomID(fmt.Sprintf("!r%d:x", i%3)), record(fmt.Sprintf("r%d %d", i%3, i)))
	}
	select {
	case <-fast:
	case <-time.After(time.Minute):
		t.Fatal("another room's requests waited behind a room whose request has not finished")
	}
	// No room's request now: it waits for the slow room, and the fast
	// room's next request waits for it.
	global := make(chan struct{})
	s.enqueue(func(ctx context.Context) func() {
		mu.Lock()
		ran = append(ran, "global")
		mu.Unlock()
		close(global)
		return nil
	})
	after := make(chan struct{})
	s.enqueueIn("!fast:x", func(ctx context.Context) func() {
		mu.Lock()
		ran = append(ran, "fast after")
		mu.Unlock()
		close(after)
		return nil
	})
	mu.Lock()
	for _, name := range ran {
		if name == "slow 2" || name == "global" || name == "fast after" {
			t.Errorf("%q ran before the slow room's first request finished", name)
		}
	}
	mu.Unlock()
	close(slow)
	<-after
	<-global

	mu.Lock()
	defer mu.Unlock()
	pos := map[string]int{}
	for i, name := range ran {
		pos[name] = i
	}
	if len(pos) != len(ran) || len(ran) != 2*n+3 {
		t.Fatalf("ran %d requests (%d distinct), want %d once each: %v", len(ran), len(pos), 2*n+3, ran)
	}
	// Each room's order is the order queued.
	last := map[string]int{}
	for _, name := range ran {
		var room string
		var k int
		fmt.Sscanf(name, "%s %d", &room, &k)
		if prev, ok := last[room]; ok && name != "fast after" && name != "slow 2" && k < prev {
			t.Errorf("in room %s, request %d ran after request %d: %v", room, k, prev, ran)
		}
		last[room] = k
	}
	if !(pos["slow 2"] < pos["global"] && pos["global"] < pos["fast after"]) {
		t.Errorf("the request of no room did not keep its order: slow 2 at %d, global at %d, fast after at %d", pos["slow 2"], pos["global"], pos["fast after"])
	}
	for i := range n {
		if name := fmt.Sprintf("fast %d", i); pos[name] > pos["global"] {
			t.Errorf("%s, queued before the request of no room, ran after it", name)
		}
	}
}

// However many rooms have requests waiting, at most maxLanes run at once.
func TestRoomLanesAreBounded(t *testing.T) {
	s := unstartedSession(t)
	defer s.cancel()
	var running, most atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 * maxLanes {
		wg.Add(1)
		s.enqueueIn(id.RoomID(fmt.Sprintf("!r%d:x", i)), func(ctx context.Context) func() {
			defer wg.Done()
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return nil
		})
	}
	waitFor(t, func() bool { return running.Load() == maxLanes }, "maxLanes requests running")
	close(release)
	wg.Wait()
	if m := most.Load(); m != maxLanes {
		t.Errorf("at most %d requests ran at once, want %d", m, maxLanes)
	}
	waitFor(t, func() bool { return !s.jobs.busy() }, "the workers to end")
}
