package ircd

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// pings returns n PING lines with numbered tokens.
func pings(prefix string, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("PING %s-%d", prefix, i)
	}
	return lines
}

func TestFloodIsSlowedButAnsweredInOrder(t *testing.T) {
	cfg := testConfig()
	cfg.FloodBurst = 5
	cfg.FloodRate = 20
	cfg.FloodDisconnect = time.Minute // this test is about slowing, not dropping
	ts := startServer(t, cfg)
	c, _ := ts.registered(t, "alice")

	const n = 20
	start := time.Now()
	c.send(pings("flood", n)...)
	for i := range n {
		c.expect("PONG", testServerName, fmt.Sprintf("flood-%d", i))
	}
	// A lower bound the limiter guarantees (at most FloodBurst lines are
	// free, the rest come at FloodRate), halved for clock slack: it shows
	// throttling happened and says nothing about speed.
	minDelay := time.Duration(float64(n-cfg.FloodBurst) / cfg.FloodRate * float64(time.Second))
	if elapsed := time.Since(start); elapsed < minDelay/2 {
		t.Errorf("%d lines answered in %v; the limiter allows no less than %v", n, elapsed, minDelay)
	}
}

func TestFloodDisconnect(t *testing.T) {
	cfg := testConfig()
	cfg.FloodBurst = 5
	cfg.FloodRate = 4
	cfg.FloodDisconnect = 2 * time.Second
	ts := startServer(t, cfg)
	flooder, fh := ts.registered(t, "flooder")
	other, _ := ts.registered(t, "other")

	// One write, small enough to be read at once: the server then closes
	// with nothing of it left unread.
	const n = 30
	flooder.send(pings("flood", n)...)

	type event struct {
		m   *irc.Message
		err error
	}
	events := make(chan event, n+2)
	var closed atomic.Bool // set once the flooder has been told to go
	go func() {
		for {
			m, err := flooder.readMessage()
			if m != nil && m.Command == "ERROR" {
				closed.Store(true)
			}
			events <- event{m, err}
			if err != nil {
				return
			}
		}
	}()
	next := func() event {
		select {
		case e := <-events:
			return e
		case <-time.After(waitTimeout):
			t.Fatal("flooder got nothing")
			return event{}
		}
	}
	// The second PONG can only come after the burst is spent, so from here
	// on the flooder is being throttled.
	for i := range 2 {
		if e := next(); e.err != nil || e.m.Command != "PONG" || e.m.Params[1] != fmt.Sprintf("flood-%d", i) {
			t.Fatalf("flooder got %v, %v; want PONG flood-%d", e.m, e.err, i)
		}
	}
	// Throttling one client sleeps only its own reader: another client is
	// answered while the flooder is still being held back.
	other.syncPing()
	if closed.Load() {
		t.Fatal("the flooder was dropped before the other client's PING was answered; cannot tell it was unaffected")
	}

	pongs := 2
	for {
		e := next()
		if e.err != nil {
			t.Fatalf("flooder read %v before ERROR", e.err)
		}
		if e.m.Command == "ERROR" {
			if e.m.Params[0] != "Excess Flood" {
				t.Fatalf("got %q, want ERROR :Excess Flood", e.m.String())
			}
			break
		}
		if e.m.Command != "PONG" || e.m.Params[1] != fmt.Sprintf("flood-%d", pongs) {
			t.Fatalf("got %q, want PONG flood-%d", e.m.String(), pongs)
		}
		pongs++
	}
	if pongs == n {
		t.Errorf("all %d lines were answered; the flood was never cut off", n)
	}
	if e := next(); e.err == nil {
		t.Fatalf("got %q after ERROR, want the connection closed", e.m.String())
	}
	fh.waitDetached(t, ts.srv)
	other.syncPing()
}

