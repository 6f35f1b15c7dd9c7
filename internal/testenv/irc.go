package testenv

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// DefaultIRCTimeout bounds each Expect… call unless IRCClient.Timeout says
// otherwise. A login includes real Matrix requests and key derivation under
// -race while other packages' tests load the same two cores, so it is
// generous; it is a bound on waiting, not a performance claim.
const DefaultIRCTimeout = 20 * time.Second

// maxIRCLine is far above what a server may send (8191 bytes of tags plus 512)
// so that an overlong line shows up in a test's output instead of as a read
// error.
const maxIRCLine = 1 << 20

// IRCClient is a line-oriented IRC client for driving the server under test.
// Lines are read in the background; the Expect… methods consume them in
// order.
type IRCClient struct {
	// Timeout bounds each Expect…, Drain and Register step.
	Timeout time.Duration

	t    testing.TB
	conn net.Conn

	incoming chan string   // closed after readErr is set
	readErr  error         // why reading stopped
	done     chan struct{} // closed by Close, so the reader never blocks forever
	close    sync.Once

	writeMu sync.Mutex

	histMu  sync.Mutex
	history []string

	drains atomic.Int64
}

// DialIRC connects to addr; the connection is closed when the test ends.
func DialIRC(t testing.TB, addr string) *IRCClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, DefaultIRCTimeout)
	if err != nil {
		t.Fatalf("connecting to IRC server %s: %v", addr, err)
	}
	return newIRCClient(t, conn)
}

// NewIRCClient speaks IRC over conn (CRLF-terminated lines either way);
// conn is closed when the test ends.
func NewIRCClient(t testing.TB, conn net.Conn) *IRCClient { return newIRCClient(t, conn) }

func newIRCClient(t testing.TB, conn net.Conn) *IRCClient {
	c := &IRCClient{
		Timeout:  DefaultIRCTimeout,
		t:        t,
		conn:     conn,
		incoming: make(chan string, 256),
		done:     make(chan struct{}),
	}
	go c.read()
	t.Cleanup(c.Close)
	return c
}

func (c *IRCClient) read() {
	defer close(c.incoming)
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 0, 64<<10), maxIRCLine)
	// ScanLines drops the CR of CRLF and also accepts a bare LF, which is what
	// a tolerant client does.
	for sc.Scan() {
		line := sc.Text()
		c.histMu.Lock()
		c.history = append(c.history, line)
		c.histMu.Unlock()
		select {
		case c.incoming <- line:
		case <-c.done:
			c.readErr = net.ErrClosed
			return
		}
	}
	c.readErr = sc.Err()
	if c.readErr == nil {
		c.readErr = fmt.Errorf("EOF")
	}
}

// Close closes the connection. It is safe to call more than once.
func (c *IRCClient) Close() {
	c.close.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

// Lines returns every line received so far, including ones no Expect… call
// has consumed yet.
func (c *IRCClient) Lines() []string {
	c.histMu.Lock()
	defer c.histMu.Unlock()
	return slices.Clone(c.history)
}

// Send formats one line and sends it with CRLF. Lines containing CR, LF or
// NUL are refused (fail the test) because they would not be one line; use
// SendRaw to test how the server copes with such input.
func (c *IRCClient) Send(format string, args ...any) {
	c.t.Helper()
	line := fmt.Sprintf(format, args...)
	if strings.ContainsAny(line, "\r\n\x00") {
		c.t.Errorf("IRC Send: line %q contains CR, LF or NUL", line)
		return
	}
	c.SendRaw(line + "\r\n")
}

// SendRaw writes s as is.
func (c *IRCClient) SendRaw(s string) {
	c.t.Helper()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout()))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		// Errorf, not Fatalf: Send may be called from a helper goroutine.
		c.t.Errorf("IRC write %q: %v", s, err)
	}
}

// Expect consumes lines until one with the given command ("PRIVMSG", "001")
// and returns it.
func (c *IRCClient) Expect(t testing.TB, command string) *irc.Message {
	t.Helper()
	command = strings.ToUpper(command)
	return c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == command }, command)
}

// ExpectMatch consumes lines until pred accepts one and returns it; what
// describes the awaited line in failure messages.
func (c *IRCClient) ExpectMatch(t testing.TB, pred func(*irc.Message) bool, what string) *irc.Message {
	t.Helper()
	msg, _ := c.expect(t, pred, what)
	return msg
}

// expect fails the test, listing the lines it consumed, if the connection
// closes or Timeout passes before pred accepts a line.
func (c *IRCClient) expect(t testing.TB, pred func(*irc.Message) bool, what string) (*irc.Message, []string) {
	t.Helper()
	timer := time.NewTimer(c.timeout())
	defer timer.Stop()
	var seen []string
	for {
		select {
		case line, ok := <-c.incoming:
			if !ok {
				t.Fatalf("IRC: connection closed (%v) while waiting for %s; received:%s", c.readErr, what, formatLines(seen))
			}
			seen = append(seen, line)
			msg, err := irc.ParseMessage(line)
			if err != nil {
				t.Fatalf("IRC: unparsable line %q (%v) while waiting for %s; received:%s", line, err, what, formatLines(seen))
			}
			if pred(msg) {
				return msg, seen
			}
		case <-timer.C:
			t.Fatalf("IRC: no %s within %v; received:%s", what, c.timeout(), formatLines(seen))
		}
	}
}

