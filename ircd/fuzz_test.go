package ircd

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// newOfflineServer is a Server that never listens: fuzz targets drive its
// connections' line handling directly, which is fast and keeps a panic on
// the fuzzing goroutine instead of behind readLoop's recover.
func newOfflineServer(tb testing.TB) *Server {
	cfg := testConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	return NewServer(cfg, newTestBackend(tb))
}

// newOfflineConn is a Conn whose reader and writer goroutines never run;
// its output stays in the send queue for the caller to inspect.
func newOfflineConn(tb testing.TB, srv *Server, registered bool) *Conn {
	nc, _ := net.Pipe() // only RemoteAddr is used
	c := newConn(srv, nc)
	if registered {
		c.SetNick(testAccount)
		c.mu.Lock()
		c.user = testAccount
		c.mu.Unlock()
		c.handler = newTestHandler(tb, c)
		c.registered.Store(true)
	}
	return c
}

// checkOutput drains the send queue and checks that every line the server
// produced is one well-formed line, whatever the client sent.
func checkOutput(t *testing.T, c *Conn) {
	t.Helper()
	lines, _, _ := c.q.take(nil)
	for _, l := range lines {
		body, ok := bytes.CutSuffix(l, []byte("\r\n"))
		if !ok || bytes.ContainsAny(body, "\x00\r\n") {
			t.Fatalf("server queued a broken line: %q", l)
		}
		if !utf8.Valid(body) {
			t.Fatalf("server queued invalid UTF-8: %q", l)
		}
		if _, err := irc.ParseMessage(string(body)); err != nil {
			t.Fatalf("server queued an unparsable line %q: %v", l, err)
		}
	}
}

// FuzzParseAndDispatch runs fuzzed lines through handleLine (parse, checks,
// command table, handlers), before or after registration. It must never
// panic, never forward what checkForwarded forbids, and never emit a
// broken line. Registration itself is reachable from the seeds, so CAP,
// SASL and PASS are fuzzed too.
func FuzzParseAndDispatch(f *testing.F) {
	seeds := []struct {
		registered bool
		lines      string
	}{
		{false, "CAP LS 302\nCAP REQ :sasl message-tags\nNICK alice\nUSER alice 0 * :A\nAUTHENTICATE PLAIN\nAUTHENTICATE AGFsaWNlAHNlY3JldA==\nCAP END\nJOIN #a\n"},
		{false, "PASS secret\nNICK alice\nUSER alice 0 * :A\nMODE alice\nQUIT :bye\n"},
		{false, "CAP REQ :sasl\nAUTHENTICATE PLAIN\nAUTHENTICATE +\nAUTHENTICATE *\nAUTHENTICATE FOO\n"},
		{false, "NICK :\nNICK 1a\nUSER a\nJOIN #a\nFOO\n"},
		{true, "PRIVMSG\nPRIVMSG #a\nPRIVMSG #a :\nNOTICE #a :hi\nPRIVMSG #a :hi there\n"},
		{true, "MODE alice +i\nMODE bob\nMODE #a +m\nMODE :\nMODE\n"},
		{true, "@time=x;+draft/reply=1 :alice!a@b PRIVMSG #a :hi\n@a=b \n@a=b\n:prefix\n:prefix \n"},
		{true, "NICK bob\nNICK #bad\nTOPIC #a :new topic\nWHOIS bob\nWHO #a\nNAMES\nCAP LIST\nCAP LS\nCAP FOO\n"},
		{true, "PRIVMSG #a :\xff\nPRIVMSG #a :a\x00b\nPRIVMSG #a :a\rb\n\xff\xfe :x\n"},
	}
	for _, s := range seeds {
		f.Add(s.registered, []byte(s.lines))
	}
	f.Fuzz(func(t *testing.T, registered bool, data []byte) {
		srv := newOfflineServer(t)
		c := newOfflineConn(t, srv, registered)
		for _, line := range bytes.Split(data, []byte("\n")) {
			// What the LineReader would hand over: no line ending, never empty.
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				continue
			}
			c.handleLine(line)
			checkOutput(t, c)
		}
	})
}
