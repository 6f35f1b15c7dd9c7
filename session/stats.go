package session

import "sync/atomic"

// stats are the manager's counters for operators (cmd/mxircd exports them
// to Prometheus). Everything else they show is read from state the manager
// keeps anyway.
type stats struct {
	toMatrix   atomic.Uint64 // events from IRC clients the homeserver accepted
	fromMatrix atomic.Uint64 // new messages shown to an account, once per account
	// fullStateSyncs counts sessions that resumed with a full-state sync,
	// statesLoaded rooms whose state a resume read from the store.
	fullStateSyncs, statesLoaded atomic.Uint64
}

// countSent counts one send to the homeserver that succeeded (err nil).
func (st *stats) countSent(err error) {
	if err == nil {
		st.toMatrix.Add(1)
	}
}

// MessagesToMatrix is the number of events (messages, reactions) from IRC
// clients that the homeserver accepted. Any goroutine.
func (m *Manager) MessagesToMatrix() uint64 { return m.stats.toMatrix.Load() }

// MessagesFromMatrix is the number of new Matrix messages the sessions
// received, counted once per account that received one (a message in a
// room of three accounts counts three times). Any goroutine.
func (m *Manager) MessagesFromMatrix() uint64 { return m.stats.fromMatrix.Load() }

// SessionStates counts the sessions, including those still finishing
// their queued requests: live ones have applied their first sync; of the
// others, syncing ones hold a start slot (their first sync is in flight)
// and starting ones wait for one. Any goroutine.
func (m *Manager) SessionStates() (starting, syncing, live int) {
	m.mu.Lock()
	total := len(m.sessions) + len(m.ending)
	for _, s := range m.sessions {
		if s.live.Load() {
			live++
		}
	}
	for _, s := range m.ending {
		if s.live.Load() {
			live++
		}
	}
	m.mu.Unlock()
	// A slot is let go just after the response is handed to the owner,
	// which marks the session live when it has applied it; in between
	// the session counts as starting.
	syncing = min(m.startSlots.held(), total-live)
	return total - live - syncing, syncing, live
}

// AttachedClients is the number of IRC clients attached to sessions. Any
// goroutine.
func (m *Manager) AttachedClients() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, refs := range m.attached {
		n += refs
	}
	return n - int(m.lurking.Load())
}

// Lurkers is the number of connections reading as guests (lurk.go). Any
// goroutine.
func (m *Manager) Lurkers() int { return int(m.lurking.Load()) }
