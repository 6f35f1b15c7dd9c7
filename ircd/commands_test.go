package ircd

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

func TestUnknownCommand(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.send("FROBNICATE x")
	c.expect("421", "alice", "FROBNICATE")
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 0 {
		t.Errorf("unknown command reached the Handler: %v", cmds)
	}
}

func TestMissingParams(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	for _, cmd := range []string{"JOIN", "PART", "TOPIC", "WHOIS", "MODE", "NICK", "PING", "USER a b c"} {
		c.send(cmd)
		c.expect("461", "alice", strings.Fields(cmd)[0])
	}
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 0 {
		t.Errorf("commands without their params reached the Handler: %v", cmds)
	}
}

func TestPrivmsgWithoutTargetOrText(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.send("PRIVMSG")
	c.expect("411", "alice")
	c.send("PRIVMSG :")
	c.expect("411", "alice")
	c.send("PRIVMSG #a")
	c.expect("412", "alice")
	c.send("PRIVMSG #a :")
	c.expect("412", "alice")
	// NOTICE must never be answered, not even with an error.
	c.send("NOTICE", "NOTICE #a", "NOTICE #a :")
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 0 {
		t.Errorf("empty messages reached the Handler: %v", cmds)
	}
}

func TestPing(t *testing.T) {
	ts := startServer(t, testConfig())
	c, _ := ts.registered(t, "alice")
	c.send("PING :hello there")
	c.expect("PONG", testServerName, "hello there")
	c.send("PONG :whatever") // unsolicited PONG: silently accepted
	c.syncPing()
}

// A PING after commands the session has not answered yet goes to the
// session, behind them, so its PONG cannot overtake their replies; once
// the session has answered everything, PING is answered at once again.
func TestPingWaitsForUnsettledCommands(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	h.unsettled.Store(true)
	c.send("PRIVMSG bob :hi", "PING :barrier")
	waitFor(t, "the PING to reach the session", func() bool { return h.pingsHeld() == 1 })
	// The reader answered nothing; the session replies, then settles.
	h.conn.SendNumeric("401", "bob", "No such nick")
	h.unsettled.Store(false)
	h.settle()
	c.expect("401", "alice", "bob")
	c.expect("PONG", testServerName, "barrier")
	// Nothing pending: the reader answers.
	h.unsettled.Store(true)
	c.syncPing()
	if n := h.pingsHeld(); n != 0 {
		t.Fatalf("a PING with nothing pending went to the session (%d held)", n)
	}
}

func TestUserMode(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.send("MODE alice")
	c.expect("221", "alice", "+")
	c.send("MODE ALICE") // nicks compare case-insensitively
	c.expect("221", "alice", "+")
	c.send("MODE alice +")
	c.expect("221", "alice", "+")
	// irssi sets +i on connect: it is accepted (and true anyway), from
	// the client's full nick!user@host.
	c.send("MODE alice +i")
	if m := c.expect("MODE", "alice", "+i"); m.Prefix.String() != "alice!alice@127.0.0.1" {
		t.Errorf("MODE +i from %q, want alice!alice@127.0.0.1", m.Prefix)
	}
	c.send("MODE alice")
	c.expect("221", "alice", "+i")
	c.send("MODE alice +i") // no change: the current modes
	c.expect("221", "alice", "+i")
	c.send("MODE alice -i+w")
	c.expect("MODE", "alice", "-i")
	c.expect("501", "alice")
	c.send("MODE bob")
	c.expect("502", "alice")
	c.send("MODE bob +i")
	c.expect("502", "alice")
	// An empty target used to index past its end and kill the connection.
	c.send("MODE :")
	c.expect("461", "alice", "MODE")
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 0 {
		t.Errorf("user modes reached the Handler: %v", cmds)
	}
}

func TestCommandsForwardedToHandler(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	lines := []string{
		"JOIN #a,#b key",
		"PART #a :bye now",
		"PRIVMSG #a :hello world",
		"NOTICE bob :psst",
		"TOPIC #a :new topic",
		"TOPIC #a",
		"NAMES #a",
		"NAMES",
		"WHO #a",
		"WHOIS bob",
		"MODE #a +m",
		"MODE !room:example.org",
		"NICK bob",
		"@+draft/reply=abc PRIVMSG #a :reply",
	}
	c.send(lines...)
	c.syncPing() // the Handler is called on the reader goroutine, in order
	got := h.commands()
	if len(got) != len(lines) {
		t.Fatalf("Handler got %d commands, want %d: %v", len(got), len(lines), got)
	}
	for i, line := range lines {
		want := irc.MustParseMessage(line)
		if got[i].Command != want.Command || !slices.Equal(got[i].Params, want.Params) {
			t.Errorf("command %d = %q, want %q", i, got[i].String(), line)
		}
	}
	if got[len(got)-1].Tags["+draft/reply"] != "abc" {
		t.Errorf("client tags not passed on: %v", got[len(got)-1].Tags)
	}
	// NICK is the session's to answer (it knows Matrix users' nicks), so
	// ircd must not have changed the nick itself.
	if n := h.conn.Nick(); n != "alice" {
		t.Errorf("nick changed to %q by ircd", n)
	}
}

