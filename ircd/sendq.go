package ircd

import "sync"

// sendQueue is a byte-bounded FIFO of encoded lines between any number of
// producers (the session owner, the connection's reader) and one writer
// goroutine. Push never blocks: a client that does not read fast enough
// overflows its queue and is disconnected, instead of stalling the producer.
type sendQueue struct {
	mu       sync.Mutex
	lines    [][]byte
	marks    []checkpoint // run by the writer around the write of the lines before them
	bytes    int
	max      int
	closed   bool
	overflow bool
	wake     chan struct{} // capacity 1: a pending wake-up for the writer
}

func newSendQueue(max int) *sendQueue {
	return &sendQueue{max: max, wake: make(chan struct{}, 1)}
}

// push appends one line. It returns false when the queue is closed or the
// line overflowed it; on overflow the queue drops what it holds, keeps only
// final (a last line for the client), and closes.
func (q *sendQueue) push(line []byte, final []byte) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.bytes+len(line) > q.max {
		q.lines = append(q.lines[:0], final)
		q.marks = nil
		q.bytes = len(final)
		q.closed = true
		q.overflow = true
		q.mu.Unlock()
		q.signal()
		return false
	}
	q.lines = append(q.lines, line)
	q.bytes += len(line)
	q.mu.Unlock()
	q.signal()
	return true
}

// close lets the writer drain what is queued (plus final, if any) and stop.
func (q *sendQueue) close(final []byte) {
	q.mu.Lock()
	if !q.closed {
		if final != nil {
			q.lines = append(q.lines, final)
			q.bytes += len(final)
		}
		q.closed = true
	}
	q.mu.Unlock()
	q.signal()
}

// checkpoint records delivery around a write (see Conn.Checkpoint).
type checkpoint struct {
	// key names checkpoints that fold: of those with one key that the
	// writer takes at once, the last commit stands for all, and the first
	// undo. "" never folds.
	key          string
	commit, undo func()
}

// mark queues a checkpoint after the lines pushed so far. It is dropped,
// never run, when the queue closes or overflows first. The writer runs
// every checkpoint it takes before it writes any line it takes with them,
// so a checkpoint with the key of one not taken yet folds into it: that
// one's commit becomes this one's, and its undo stays.
func (q *sendQueue) mark(cp checkpoint) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	folded := false
	if cp.key != "" {
		for i := range q.marks {
			if q.marks[i].key == cp.key {
				q.marks[i].commit = cp.commit
				folded = true
				break
			}
		}
	}
	if !folded {
		q.marks = append(q.marks, cp)
	}
	q.mu.Unlock()
	q.signal()
}

func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take hands the writer everything queued, and the checkpoints among
// those lines. done reports that the queue is closed and nothing more will
// come after these lines.
func (q *sendQueue) take(buf [][]byte) (lines [][]byte, marks []checkpoint, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	lines = append(buf[:0], q.lines...)
	clear(q.lines)
	q.lines = q.lines[:0]
	q.bytes = 0
	marks, q.marks = q.marks, nil
	return lines, marks, q.closed
}

func (q *sendQueue) overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.overflow
}
