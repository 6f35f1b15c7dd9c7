package ircd

import (
	"slices"
	"sync"
	"testing"
)

func takeStrings(q *sendQueue) ([]string, bool) {
	lines, _, done := q.take(nil)
	var out []string
	for _, l := range lines {
		out = append(out, string(l))
	}
	return out, done
}

func woken(q *sendQueue) bool {
	select {
	case <-q.wake:
		return true
	default:
		return false
	}
}

func TestSendQueuePushTakeInOrder(t *testing.T) {
	q := newSendQueue(100)
	if !q.push([]byte("a\r\n"), []byte("FINAL")) || !q.push([]byte("b\r\n"), []byte("FINAL")) {
		t.Fatal("push into a queue with room failed")
	}
	if !woken(q) {
		t.Error("push did not wake the writer")
	}
	got, done := takeStrings(q)
	if !equalStrings(got, []string{"a\r\n", "b\r\n"}) || done {
		t.Fatalf("take = %q, done %v; want both lines, not done", got, done)
	}
	if got, done := takeStrings(q); len(got) != 0 || done {
		t.Fatalf("second take = %q, done %v; want nothing, not done", got, done)
	}
	// take gives the bytes back: the queue holds max again after a drain.
	for i := range 10 {
		if !q.push(make([]byte, 10), nil) {
			t.Fatalf("push %d of 10 bytes into a drained 100-byte queue failed", i)
		}
	}
	if q.overflowed() {
		t.Fatal("a queue filled exactly to max overflowed")
	}
}

func TestSendQueueClose(t *testing.T) {
	q := newSendQueue(100)
	q.push([]byte("a"), nil)
	woken(q)
	q.close([]byte("ERROR"))
	if !woken(q) {
		t.Error("close did not wake the writer")
	}
	// The writer drains what was queued, then the final line, then stops.
	got, done := takeStrings(q)
	if !equalStrings(got, []string{"a", "ERROR"}) || !done {
		t.Fatalf("take = %q, done %v; want [a ERROR], done", got, done)
	}
	if q.push([]byte("late"), []byte("FINAL")) {
		t.Error("push after close succeeded")
	}
	if q.overflowed() {
		t.Error("push after close counted as overflow")
	}
	q.close([]byte("ERROR again")) // idempotent: no second final line
	if got, done := takeStrings(q); len(got) != 0 || !done {
		t.Fatalf("take after close = %q, done %v; want nothing, done", got, done)
	}
}

func TestSendQueueCloseWithoutFinal(t *testing.T) {
	q := newSendQueue(100)
	q.close(nil)
	if got, done := takeStrings(q); len(got) != 0 || !done {
		t.Fatalf("take = %q, done %v; want nothing, done", got, done)
	}
}

func TestSendQueueOverflow(t *testing.T) {
	q := newSendQueue(10)
	if !q.push([]byte("123456"), []byte("SENDQ")) {
		t.Fatal("first push failed")
	}
	if q.push([]byte("789012"), []byte("SENDQ")) {
		t.Fatal("push beyond max succeeded")
	}
	if !q.overflowed() {
		t.Fatal("overflowed() = false after overflow")
	}
	// What was queued is dropped: the client is going away and the session
	// replays from its own history, so only the final line is written.
	got, done := takeStrings(q)
	if !equalStrings(got, []string{"SENDQ"}) || !done {
		t.Fatalf("take = %q, done %v; want [SENDQ], done", got, done)
	}
	if q.push([]byte("x"), []byte("SENDQ")) {
		t.Error("push after overflow succeeded")
	}
	q.close([]byte("ERROR")) // the Close that follows must not add a line
	if got, _ := takeStrings(q); len(got) != 0 {
		t.Fatalf("take after close = %q; want nothing", got)
	}
}

func TestSendQueueSingleLineOverMax(t *testing.T) {
	q := newSendQueue(10)
	if q.push(make([]byte, 11), []byte("SENDQ")) || !q.overflowed() {
		t.Fatal("a line bigger than the whole queue did not overflow it")
	}
}

