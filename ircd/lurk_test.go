package ircd

import (
	"context"
	"strings"
	"sync"
	"testing"

	"gopkg.in/irc.v4"
)

// lurkBackend is the test Backend that also serves lurkers, recording in
// order what happens to them and to logins.
type lurkBackend struct {
	*testBackend
	mu     sync.Mutex
	events []string
	lurks  chan *testLurkHandler
}

type testLurkHandler struct {
	*testHandler
	b *lurkBackend
}

func (h *testLurkHandler) EndLurk(reason string) { h.b.note("EndLurk " + reason) }

func (b *lurkBackend) note(e string) {
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
}

func (b *lurkBackend) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.events...)
}

func (b *lurkBackend) Lurk(_ context.Context, c *Conn) (LurkHandler, error) {
	h := &testLurkHandler{testHandler: newTestHandler(b.tb, c), b: b}
	b.lurks <- h
	return h, nil
}

// loginHandler wraps the login's handler to note its Attach.
type loginHandler struct {
	*testHandler
	b *lurkBackend
}

func (h loginHandler) Attach() { h.b.note("Attach login"); h.testHandler.Attach() }

func (b *lurkBackend) Login(ctx context.Context, req LoginRequest, c *Conn) (Handler, error) {
	h, err := b.testBackend.Login(ctx, req, c)
	if err != nil {
		return nil, err
	}
	return loginHandler{h.(*testHandler), b}, nil
}

func startLurkServer(t *testing.T, cfg Config) (*testServer, *lurkBackend) {
	t.Helper()
	b := &lurkBackend{testBackend: newTestBackend(t), lurks: make(chan *testLurkHandler, 8)}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ts := startServerWith(t, cfg, b.testBackend)
	ts.srv.backend = b // the same server, with the Lurker backend
	return ts, b
}

// until reads lines until one with command cmd, and returns it.
func until(c *testClient, cmd string) *irc.Message {
	for {
		if m := c.next(); m.Command == cmd {
			return m
		}
	}
}

// pingPong sends a PING and reads up to its PONG: what the server did for
// earlier lines is done.
func pingPong(c *testClient) {
	c.send("PING :sync")
	until(c, "PONG")
}

// welcomeNick reads up to the welcome and returns the nick it names.
func welcomeNick(c *testClient) string {
	for {
		if m := c.next(); m.Command == irc.RPL_WELCOME {
			return m.Params[0]
		}
	}
}

// With guests on, a connection without a login lurks under a guest nick:
// its commands go to the lurk handler, and logging in ends the lurk before
// the account's handler is attached.
func TestLurkerLogsIn(t *testing.T) {
	cfg := testConfig()
	cfg.Guests = true
	ts, b := startLurkServer(t, cfg)
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	nick := welcomeNick(c)
	if !strings.HasPrefix(nick, GuestNickPrefix) {
		t.Fatalf("welcomed as %q, want a guest nick", nick)
	}
	lurk := <-b.lurks
	c.send("JOIN #a")
	pingPong(c)
	if cmds := lurk.commands(); len(cmds) != 1 || cmds[0].Command != "JOIN" {
		t.Fatalf("lurk handler got %v, want the JOIN", cmds)
	}
	if lurk.attached.Load() != 1 {
		t.Fatalf("lurk handler attached %d times", lurk.attached.Load())
	}
	c.send("PRIVMSG mxircd :IDENTIFY alice " + testPassword)
	until(c, "900")
	pingPong(c)
	if got := b.log(); len(got) != 2 || got[0] != "EndLurk Logged in as "+testMXID || got[1] != "Attach login" {
		t.Fatalf("events %q, want the lurk ended before the login's Attach", got)
	}
	c.send("QUIT")
	until(c, "ERROR")
	if n := lurk.detached.Load(); n != 0 {
		t.Errorf("the ended lurk handler was detached %d times too", n)
	}
}

// A second connection gets another guest nick; a lurker's Detach comes
// when it leaves.
func TestLurkerNicksAndDetach(t *testing.T) {
	cfg := testConfig()
	cfg.Guests = true
	ts, b := startLurkServer(t, cfg)
	c1, c2 := ts.dial(t), ts.dial(t)
	c1.send("NICK a", "USER a 0 * :A")
	c2.send("NICK a", "USER a 0 * :A")
	n1, n2 := welcomeNick(c1), welcomeNick(c2)
	if n1 == n2 {
		t.Fatalf("two lurkers are both %s", n1)
	}
	l1, other := <-b.lurks, <-b.lurks
	if l1.conn.Nick() != n1 {
		l1, other = other, l1
	}
	c1.send("QUIT")
	until(c1, "ERROR")
	waitFor(t, "the lurker's Detach", func() bool { return l1.detached.Load() == 1 })
	if other.detached.Load() != 0 {
		t.Fatal("the other lurker was detached")
	}
}

// Without Config.Guests a Lurker backend changes nothing: the connection
// is login-pending.
func TestGuestsOffIsPending(t *testing.T) {
	ts, b := startLurkServer(t, testConfig())
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	c.expectWelcome("alice")
	c.send("JOIN #a")
	until(c, "451")
	select {
	case <-b.lurks:
		t.Fatal("lurked with guests off")
	default:
	}
}