// TestFloodOfOversizedLines checks that lines rejected for their length
// count against the flood limit like any other.
func TestFloodOfOversizedLines(t *testing.T) {
	cfg := testConfig()
	cfg.FloodBurst = 5
	cfg.FloodRate = 4
	cfg.FloodDisconnect = 500 * time.Millisecond
	ts := startServer(t, cfg)
	c, h := ts.registered(t, "alice")

	long := "PRIVMSG #a :" + strings.Repeat("x", 600)
	lines := make([]string, 30)
	for i := range lines {
		lines[i] = long
	}
	c.send(lines...)
	n := 0
	for m := c.next(); m.Command != "ERROR"; m = c.next() {
		if m.Command != "417" {
			t.Fatalf("got %q, want 417 or ERROR", m.String())
		}
		n++
	}
	if n >= len(lines) {
		t.Errorf("all %d oversized lines were answered; the flood was never cut off", n)
	}
	c.expectEOF()
	h.waitDetached(t, ts.srv)
}

// bigLine is a server line of about 440 bytes.
var bigLine = &irc.Message{
	Prefix:  &irc.Prefix{Name: "bob", User: "bob", Host: "example.org"},
	Command: "PRIVMSG",
	Params:  []string{"#room", strings.Repeat("x", 400)},
}

// readUntilClosed reads everything the server sends until it closes, and
// returns how many lines came and the last one.
func readUntilClosed(t *testing.T, c *testClient) (n int, last *irc.Message) {
	t.Helper()
	for {
		m, err := c.readMessage()
		if err != nil {
			return n, last
		}
		n++
		last = m
	}
}

// TestSendQExceeded fills the send queue of a client that reads nothing,
// from a goroutine other than the connection's (as the session owner does).
func TestSendQExceeded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSendQ = 64 << 10
	// Long enough that the writer, stuck on the full socket, is still
	// there to send the final ERROR once the client reads again.
	cfg.WriteTimeout = 4 * waitTimeout
	ts := startServer(t, cfg)
	slow, sh := ts.registered(t, "slow")
	other, _ := ts.registered(t, "other")

	// The kernel buffers some megabytes before the writer blocks; after
	// that the queue fills up. Push until it overflows.
	const limit = 1_000_000
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < limit && !sh.conn.q.overflowed(); n++ {
			sh.conn.SendMessage(bigLine)
		}
		for range 1000 { // further sends to a dropped client return at once too
			sh.conn.SendMessage(bigLine)
			sh.conn.SendNotice("more")
		}
		sent <- n
	}()
	var n int
	select {
	case n = <-sent:
	case <-time.After(4 * waitTimeout):
		t.Fatal("SendMessage blocked on a client that does not read")
	}
	if !sh.conn.q.overflowed() {
		t.Fatalf("%d lines did not overflow a %d-byte send queue", n, cfg.MaxSendQ)
	}

	other.syncPing() // a stuck client does not stall anyone else
	// A dropped client is no longer a user: one more makes two users
	// again, not a new most of three.
	third, _ := ts.registered(t, "third")
	checkLusers(t, third, 2, 0, 0, 2)

	got, last := readUntilClosed(t, slow)
	if last == nil || last.Command != "ERROR" || last.Params[0] != "SendQ exceeded" {
		t.Fatalf("last line %v, want ERROR :SendQ exceeded", last)
	}
	t.Logf("pushed %d lines before overflow, client received %d", n, got-1)
	if got-1 >= n {
		t.Errorf("client got %d of %d lines; an overflow must drop the queue", got-1, n)
	}
	if d := ts.srv.SendQDrops(); d != 1 { // for mxircd_sendq_drops_total
		t.Errorf("SendQDrops = %d after one overflow, want 1", d)
	}
	sh.waitDetached(t, ts.srv)
	other.syncPing()
}

