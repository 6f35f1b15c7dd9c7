package ircd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// The fixed login the test backend accepts, and the name the test server
// puts on its own lines.
const (
	testAccount    = "alice"
	testPassword   = "secret"
	testServerName = "irc.test"
)

// waitTimeout bounds every wait for the server: a test that hangs fails
// instead of stalling the suite. It is not a performance target.
const waitTimeout = 5 * time.Second

// testBackend accepts one fixed account and password. It is not a
// homeserver fake: it only lets the tests observe what ircd hands a Handler.
type testBackend struct {
	tb        testing.TB
	account   string
	password  string
	onCommand func(h *testHandler, m *irc.Message) // optional, set before the server starts
	handlers  chan *testHandler                    // one per successful login
	logins    atomic.Int32                         // every Login call, good or bad
	gate      chan struct{}                        // if set, Login waits until it is closed
	certFP    string                               // the client certificate SASL EXTERNAL may log in with
	// browser, if set, answers StartLogin; set before the server starts.
	browser func(ctx context.Context, server string, c *Conn) (*BrowserLogin, error)
}

func (b *testBackend) StartLogin(ctx context.Context, server string, c *Conn) (*BrowserLogin, error) {
	if b.browser == nil {
		return nil, errors.New("this test backend has no browser login")
	}
	return b.browser(ctx, server, c)
}

func (b *testBackend) LoginWays(context.Context) (password, browser bool) {
	return true, b.browser != nil
}

// forwardedParams are the commands the test Backend declares, with their
// minimum parameters: the ones a session answers that these tests send.
var forwardedParams = map[string]int{
	"JOIN": 1, "PART": 1, "PRIVMSG": 2, "NOTICE": 2, "TOPIC": 1,
	"NAMES": 0, "WHO": 0, "WHOIS": 1, "MODE": 1, "NICK": 1,
}

func (b *testBackend) Commands() map[string]Command {
	cmds := map[string]Command{}
	for name, n := range forwardedParams {
		cmds[name] = Command{MinParams: n}
	}
	return cmds
}

func newTestBackend(tb testing.TB) *testBackend {
	return &testBackend{
		tb:       tb,
		account:  testAccount,
		password: testPassword,
		handlers: make(chan *testHandler, 64),
	}
}

func (b *testBackend) Login(ctx context.Context, req LoginRequest, c *Conn) (Handler, error) {
	b.logins.Add(1)
	if b.gate != nil {
		<-b.gate
	}
	if req.CertFP != "" {
		if req.CertFP != b.certFP || (req.Account != "" && req.Account != b.account) {
			return nil, fmt.Errorf("test backend refuses certificate %q: %w", req.CertFP, ErrInvalidCredentials)
		}
	} else if req.Account != b.account || req.Password != b.password {
		return nil, fmt.Errorf("test backend refuses %q: %w", req.Account, ErrInvalidCredentials)
	}
	h := newTestHandler(b.tb, c)
	h.onCommand = b.onCommand
	select {
	case b.handlers <- h:
	default: // fuzzing logs in far more often than any test looks
	}
	return h, nil
}

// nextHandler returns the Handler of the next successful login.
func (b *testBackend) nextHandler(t testing.TB) *testHandler {
	t.Helper()
	select {
	case h := <-b.handlers:
		return h
	case <-time.After(waitTimeout):
		t.Fatal("no successful login")
		return nil
	}
}

// testHandler records what the connection hands the Matrix side and checks
// the promises ircd makes about it (see checkForwarded).
type testHandler struct {
	tb        testing.TB
	conn      *Conn
	onCommand func(h *testHandler, m *irc.Message)

	// unsettled keeps the handler from answering commands at once
	// (Settle), as a session does while a request is out; a PING it gets
	// is answered (PONG) when the test calls settle.
	unsettled  atomic.Bool
	attached   atomic.Int32
	detached   atomic.Int32
	detachedCh chan struct{} // closed by the first Detach

	mu    sync.Mutex
	cmds  []*irc.Message
	got   uint64         // commands received, PINGs included
	pings []*irc.Message // PINGs waiting for settle
}

func newTestHandler(tb testing.TB, c *Conn) *testHandler {
	return &testHandler{tb: tb, conn: c, detachedCh: make(chan struct{})}
}

func (h *testHandler) Attach() { h.attached.Add(1) }

// Account is what a real backend would resolve the login to.
func (h *testHandler) Account() string { return testMXID }

// testMXID is the account name 900 reports: the backend's, not what was typed.
const testMXID = "@alice:example.org"

