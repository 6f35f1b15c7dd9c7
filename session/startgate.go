package session

import (
	"context"
	"sync"
)

// startGate hands out the start slots that bound the first syncs in
// flight (see syncer.run). A session a client is waiting for goes
// before the sessions nobody is waiting for: after a restart of thousands
// of always-on sessions, someone who connects is served by the next slot
// that frees up, not after all the others. The bound holds for both.
type startGate struct {
	mu     sync.Mutex
	free   int
	inUse  int
	urgent []*startWaiter // first come, first served, before...
	normal []*startWaiter // ...these
}

type startWaiter struct {
	ready   chan struct{} // closed when the slot is the waiter's
	granted bool
}

func newStartGate(slots int) *startGate { return &startGate{free: slots} }

// acquire waits for a slot; once hurry is closed the wait goes to the
// front queue. It returns false, holding no slot, when ctx ends first.
func (g *startGate) acquire(ctx context.Context, hurry <-chan struct{}) bool {
	g.mu.Lock()
	if g.free > 0 {
		g.free--
		g.inUse++
		g.mu.Unlock()
		return true
	}
	w := &startWaiter{ready: make(chan struct{})}
	isUrgent := false
	select {
	case <-hurry:
		isUrgent = true
		g.urgent = append(g.urgent, w)
	default:
		g.normal = append(g.normal, w)
	}
	g.mu.Unlock()
	for {
		select {
		case <-w.ready:
			return true
		case <-hurry:
			if !isUrgent {
				isUrgent = true
				g.mu.Lock()
				if !w.granted && remove(&g.normal, w) {
					g.urgent = append(g.urgent, w)
				}
				g.mu.Unlock()
			}
			hurry = nil
		case <-ctx.Done():
			g.mu.Lock()
			if w.granted {
				g.mu.Unlock()
				g.release()
				return false
			}
			if !remove(&g.urgent, w) {
				remove(&g.normal, w)
			}
			g.mu.Unlock()
			return false
		}
	}
}

// release gives a slot back, to the first waiter of the front queue if
// there is one.
func (g *startGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, q := range []*[]*startWaiter{&g.urgent, &g.normal} {
		if len(*q) > 0 {
			w := (*q)[0]
			*q = (*q)[1:]
			w.granted = true
			close(w.ready)
			return
		}
	}
	g.free++
	g.inUse--
}

// held is how many slots are taken.
func (g *startGate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inUse
}

func remove(q *[]*startWaiter, w *startWaiter) bool {
	for i, x := range *q {
		if x == w {
			*q = append((*q)[:i], (*q)[i+1:]...)
			return true
		}
	}
	return false
}