// TestSendQExceededFromHandler is the same overflow caused by a Handler
// replying on the reader goroutine: if SendMessage blocked there, the
// connection's reader would hang with it.
func TestSendQExceededFromHandler(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSendQ = 64 << 10
	cfg.WriteTimeout = 4 * waitTimeout
	b := newTestBackend(t)
	handlerDone := make(chan struct{})
	b.onCommand = func(h *testHandler, m *irc.Message) {
		if m.Command != "PRIVMSG" || m.Params[1] != "spam me" {
			return
		}
		for i := 0; i < 1_000_000 && !h.conn.q.overflowed(); i++ {
			h.conn.SendNotice(strings.Repeat("y", 400))
		}
		close(handlerDone)
	}
	ts := startServerWith(t, cfg, b)
	slow, sh := ts.registered(t, "slow")
	other, _ := ts.registered(t, "other")

	slow.send("PRIVMSG #a :spam me")
	select {
	case <-handlerDone:
	case <-time.After(4 * waitTimeout):
		t.Fatal("SendNotice blocked the reader goroutine")
	}
	other.syncPing()
	_, last := readUntilClosed(t, slow)
	if last == nil || last.Command != "ERROR" || last.Params[0] != "SendQ exceeded" {
		t.Fatalf("last line %v, want ERROR :SendQ exceeded", last)
	}
	sh.waitDetached(t, ts.srv)
}

func TestPingTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.PingInterval = 300 * time.Millisecond
	cfg.PingTimeout = 300 * time.Millisecond
	ts := startServer(t, cfg)
	c, h := ts.registered(t, "alice")
	c.expect("PING", testServerName)
	c.expectClosed("Ping timeout") // by not answering
	h.waitDetached(t, ts.srv)
}

func TestPingAnsweredKeepsAlive(t *testing.T) {
	cfg := testConfig()
	cfg.PingInterval = 300 * time.Millisecond
	cfg.PingTimeout = 300 * time.Millisecond
	ts := startServer(t, cfg)
	c, h := ts.registered(t, "alice")
	for range 3 {
		m := c.expect("PING", testServerName)
		c.send("PONG :" + m.Params[0])
	}
	c.syncPing()
	if h.detached.Load() != 0 {
		t.Fatal("a client that answers PINGs was dropped")
	}
}

// registerWithCaps registers with PASS after requesting caps and returns
// the Conn the server made for it.
func (ts *testServer) registerWithCaps(t *testing.T, nick, caps string) (*testClient, *Conn) {
	t.Helper()
	c := ts.dial(t)
	if caps != "" {
		c.send("CAP REQ :" + caps)
		c.expect("CAP", "*", "ACK", caps)
	}
	c.send("PASS "+testPassword, "NICK "+nick, "USER alice 0 * :Alice", "CAP END")
	c.expectWelcome(nick)
	return c, ts.backend.nextHandler(t).conn
}

func TestTagsFilteredByCaps(t *testing.T) {
	ts := startServer(t, testConfig())
	tags := irc.Tags{"time": "2025-01-02T03:04:05.678Z", "msgid": "$event:example.org", "account": "@bob:example.org"}
	msg := &irc.Message{
		Tags:    tags,
		Prefix:  &irc.Prefix{Name: "bob", User: "bob", Host: "example.org"},
		Command: "PRIVMSG",
		Params:  []string{"#room", "hello"},
	}
	tests := []struct {
		caps string
		want []string
	}{
		{"", nil},
		{"server-time", []string{"time"}},
		{"message-tags", []string{"account", "msgid", "time"}},
		{"message-tags server-time", []string{"account", "msgid", "time"}},
	}
	for i, tt := range tests {
		t.Run("caps="+tt.caps, func(t *testing.T) {
			c, conn := ts.registerWithCaps(t, fmt.Sprintf("client%d", i), tt.caps)
			// One message object for every client, as the session sends it.
			conn.SendMessage(msg)
			m := c.expect("PRIVMSG", "#room", "hello")
			if len(m.Tags) != len(tt.want) {
				t.Errorf("got tags %v, want %v", m.Tags, tt.want)
			}
			for _, k := range tt.want {
				if m.Tags[k] != tags[k] {
					t.Errorf("tag %s = %q, want %q", k, m.Tags[k], tags[k])
				}
			}
		})
	}
	if len(msg.Tags) != 3 {
		t.Errorf("filtering changed the caller's message: tags %v", msg.Tags)
	}
}