// TestSendQueueConcurrent has many producers and one writer, as a Conn
// does; under -race it checks the locking, and it checks that no line is
// lost or reordered per producer.
func TestSendQueueConcurrent(t *testing.T) {
	const producers, perProducer = 8, 500
	q := newSendQueue(1 << 30)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				q.push([]byte{byte(p), byte(i >> 8), byte(i)}, nil)
			}
		}()
	}
	go func() {
		wg.Wait()
		q.close(nil)
	}()
	next := make([]int, producers)
	var buf [][]byte
	for {
		lines, _, done := q.take(buf)
		for _, l := range lines {
			p, i := int(l[0]), int(l[1])<<8|int(l[2])
			if i != next[p] {
				t.Fatalf("producer %d: got line %d, want %d", p, i, next[p])
			}
			next[p]++
		}
		buf = lines
		if done {
			break
		}
		<-q.wake
	}
	for p, n := range next {
		if n != perProducer {
			t.Errorf("producer %d: got %d lines, want %d", p, n, perProducer)
		}
	}
}

func TestSendQueueCheckpoints(t *testing.T) {
	q := newSendQueue(100)
	var ran []string
	mark := func(s string) checkpoint { return checkpoint{commit: func() { ran = append(ran, s) }} }
	q.push([]byte("a\r\n"), nil)
	q.mark(mark("after a"))
	lines, marks, _ := q.take(nil)
	if len(lines) != 1 || len(marks) != 1 {
		t.Fatalf("take = %d lines, %d marks; want 1, 1", len(lines), len(marks))
	}
	marks[0].commit()
	if _, marks, _ := q.take(nil); len(marks) != 0 {
		t.Fatalf("a mark was handed out twice")
	}
	// Overflow drops marks: their lines never reach the client.
	q.push([]byte("b\r\n"), []byte("FINAL"))
	q.mark(mark("after b"))
	q.push(make([]byte, 200), []byte("FINAL"))
	if _, marks, _ := q.take(nil); len(marks) != 0 {
		t.Fatalf("marks survived an overflow: %d", len(marks))
	}
	q.mark(mark("after close"))
	if _, marks, _ := q.take(nil); len(marks) != 0 {
		t.Fatalf("a mark was queued on a closed queue")
	}
	if len(ran) != 1 || ran[0] != "after a" {
		t.Fatalf("ran = %v", ran)
	}
}

// Checkpoints with one key fold while the writer has not taken them: the
// last commit and the first undo stand for them all; those without a key,
// or with another, stay as they are.
func TestSendQueueFoldsCheckpoints(t *testing.T) {
	q := newSendQueue(1 << 20)
	var ran []string
	mark := func(key, s string) checkpoint {
		return checkpoint{key: key, commit: func() { ran = append(ran, "commit "+s) }, undo: func() { ran = append(ran, "undo "+s) }}
	}
	q.mark(mark("cursor", "1"))
	q.push([]byte("a\r\n"), nil)
	q.mark(mark("", "wait"))
	q.mark(mark("cursor", "2"))
	q.push([]byte("b\r\n"), nil)
	q.mark(mark("other", "x"))
	q.mark(mark("cursor", "3"))
	_, marks, _ := q.take(nil)
	for _, cp := range marks {
		cp.commit()
		cp.undo()
	}
	want := []string{"commit 3", "undo 1", "commit wait", "undo wait", "commit x", "undo x"}
	if !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	// Taken checkpoints are not folded into.
	ran = nil
	q.mark(mark("cursor", "4"))
	_, marks, _ = q.take(nil)
	if len(marks) != 1 {
		t.Fatalf("took %d marks, want 1", len(marks))
	}
	marks[0].commit()
	if !slices.Equal(ran, []string{"commit 4"}) {
		t.Errorf("ran %v after the take, want commit 4", ran)
	}
}
