package ircd

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// browserResult is what a test's browser login ends with.
type browserResult struct {
	h   Handler
	err error
}

// browserBackend is a test backend whose browser logins end when the test
// says, each with what the test sends on results. With ignoreCtx a login
// ends only then, as one racing the connection's end would.
func browserBackend(t *testing.T, ignoreCtx bool) (*testBackend, chan browserResult, chan context.Context) {
	b := newTestBackend(t)
	results := make(chan browserResult)
	started := make(chan context.Context, 4)
	b.browser = func(ctx context.Context, server string, c *Conn) (*BrowserLogin, error) {
		if server == "bad.example" {
			return nil, errors.New("bad.example offers no login in a browser")
		}
		started <- ctx
		return &BrowserLogin{
			Lines:   []string{"Open https://login.example/verify?code=ABCD to log in.", "The code works for 10 minutes."},
			Expires: time.Now().Add(10 * time.Minute),
			Wait: func() (Handler, error) {
				// The handler answers on this connection, as a session's does.
				bind := func(r browserResult) (Handler, error) {
					if th, ok := r.h.(*testHandler); ok && th.conn == nil {
						th.conn = c
					}
					return r.h, r.err
				}
				if ignoreCtx {
					return bind(<-results)
				}
				select {
				case r := <-results:
					return bind(r)
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			},
		}, nil
	}
	return b, results, started
}

// deliver ends the browser login waiting, failing the test if none does.
func deliver(t *testing.T, results chan<- browserResult, r browserResult) {
	t.Helper()
	select {
	case results <- r:
	case <-time.After(waitTimeout):
		t.Fatal("no browser login waits for its result")
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("no %s", what)
		var zero T
		return zero
	}
}

// LOGIN shows what the backend says, and its result: a failure in one
// line, a success as a login on the same connection (900, then Attach).
func TestBrowserLogin(t *testing.T) {
	b, results, started := browserBackend(t, false)
	ts := startServerWith(t, testConfig(), b)
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	c.expectWelcome("alice")
	sawLogin := false
	for m := c.next(); !strings.Contains(m.Params[len(m.Params)-1], "this connection closes in"); m = c.next() {
		sawLogin = sawLogin || strings.Contains(m.Params[len(m.Params)-1], "/msg mxircd LOGIN")
	}
	if !sawLogin {
		t.Error("the greeting does not mention LOGIN, which the backend offers")
	}

	c.send("PRIVMSG mxircd :LOGIN a b")
	c.expect("NOTICE", "alice", "Usage: LOGIN [<Matrix ID or server>]")
	c.send("PRIVMSG mxircd :LOGIN bad.example")
	c.expect("NOTICE", "alice", "Not logged in: bad.example offers no login in a browser")

	c.send("PRIVMSG mxircd :LOGIN")
	c.expect("NOTICE", "alice", "Open https://login.example/verify?code=ABCD to log in.")
	c.expect("NOTICE", "alice", "The code works for 10 minutes.")
	first := receive(t, started, "browser login")
	// LOGIN again replaces the login waiting.
	c.send("PRIVMSG mxircd :LOGIN")
	c.expect("NOTICE", "alice", anyParam)
	c.expect("NOTICE", "alice", anyParam)
	receive(t, started, "second browser login")
	<-first.Done()
	deliver(t, results, browserResult{err: errors.New("you declined the login")})
	c.expect("NOTICE", "alice", "Not logged in: you declined the login")

	c.send("PRIVMSG mxircd :LOGIN")
	c.expect("NOTICE", "alice", anyParam)
	c.expect("NOTICE", "alice", anyParam)
	receive(t, started, "third browser login")
	h := newTestHandler(t, nil)
	deliver(t, results, browserResult{h: h})
	c.expect("NOTICE", "alice", "You are now logged in as "+testMXID+".")
	next := c.expect("NOTICE", "alice")
	if !strings.Contains(next.Params[1], "PASSWORD SET") {
		t.Errorf("after LOGIN the service said %q, want how to log in next time (PASSWORD SET)", next)
	}
	c.expect("900", "alice", anyParam, testMXID)
	waitFor(t, "Attach", func() bool { return h.attached.Load() == 1 })
	c.send("JOIN #a")
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 1 || cmds[0].Command != "JOIN" {
		t.Errorf("after LOGIN the handler got %v, want the JOIN", cmds)
	}
}

// A connection that ends while its browser login waits stops it (its
// context ends); a login that succeeds all the same is detached, never
// attached.
func TestBrowserLoginEndsWithConnection(t *testing.T) {
	b, results, started := browserBackend(t, true)
	ts := startServerWith(t, testConfig(), b)
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	c.expectWelcome("alice")
	c.send("PRIVMSG mxircd :LOGIN")
	ctx := receive(t, started, "browser login")
	c.send("QUIT :bye")
	for m := c.next(); m.Command != "ERROR"; m = c.next() {
	}
	c.expectEOF()
	receive(t, ctx.Done(), "end of the login's context")
	waitFor(t, "the connection to be dropped", func() bool { return ts.srv.ConnCount() == 0 })
	h := newTestHandler(t, nil)
	deliver(t, results, browserResult{h: h})
	receive(t, h.detachedCh, "Detach of the unwanted login")
	if h.attached.Load() != 0 {
		t.Error("a login that ended after its connection was attached")
	}
}

// A connection whose browser login waits is kept until the login's code
// expires, past the login-pending timeout.
func TestBrowserLoginOutlivesPendingTimeout(t *testing.T) {
	b, results, started := browserBackend(t, false)
	cfg := testConfig()
	cfg.LoginPendingTimeout = 200 * time.Millisecond
	ts := startServerWith(t, cfg, b)
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice", "PRIVMSG mxircd :LOGIN")
	receive(t, started, "browser login")
	time.Sleep(3 * cfg.LoginPendingTimeout)
	h := newTestHandler(t, nil)
	deliver(t, results, browserResult{h: h})
	for m := c.next(); !(m.Command == "NOTICE" && strings.HasPrefix(m.Params[1], "You are now logged in")); m = c.next() {
		if m.Command == "ERROR" {
			t.Fatalf("closed while the browser login waited: %q", m)
		}
	}
	c.expect("NOTICE", "alice", anyParam)
	c.expect("900", "alice", anyParam, testMXID)
}
