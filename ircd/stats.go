package ircd

import "sync/atomic"

// stats are the server's counters for operators (cmd/mxircd exports them
// to Prometheus).
type stats struct {
	sendQDrops atomic.Uint64 // connections closed for SendQ exceeded
}

// SendQDrops is the number of connections closed because their send queue
// overflowed. Any goroutine.
func (s *Server) SendQDrops() uint64 { return s.stats.sendQDrops.Load() }