// Drain returns everything the server sent before answering a PING sent now,
// which is how a test makes sure the server has finished reacting to earlier
// input.
func (c *IRCClient) Drain(t testing.TB) []*irc.Message {
	t.Helper()
	token := fmt.Sprintf("drain-%d", c.drains.Add(1))
	c.Send("PING :%s", token)
	var msgs []*irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "PONG" && m.Trailing() == token {
			return true
		}
		msgs = append(msgs, m)
		return false
	}, "PONG "+token)
	return msgs
}

// ExpectClosed consumes lines until the server closes the connection and
// returns them.
func (c *IRCClient) ExpectClosed(t testing.TB) []*irc.Message {
	t.Helper()
	timer := time.NewTimer(c.timeout())
	defer timer.Stop()
	var msgs []*irc.Message
	var seen []string
	for {
		select {
		case line, ok := <-c.incoming:
			if !ok {
				return msgs
			}
			seen = append(seen, line)
			if msg, err := irc.ParseMessage(line); err == nil {
				msgs = append(msgs, msg)
			}
		case <-timer.C:
			t.Fatalf("IRC: connection still open after %v; received:%s", c.timeout(), formatLines(seen))
		}
	}
}

// Register logs in with SASL PLAIN during connection registration and waits
// for the welcome (001), failing the test with what was received if the
// server declines any step.
func (c *IRCClient) Register(t testing.TB, nick, account, password string) {
	t.Helper()
	c.Send("CAP LS 302")
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :%s", account, "mxircd testenv")

	caps := c.expectCapLS(t)
	if mechs, ok := caps["sasl"]; !ok {
		t.Fatalf("IRC: server does not offer the sasl capability (offers %v)", caps)
	} else if mechs != "" && !slices.Contains(strings.Split(mechs, ","), "PLAIN") {
		t.Fatalf("IRC: server's SASL mechanisms %q lack PLAIN", mechs)
	}

	c.Send("CAP REQ :sasl")
	reply := c.expectOneOf(t, func(m *irc.Message) bool {
		return m.Command == "CAP" && (m.Param(1) == "ACK" || m.Param(1) == "NAK")
	}, "CAP ACK :sasl")
	if reply.Param(1) != "ACK" || !slices.Contains(strings.Fields(reply.Trailing()), "sasl") {
		t.Fatalf("IRC: CAP REQ :sasl answered with %q", reply.String())
	}

	c.Send("AUTHENTICATE PLAIN")
	c.expectOneOf(t, func(m *irc.Message) bool {
		return m.Command == "AUTHENTICATE" && m.Param(0) == "+"
	}, "AUTHENTICATE +", saslFailures...)

	payload := base64.StdEncoding.EncodeToString([]byte("\x00" + account + "\x00" + password))
	for _, chunk := range saslChunks(payload) {
		c.Send("AUTHENTICATE %s", chunk)
	}
	c.expectOneOf(t, func(m *irc.Message) bool { return m.Command == irc.RPL_SASLSUCCESS }, "903 (SASL success)", saslFailures...)

	c.Send("CAP END")
	c.expectOneOf(t, func(m *irc.Message) bool { return m.Command == irc.RPL_WELCOME }, "001 (welcome)",
		"ERROR", irc.ERR_ERRONEUSNICKNAME, irc.ERR_NICKNAMEINUSE, irc.ERR_NICKCOLLISION,
		irc.ERR_UNAVAILRESOURCE, irc.ERR_PASSWDMISMATCH, irc.ERR_YOUREBANNEDCREEP)
}

var saslFailures = []string{
	irc.ERR_NICKLOCKED, irc.ERR_SASLFAIL, irc.ERR_SASLTOOLONG, irc.ERR_SASLABORTED,
	irc.ERR_SASLALREADY, irc.RPL_SASLMECHS, "ERROR",
}

// expectOneOf waits for a line accepted by want, failing at once, rather than
// at the timeout, if a line with one of the failure commands comes first.
func (c *IRCClient) expectOneOf(t testing.TB, want func(*irc.Message) bool, what string, failures ...string) *irc.Message {
	t.Helper()
	msg, seen := c.expect(t, func(m *irc.Message) bool {
		return want(m) || slices.Contains(failures, m.Command)
	}, what)
	if !want(msg) {
		t.Fatalf("IRC: got %s while waiting for %s; received:%s", msg.Command, what, formatLines(seen))
	}
	return msg
}

// expectCapLS collects a possibly multi-line CAP LS 302 reply into a map from
// capability to value.
func (c *IRCClient) expectCapLS(t testing.TB) map[string]string {
	t.Helper()
	caps := map[string]string{}
	for {
		m := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "CAP" && m.Param(1) == "LS"
		}, "CAP LS reply")
		for _, tok := range strings.Fields(m.Trailing()) {
			name, value, _ := strings.Cut(tok, "=")
			caps[name] = value
		}
		// "CAP nick LS * :caps" announces that more lines follow.
		if len(m.Params) < 4 || m.Params[2] != "*" {
			return caps
		}
	}
}

// saslChunks splits a base64 SASL response into AUTHENTICATE arguments: at
// most 400 bytes each, and a lone "+" after a full last chunk (or for an empty
// response) so the server knows the response is complete.
func saslChunks(b64 string) []string {
	var chunks []string
	for len(b64) >= 400 {
		chunks = append(chunks, b64[:400])
		b64 = b64[400:]
	}
	if b64 == "" {
		b64 = "+"
	}
	return append(chunks, b64)
}

func (c *IRCClient) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultIRCTimeout
}

func formatLines(lines []string) string {
	if len(lines) == 0 {
		return " (nothing)"
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\n\t")
		b.WriteString(l)
	}
	return b.String()
}
