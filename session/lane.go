package session

// helperLane runs one kind of helper work (a LIST of the directory,
// resolving read markers) off the owner goroutine, one at a time: while
// one runs, up to max more wait their turn and later ones are refused, so
// a client that floods a command costs one goroutine, not one per line.
// Its fields are the owner's: the helper reports back through the owner,
// which starts the next.
type helperLane struct {
	what    string // names the helper in a panic's log
	max     int    // how many may wait while one runs
	busy    bool   // a helper is running
	waiting []job
}

// start runs j on a helper goroutine, or queues it behind the one
// running; false when too many wait. The function j returns, if any, is
// applied on the owner. Owner goroutine.
func (l *helperLane) start(s *Session, j job) bool {
	if l.busy {
		if len(l.waiting) >= l.max {
			return false
		}
		l.waiting = append(l.waiting, j)
		return true
	}
	l.busy = true
	s.goSafe(l.what, func() {
		var apply func()
		// Even after a panic the owner hears that the helper ended, or
		// the lane would stay busy for the session's life.
		defer func() { s.post(resultEvent{apply: func() { l.finished(s, apply) }}) }()
		apply = j(s.ctx)
	})
	return true
}

// finished applies a helper's result and starts the next waiting one.
// Owner goroutine.
func (l *helperLane) finished(s *Session, apply func()) {
	l.busy = false
	defer func() {
		// Also when apply panics: the next one still runs.
		if !l.busy && len(l.waiting) > 0 {
			next := l.waiting[0]
			l.waiting[0] = nil
			l.waiting = l.waiting[1:]
			l.start(s, next)
		}
	}()
	if apply != nil {
		apply()
	}
}

// idle says no helper of the lane is running. Owner goroutine.
func (l *helperLane) idle() bool { return !l.busy }
