package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// capRecorder is a recorder that negotiated the given capabilities.
type capRecorder struct {
	recorder
	caps map[string]bool
}

func (c *capRecorder) HasCap(name string) bool { return c.caps[name] }

// unstartedSession is a session whose owner goroutine the test plays
// itself; it has no store and no homeserver.
func unstartedSession(t *testing.T) *Session {
	t.Helper()
	m := NewManager(Config{}, nil)
	cli, err := mautrix.NewClient("http://hs.invalid", "@me:x", "token")
	if err != nil {
		t.Fatal(err)
	}
	return newSession(m, cli)
}

// A client's reader goroutine closes the connection when the session has
// ended, while the owner renders a labeled response to the same client:
// the two must not share a field that the owner changes.
func TestAttachmentClientIsNotSwapped(t *testing.T) {
	s := unstartedSession(t)
	s.synced = true
	conn := &capRecorder{caps: map[string]bool{"labeled-response": true, "batch": true}}
	a := newAttachment(s, conn, "")
	s.clients[a] = true
	s.cancel() // the session has ended: HandleCommand closes the client
	names := &irc.Message{Tags: irc.Tags{"label": "x"}, Command: "NAMES"}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the owner
		defer wg.Done()
		for range 100 {
			s.handleCommand(a, names)
		}
	}()
	go func() { // the client's reader
		defer wg.Done()
		for range 100 {
			a.HandleCommand(names)
		}
	}()
	wg.Wait()
	if len(conn.all()) != 100 {
		t.Errorf("%d replies to 100 labeled NAMES, want 100", len(conn.all()))
	}
}

// directCursors is the real store, counting the cursor writes that do not
// go through the manager's cursor writer.
type directCursors struct {
	store.Store
	direct atomic.Int32
}

func (d *directCursors) PutCursor(ctx context.Context, user id.UserID, client string, seq int64) error {
	d.direct.Add(1)
	return d.Store.PutCursor(ctx, user, client, seq)
}

// A client name seen for the first time gets a cursor at once, and it is
// the manager's cursor writer that saves it: cursors have one writer, so
// a catch-up cannot overwrite a position the writer has just moved.
func TestNewClientCursorHasOneWriter(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	who := hs.Register(t, "cursor")
	st := &directCursors{Store: storetest.Open(t, "sqlite")}
	m := NewManager(Config{Homeserver: hs.URL, ReplayLimit: 100}, st)
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := m.Login(ctx, who.UserID.String()+"@laptop", who.Password, &recorder{nick: who.Localpart})
	if err != nil {
		t.Fatal(err)
	}
	a.Attach()
	defer a.Detach()
	waitFor(t, func() bool {
		_, ok, err := st.Cursor(ctx, who.UserID, "laptop")
		return ok || err != nil
	}, "the new client's cursor")
	if n := st.direct.Load(); n != 0 {
		t.Errorf("%d cursor writes bypassed the cursor writer", n)
	}
}

// The request queue starts one worker for a burst of requests, refuses
// beyond its bound, and once stopped lets the worker drain what is queued
// and then end the session.
func TestJobQueue(t *testing.T) {
	var q jobQueue
	noop := func(context.Context) func() { return nil }
	if ok, start := q.push(noLane, noop); !ok || start != 1 {
		t.Fatalf("first push: ok=%v start=%v, want one worker started", ok, start)
	}
	for i := 1; i < maxJobs; i++ {
		if ok, start := q.push(noLane, noop); !ok || start != 0 {
			t.Fatalf("push %d: ok=%v start=%v, want queued behind the running worker", i, ok, start)
		}
	}
	if ok, _ := q.push(noLane, noop); ok {
		t.Fatal("a full queue took one more request")
	}
	if !q.busy() {
		t.Error("not busy with a worker running")
	}
	if idle := q.stop(); idle {
		t.Error("stop says idle with a worker running")
	}
	var done *id.RoomID
	for i := range maxJobs {
		j, timeout, start, ok, stopping := q.take(done)
		if !ok || !stopping || timeout > drainTimeout || start != 0 {
			t.Fatalf("take %d while stopping: ok=%v stopping=%v timeout=%v start=%d", i, ok, stopping, timeout, start)
		}
		done = &j.lane
	}
	if _, _, _, ok, stopping := q.take(done); ok || !stopping {
		t.Fatalf("take on an empty stopping queue: ok=%v stopping=%v, want the worker and the session to end", ok, stopping)
	}
	if q.busy() {
		t.Error("busy after the worker ended")
	}
	if idle := q.stop(); !idle {
		t.Error("stop says a worker runs after it ended")
	}
}

// BusySessions reads each session's queue while its owner and worker use
// it.
func TestBusySessionsWhileRequestsRun(t *testing.T) {
	s := unstartedSession(t)
	s.mgr.sessions[s.user] = s
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			s.enqueue(func(context.Context) func() { return nil })
		}
	}()
	for range 200 {
		s.mgr.BusySessions()
	}
	<-done
}

// Logins with made-up account names leave nothing behind: the lock that
// serialises an account's logins goes when no login of it is running, so
// a stream of guesses cannot grow the manager without bound.
func TestUserLocksShrink(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	m := NewManager(Config{Homeserver: hs.URL, ServerName: "localhost"}, storetest.Open(t, "sqlite"))
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two logins per name at once, so some wait on the lock.
			name := fmt.Sprintf("nobody%d", i/2)
			_, err := m.Login(ctx, name, "wrong password", &recorder{nick: name})
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("login as %s: %v, want invalid credentials", name, err)
			}
		}()
	}
	wg.Wait()
	m.mu.Lock()
	left := len(m.userLocks)
	m.mu.Unlock()
	if left != 0 {
		t.Errorf("%d login locks left after the logins ended, want none", left)
	}
}