func (h *testHandler) HandleCommand(m *irc.Message) {
	h.mu.Lock()
	h.got++
	if m.Command == "PING" {
		h.pings = append(h.pings, m)
		h.mu.Unlock()
		if !h.unsettled.Load() {
			h.settle()
		}
		return
	}
	h.mu.Unlock()
	if err := checkForwarded(m); err != nil {
		h.tb.Errorf("handler got %q: %v", m.String(), err)
	}
	h.mu.Lock()
	h.cmds = append(h.cmds, m)
	h.mu.Unlock()
	if h.onCommand != nil {
		h.onCommand(h, m)
	}
	if !h.unsettled.Load() {
		h.settle()
	}
}

// settle answers the PINGs the handler was given and tells the connection
// every command so far is answered, as a session does.
func (h *testHandler) settle() {
	h.mu.Lock()
	pings, got := h.pings, h.got
	h.pings = nil
	h.mu.Unlock()
	for _, m := range pings {
		h.conn.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: testServerName}, Command: "PONG", Params: []string{testServerName, m.Params[0]}})
	}
	h.conn.Settle(got)
}

// pingsHeld is how many PINGs the handler holds.
func (h *testHandler) pingsHeld() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pings)
}

func (h *testHandler) Detach() {
	if h.detached.Add(1) == 1 {
		close(h.detachedCh)
	}
}

// commands is what HandleCommand has received so far. Commands are handled
// on the reader goroutine in order, so after a PING/PONG round trip (sync)
// every earlier command is in here.
func (h *testHandler) commands() []*irc.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*irc.Message(nil), h.cmds...)
}

// waitDetached waits for Detach, then for the server to drop the
// connection (which happens after Detach), and checks Detach ran once.
func (h *testHandler) waitDetached(t testing.TB, srv *Server) {
	t.Helper()
	select {
	case <-h.detachedCh:
	case <-time.After(waitTimeout):
		t.Fatal("Detach was not called")
	}
	waitFor(t, "connection to be dropped", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		_, ok := srv.conns[h.conn]
		return !ok
	})
	if n := h.detached.Load(); n != 1 {
		t.Fatalf("Detach called %d times, want 1", n)
	}
}

// checkForwarded states what a Handler may rely on for every command ircd
// forwards: registered-only commands with their required parameters, and no
// byte that could split or corrupt a line when echoed to another client.
func checkForwarded(m *irc.Message) error {
	n, ok := forwardedParams[m.Command]
	if !ok {
		return errors.New("command is not one ircd forwards")
	}
	if len(m.Params) < n {
		return fmt.Errorf("%d params, want at least %d", len(m.Params), n)
	}
	for _, p := range m.Params {
		if strings.ContainsAny(p, "\x00\r\n") || !utf8.ValidString(p) {
			return fmt.Errorf("param %q has NUL, CR, LF or invalid UTF-8", p)
		}
	}
	for k, v := range m.Tags {
		if strings.ContainsAny(k+v, "\x00\r\n") || !utf8.ValidString(k+v) {
			return fmt.Errorf("tag %q=%q has NUL, CR, LF or invalid UTF-8", k, v)
		}
	}
	switch m.Command {
	case "PRIVMSG", "NOTICE":
		if m.Params[0] == "" || m.Params[1] == "" {
			return errors.New("empty target or text")
		}
	case "MODE":
		if m.Params[0] == "" || !strings.ContainsRune(ChanTypes, rune(m.Params[0][0])) {
			return errors.New("user MODE must be answered by ircd")
		}
	case "NICK":
		if !ValidNick(m.Params[0]) {
			return errors.New("invalid nick forwarded")
		}
	}
	return nil
}

// testConfig is fast and permissive: tests that exercise a limit lower it.
func testConfig() Config {
	return Config{
		ServerName:          testServerName,
		Network:             "TestNet",
		Version:             "mxircd-test",
		MOTD:                []string{"first motd line", "second motd line"},
		MaxSendQ:            1 << 20,
		FloodRate:           1000,
		FloodBurst:          1000,
		FloodDisconnect:     10 * time.Second,
		PingInterval:        time.Minute,
		PingTimeout:         time.Minute,
		RegistrationTimeout: time.Minute,
		LoginTimeout:        waitTimeout,
		WriteTimeout:        waitTimeout,
		FailedLoginRate:     100,
		FailedLoginBurst:    100,
	}
}

// tbLogWriter sends server logs to the test log, and drops them once the
// test is over (logging through t after that panics).
type tbLogWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *tbLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	w := &tbLogWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testServer struct {
	srv      *Server
	backend  *testBackend
	addr     string
	served   chan struct{} // closed when Serve returns
	serveErr error         // what Serve returned; read after served is closed
}

// startServer runs a real Server on a loopback listener; it is shut down
// when the test ends.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, newTestBackend(t))
}

func startServerWith(t testing.TB, cfg Config, b *testBackend) *testServer {
	t.Helper()
	return startServerAs(t, cfg, b, b)
}