func TestQuit(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.send("QUIT :gone fishing")
	c.expectClosed("Quit: gone fishing")
	h.waitDetached(t, ts.srv)
}

func TestQuitWithoutReason(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.send("QUIT")
	c.expectClosed("Client quit")
	h.waitDetached(t, ts.srv)
}

func TestClientCloseDetaches(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.nc.Close()
	h.waitDetached(t, ts.srv)
}

// TestLinesAfterQuitAreIgnored sends commands in the same write as QUIT:
// once the connection is closing, the Handler must not see more.
func TestLinesAfterQuitAreIgnored(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.send("QUIT", "JOIN #a", "PRIVMSG #a :after quit")
	c.expectClosed("Client quit")
	h.waitDetached(t, ts.srv)
	if cmds := h.commands(); len(cmds) != 0 {
		t.Errorf("Handler got commands sent after QUIT: %v", cmds)
	}
}

func TestDetachWithoutRegistration(t *testing.T) {
	// A SASL login creates the Handler before registration; a client that
	// leaves before CAP END must still be detached.
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP REQ :sasl", "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("", testAccount, testPassword))
	c.expect("CAP")
	c.expect("AUTHENTICATE")
	c.expect("900")
	c.expect("903")
	h := ts.backend.nextHandler(t)
	c.nc.Close()
	h.waitDetached(t, ts.srv)
	if n := h.attached.Load(); n != 0 {
		t.Errorf("Attach called %d times for a client that never registered", n)
	}
}

func TestOversizedLine(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	c.send("PRIVMSG #a :" + strings.Repeat("x", 600))
	c.expect("417", "alice")
	c.send("PRIVMSG #a :" + strings.Repeat("x", 100<<10)) // far beyond the buffer
	c.expect("417", "alice")
	c.send("PRIVMSG #a :fine")
	c.syncPing()
	cmds := h.commands()
	if len(cmds) != 1 || cmds[0].Params[1] != "fine" {
		t.Errorf("Handler got %v, want only the short PRIVMSG", cmds)
	}
}

// A non-UTF-8 line during registration gets FAIL whatever the caps: the
// client is told why registration does not go on, and can send it again.
func TestNonUTF8DuringRegistration(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("PASS "+testPassword, "NICK alice", "USER "+testAccount+" 0 * :i\xe8rc")
	c.expect("FAIL", "USER", "INVALID_UTF8")
	c.send("USER " + testAccount + " 0 * :irc")
	c.expectWelcome("alice")
}

func TestMalformedLines(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []string // FAIL params
	}{
		{"NUL", "PRIVMSG #a :a\x00b", []string{"*", "INVALID_MESSAGE"}},
		{"CR inside the line", "PRIVMSG #a :a\rb", []string{"*", "INVALID_MESSAGE"}},
		{"CR at the start", "\rQUIT", []string{"*", "INVALID_MESSAGE"}},
		{"invalid UTF-8", "PRIVMSG #a :caf\xe9", []string{"PRIVMSG", "INVALID_UTF8"}},
		{"invalid UTF-8 in a tag", "@+x=\xff PRIVMSG #a :hi", []string{"PRIVMSG", "INVALID_UTF8"}},
		{"invalid UTF-8 command", "\xff\xfe #a", []string{anyParam, "INVALID_UTF8"}},
		{"only tags", "@a=b", []string{"*", "INVALID_MESSAGE"}},
		{"only tags and a space", "@a=b ", []string{"*", "INVALID_MESSAGE"}}, // used to panic in irc.ParseMessage
		{"only a prefix", ":nick!user@host", []string{"*", "INVALID_MESSAGE"}},
		{"tags and a prefix", "@a=b :nick", []string{"*", "INVALID_MESSAGE"}},
	}
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	// Without standard-replies the same errors come as NOTICEs, except
	// INVALID_UTF8, which UTF8ONLY promises as FAIL to every client.
	for _, tt := range tests {
		t.Run(tt.name+" without standard-replies", func(t *testing.T) {
			c.t = t
			c.send(tt.line)
			if tt.want[1] == "INVALID_UTF8" {
				c.expect("FAIL", tt.want...)
			} else {
				c.expect("NOTICE", "alice")
			}
			c.syncPing()
		})
	}
	c.t = t
	c.send("CAP REQ standard-replies")
	c.expect("CAP", "alice", "ACK")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			c.send(tt.line)
			c.expect("FAIL", tt.want...)
			c.syncPing() // and the connection keeps working
		})
	}
	c.t = t
	if cmds := h.commands(); len(cmds) != 0 {
		t.Errorf("malformed lines reached the Handler: %v", cmds)
	}
}