// labeled-response is enough for a label to come back: the spec does not
// ask for message-tags, and irctest negotiates it alone (a one-line
// answer needs no batch).
func TestLabelWithoutMessageTags(t *testing.T) {
	ts := startServer(t, testConfig())
	c, _ := ts.registerWithCaps(t, "labeler", "labeled-response")
	c.send("@label=abc PING :x")
	if m := c.expect("PONG"); m.Tags["label"] != "abc" {
		t.Errorf("PONG = %q, want the label abc back", m.String())
	}
	c.send("@label=def PONG :x")
	if m := c.expect("ACK"); m.Tags["label"] != "def" {
		t.Errorf("ACK = %q, want the label def", m.String())
	}
	c.send("@label=ghi FROBNICATE")
	if m := c.expect("421"); m.Tags["label"] != "ghi" {
		t.Errorf("421 = %q, want the label ghi", m.String())
	}
	c2, _ := ts.registerWithCaps(t, "plain", "")
	c2.send("@label=abc PING :x")
	if m := c2.expect("PONG"); len(m.Tags) != 0 {
		t.Errorf("PONG = %q, want no tags without labeled-response", m.String())
	}
}

func TestShutdown(t *testing.T) {
	ts := startServer(t, testConfig())
	c1, h1 := ts.registered(t, "one")
	c2, h2 := ts.registered(t, "two")
	c3 := ts.dial(t) // not registered
	c3.send("NICK three")
	c3.syncPing()

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ts.srv.Shutdown(ctx, "Server going down"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown waits for every connection to end, Detach included.
	for _, h := range []*testHandler{h1, h2} {
		if n := h.detached.Load(); n != 1 {
			t.Errorf("Detach called %d times, want 1", n)
		}
	}
	if n := ts.srv.ConnCount(); n != 0 {
		t.Errorf("%d connections left after Shutdown", n)
	}
	for _, c := range []*testClient{c1, c2, c3} {
		c.expectClosed("Server going down")
	}
	select {
	case <-ts.served:
		if ts.serveErr != nil {
			t.Errorf("Serve returned %v after Shutdown, want nil", ts.serveErr)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after Shutdown")
	}
	if nc, err := net.DialTimeout("tcp", ts.addr, waitTimeout); err == nil {
		nc.Close()
		t.Error("the listener still accepts after Shutdown")
	}
	// Serving on a new listener after Shutdown refuses at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Serve(ln); err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), waitTimeout); err == nil {
		t.Error("Serve after Shutdown left its listener open")
	}
}

// TestSilentClientIsPinged covers a client that connects and never sends
// a line: it is pinged before registration, then dropped for not answering.
func TestSilentClientIsPinged(t *testing.T) {
	cfg := testConfig()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PingTimeout = 100 * time.Millisecond
	ts := startServer(t, cfg)
	c := ts.dial(t)
	c.expect("PING", testServerName)
	c.expectClosed("Ping timeout")
}

// A checkpoint commits before the lines queued after it reach the client,
// so a record of their delivery is never behind what the client has seen.
func TestCheckpointCommitsBeforeTheWrite(t *testing.T) {
	ts := startServer(t, testConfig())
	c, conn := ts.registerWithCaps(t, "alice", "")
	release := make(chan struct{})
	committed := make(chan struct{})
	conn.Checkpoint("", func() {
		close(committed)
		<-release // the writer waits: nothing may reach the client yet
	}, func() { t.Error("undo ran after a good write") })
	conn.SendNotice("after the checkpoint")
	<-committed
	got := make(chan *irc.Message, 1)
	go func() { got <- c.next() }()
	select {
	case m := <-got:
		t.Fatalf("the client read %v before the checkpoint committed", m)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if m := <-got; m.Trailing() != "after the checkpoint" {
		t.Fatalf("got %v", m)
	}
}

// A write that fails undoes the checkpoints of its lines.
func TestCheckpointUndoneWhenTheWriteFails(t *testing.T) {
	ts := startServer(t, testConfig())
	_, conn := ts.registerWithCaps(t, "alice", "")
	undone := make(chan struct{})
	conn.Checkpoint("", func() { conn.nc.Close() }, func() { close(undone) })
	conn.SendNotice("never read")
	select {
	case <-undone:
	case <-time.After(5 * time.Second):
		t.Fatal("the checkpoint of a failed write was not undone")
	}
}