// startServerAs serves backend, which is b or wraps it (to be one more
// kind of Backend).
func startServerAs(t testing.TB, cfg Config, b *testBackend, backend Backend) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		srv:     NewServer(cfg, backend),
		backend: b,
		addr:    ln.Addr().String(),
		served:  make(chan struct{}),
	}
	go func() {
		ts.serveErr = ts.srv.Serve(ln)
		close(ts.served)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := ts.srv.Shutdown(ctx, "test over"); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case <-ts.served:
		case <-time.After(waitTimeout):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ts
}

// testClient speaks raw IRC to the server, one line at a time.
type testClient struct {
	t    testing.TB
	nc   net.Conn
	r    *bufio.Reader
	sync int
}

func (ts *testServer) dial(t testing.TB) *testClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ts.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &testClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// send writes the lines with CRLF in a single write.
func (c *testClient) send(lines ...string) {
	c.t.Helper()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	c.sendRaw([]byte(b.String()))
}

func (c *testClient) sendRaw(p []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.nc.Write(p); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *testClient) readMessage() (*irc.Message, error) {
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("line %q does not end in CRLF", line)
	}
	return irc.ParseMessage(line)
}

func (c *testClient) next() *irc.Message {
	c.t.Helper()
	m, err := c.readMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// anyParam matches any value in expect.
const anyParam = "\x00any"

// expect reads the next line and checks its command and leading params.
// Being strict about "the next line" is what lets tests prove that nothing
// else (no reply, no welcome) was sent in between.
func (c *testClient) expect(cmd string, params ...string) *irc.Message {
	c.t.Helper()
	m := c.next()
	if m.Command != cmd {
		c.t.Fatalf("got %q, want command %s", m.String(), cmd)
	}
	if len(m.Params) < len(params) {
		c.t.Fatalf("got %q, want params %q", m.String(), params)
	}
	for i, p := range params {
		if p != anyParam && m.Params[i] != p {
			c.t.Fatalf("got %q, want params %q", m.String(), params)
		}
	}
	return m
}

// syncPing does a PING/PONG round trip: the server handles lines in order,
// so everything caused by earlier lines has been sent (and checked by the
// caller) once the PONG is the next line.
func (c *testClient) syncPing() {
	c.t.Helper()
	c.sync++
	token := fmt.Sprintf("sync-%d", c.sync)
	c.send("PING " + token)
	c.expect("PONG", testServerName, token)
}

// expectClosed checks that the server sends "ERROR :reason" and then closes.
func (c *testClient) expectClosed(reason string) {
	c.t.Helper()
	c.expect("ERROR", reason)
	c.expectEOF()
}

func (c *testClient) expectEOF() {
	c.t.Helper()
	m, err := c.readMessage()
	if err == nil {
		c.t.Fatalf("got %q, want the connection closed", m.String())
	}
	// A server that closes with client input still unread makes the kernel
	// send RST instead of FIN; what it wrote before is still delivered.
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("read: %v, want EOF", err)
	}
}

// expectWelcome reads 001-004, one or more 005 and the MOTD (or 422), and
// returns the 005 lines.
func (c *testClient) expectWelcome(nick string) (isupport []*irc.Message) {
	c.t.Helper()
	c.expect("001", nick)
	c.expect("002", nick)
	c.expect("003", nick)
	c.expect("004", nick, testServerName)
	m := c.expect("005", nick)
	for m.Command == "005" {
		isupport = append(isupport, m)
		m = c.next()
	}
	switch m.Command {
	case "422":
	case "375":
		for m = c.next(); m.Command == "372"; m = c.next() {
		}
		if m.Command != "376" {
			c.t.Fatalf("got %q, want 376 to end the MOTD", m.String())
		}
	default:
		c.t.Fatalf("got %q, want the MOTD or 422", m.String())
	}
	return isupport
}

// registerPass logs in with PASS and waits for the end of the welcome.
func (c *testClient) registerPass(nick string) {
	c.t.Helper()
	c.send("PASS "+testPassword, "NICK "+nick, "USER "+testAccount+" 0 * :Alice Test")
	c.expectWelcome(nick)
}

// registered dials, logs in with PASS and returns the client and the
// Handler its login produced. Logins must not run concurrently for the
// Handler to belong to this client.
func (ts *testServer) registered(t testing.TB, nick string) (*testClient, *testHandler) {
	t.Helper()
	c := ts.dial(t)
	c.registerPass(nick)
	h := ts.backend.nextHandler(t)
	c.syncPing() // Attach runs after the welcome, before this PING is read
	if n := h.attached.Load(); n != 1 {
		t.Fatalf("Attach called %d times, want 1", n)
	}
	return c, h
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
