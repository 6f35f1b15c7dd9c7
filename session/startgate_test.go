package session

import (
	"context"
	"testing"
)

// A session a client attaches to while the start slots are all taken gets
// the next free one, before sessions that waited longer with nobody
// waiting for them; the bound on slots holds throughout.
func TestStartGateServesAttachedFirst(t *testing.T) {
	g := newStartGate(1)
	ctx := context.Background()
	if !g.acquire(ctx, nil) {
		t.Fatal("the free slot was not given")
	}
	queued := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.normal) + len(g.urgent)
	}
	got := make(chan string, 3)
	wait := func(name string, hurry <-chan struct{}) {
		go func() {
			if g.acquire(ctx, hurry) {
				got <- name
			}
		}()
	}
	wait("idle1", nil)
	waitFor(t, func() bool { return queued() == 1 }, "idle1 queued")
	wait("idle2", nil)
	waitFor(t, func() bool { return queued() == 2 }, "idle2 queued")
	hurry := make(chan struct{})
	wait("attached", hurry)
	waitFor(t, func() bool { return queued() == 3 }, "attached queued")
	close(hurry) // a client attaches to the last one queued
	waitFor(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.urgent) == 1
	}, "attached moved to the front")

	for _, want := range []string{"attached", "idle1", "idle2"} {
		g.release()
		if who := <-got; who != want {
			t.Fatalf("slot went to %s, want %s", who, want)
		}
		if n := g.held(); n != 1 {
			t.Fatalf("%d slots held, want 1", n)
		}
	}
	g.release()
	if n := g.held(); n != 0 {
		t.Errorf("%d slots held after all were released", n)
	}
}

// A waiter that gives up holds no slot and leaves the queue.
func TestStartGateCancel(t *testing.T) {
	g := newStartGate(1)
	if !g.acquire(context.Background(), nil) {
		t.Fatal("the free slot was not given")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- g.acquire(ctx, nil) }()
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.normal) == 1 }, "queued")
	cancel()
	if <-done {
		t.Fatal("a cancelled wait got a slot")
	}
	g.release()
	if n := g.held(); n != 0 {
		t.Errorf("%d slots held, want 0", n)
	}
	if !g.acquire(context.Background(), nil) {
		t.Error("the released slot was not free")
	}
}
