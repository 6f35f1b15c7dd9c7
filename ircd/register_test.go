package ircd

import (
	"encoding/base64"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// saslPlain is the base64 AUTHENTICATE payload for SASL PLAIN.
func saslPlain(authzid, authcid, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + authcid + "\x00" + password))
}

func TestCapLS302(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP LS 302")
	m := c.expect("CAP", "*", "LS")
	caps := strings.Fields(m.Params[2])
	if !slices.Contains(caps, "sasl=PLAIN") {
		t.Errorf("CAP LS 302 = %q, want sasl=PLAIN", caps)
	}
	for _, want := range []string{"message-tags", "server-time"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAP LS 302 = %q, want %s", caps, want)
		}
	}
	c.syncPing() // one LS line, nothing else
}

func TestCapLSWithoutVersion(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP LS")
	m := c.expect("CAP", "*", "LS")
	caps := strings.Fields(m.Params[2])
	if !slices.Contains(caps, "sasl") {
		t.Errorf("CAP LS = %q, want sasl", caps)
	}
	for _, cp := range caps {
		if strings.Contains(cp, "=") {
			t.Errorf("CAP LS (301) sent a value: %q", cp)
		}
	}
}

func TestCapReqUnknownIsNAKedWhole(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP REQ :sasl server-time no-such-cap")
	c.expect("CAP", "*", "NAK", "sasl server-time no-such-cap")
	c.send("CAP REQ :-no-such-cap")
	c.expect("CAP", "*", "NAK", "-no-such-cap")
	// Nothing of the NAKed requests was enabled.
	c.send("CAP LIST")
	c.expect("CAP", "*", "LIST", "")
}

func TestCapReqAckListAndRemove(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP REQ :sasl server-time")
	c.expect("CAP", "*", "ACK", "sasl server-time")
	c.send("CAP LIST")
	c.expect("CAP", "*", "LIST", "sasl server-time")
	c.send("CAP REQ :-server-time")
	c.expect("CAP", "*", "ACK", "-server-time")
	c.send("CAP LIST")
	c.expect("CAP", "*", "LIST", "sasl")
	c.send("CAP REQ")
	c.expect("461", "*", "CAP")
	c.send("CAP BOGUS")
	c.expect("410", "*", "BOGUS")
}

// TestCapEndWaitsForNickAndUser checks both orders: CAP END before NICK and
// USER does not register, and NICK and USER during negotiation wait for it.
func TestCapEndWaitsForNickAndUser(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP LS 302")
	c.expect("CAP", "*", "LS")
	c.send("CAP END", "PASS "+testPassword, "NICK alice")
	c.syncPing() // no USER yet: no welcome
	c.send("CAP LS 302")
	c.expect("CAP", "alice", "LS")
	c.send("USER alice 0 * :Alice")
	c.syncPing() // negotiating again: still no welcome
	c.send("CAP END")
	c.expectWelcome("alice")
	if n := ts.backend.logins.Load(); n != 1 {
		t.Errorf("Login called %d times, want 1", n)
	}
}

func TestSASLPlainSuccess(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP LS 302", "NICK alice", "USER alice 0 * :Alice")
	c.expect("CAP", "*", "LS")
	c.send("CAP REQ :sasl")
	c.expect("CAP", "alice", "ACK", "sasl")
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE " + saslPlain("", testAccount, testPassword))
	c.expect("900", "alice", "alice!alice@127.0.0.1", testMXID)
	c.expect("903", "alice")
	h := ts.backend.nextHandler(t)
	c.syncPing() // logged in, but no welcome before CAP END
	if h.attached.Load() != 0 {
		t.Fatal("Attach called before registration")
	}

	c.send("CAP END")
	c.expect("001", "alice", "Welcome to the TestNet IRC network, alice")
	c.expect("002", "alice")
	c.expect("003", "alice")
	c.expect("004", "alice", testServerName, "mxircd-test", UserModes, ChannelModes)
	m := c.expect("005", "alice")
	var tokens []string
	for ; m.Command == "005"; m = c.next() {
		// nick, tokens..., "are supported by this server"
		lineTokens := m.Params[1 : len(m.Params)-1]
		if len(lineTokens) > 13 {
			t.Errorf("005 line with %d tokens: %q", len(lineTokens), m.String())
		}
		tokens = append(tokens, lineTokens...)
	}
	for _, want := range []string{"CASEMAPPING=ascii", "UTF8ONLY", "NETWORK=TestNet"} {
		if !slices.Contains(tokens, want) {
			t.Errorf("005 tokens %q lack %s", tokens, want)
		}
	}
	if m.Command != "375" {
		t.Fatalf("got %q, want 375 MOTD start", m.String())
	}
	c.expect("372", "alice", "- first motd line")
	c.expect("372", "alice", "- second motd line")
	c.expect("376", "alice")
	c.syncPing()
	if n := h.attached.Load(); n != 1 {
		t.Errorf("Attach called %d times, want 1", n)
	}
}

func TestWelcomeWithoutMOTD(t *testing.T) {
	cfg := testConfig()
	cfg.MOTD = nil
	ts := startServer(t, cfg)
	c := ts.dial(t)
	c.send("PASS "+testPassword, "NICK alice", "USER alice 0 * :Alice")
	for _, numeric := range []string{"001", "002", "003", "004", "005"} {
		c.expect(numeric, "alice")
	}
	m := c.next()
	for m.Command == "005" {
		m = c.next()
	}
	if m.Command != "422" {
		t.Fatalf("got %q after 005, want 422 for a nil MOTD", m.String())
	}
	c.send("MOTD")
	c.expect("422", "alice")
}

func TestSASLWrongPasswordThenRetry(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP REQ :sasl")
	c.expect("CAP", "*", "ACK")
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE " + saslPlain("", testAccount, "wrong"))
	c.expect("904", "*")
	// The same connection may try again.
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE " + saslPlain(testAccount, testAccount, testPassword))
	// Before USER: the user part is the account's localpart, not empty.
	c.expect("900", "*", "*!alice@127.0.0.1", testMXID)
	c.expect("903")
	c.send("NICK alice", "USER alice 0 * :Alice", "CAP END")
	c.expectWelcome("alice")
}

func TestSASLRefusals(t *testing.T) {
	tests := []struct {
		name   string
		lines  []string // after CAP REQ :sasl unless noCap
		noCap  bool
		expect [][]string // command and leading params, in order
	}{
		{"before CAP REQ sasl", []string{"AUTHENTICATE PLAIN"}, true, [][]string{{"904", "*"}}},
		{"unknown mechanism", []string{"AUTHENTICATE SCRAM-SHA-256"}, false,
			[][]string{{"908", "*", "PLAIN"}, {"904", "*"}}},
		{"abort before a mechanism", []string{"AUTHENTICATE *"}, false, [][]string{{"906", "*"}}},
		{"abort during PLAIN", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE *"}, false,
			[][]string{{"AUTHENTICATE", "+"}, {"906", "*"}}},
		{"invalid base64", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE !!!!"}, false,
			[][]string{{"AUTHENTICATE", "+"}, {"904", "*"}}},
		{"not PLAIN's three fields", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("alice\x00secret"))}, false,
			[][]string{{"AUTHENTICATE", "+"}, {"904", "*"}}},
		{"authzid of another user", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("bob", testAccount, testPassword)}, false,
			[][]string{{"AUTHENTICATE", "+"}, {"904", "*"}}},
		{"chunk over 400 bytes", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + strings.Repeat("A", 401)}, false,
			[][]string{{"AUTHENTICATE", "+"}, {"905", "*"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, testConfig())
			c := ts.dial(t)
			if !tt.noCap {
				c.send("CAP REQ :sasl")
				c.expect("CAP", "*", "ACK")
			}
			c.send(tt.lines...)
			for _, e := range tt.expect {
				c.expect(e[0], e[1:]...)
			}
			c.syncPing()
			// A refusal leaves the exchange reset: PLAIN can start over.
			if !tt.noCap {
				c.send("AUTHENTICATE PLAIN")
				c.expect("AUTHENTICATE", "+")
			}
		})
	}
}

// TestSASLChunks sends payloads that need the 400-byte chunking of the
// IRCv3 SASL spec; the backend's password is sized to make them so.
func TestSASLChunks(t *testing.T) {
	tests := []struct {
		name       string
		payloadLen int // bytes before base64: 300 → exactly 400 chars
	}{
		{"exactly 400 then +", 300},
		{"400 then the rest", 339}, // 452 chars
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBackend(t)
			b.password = strings.Repeat("p", tt.payloadLen-len("\x00"+testAccount+"\x00"))
			ts := startServerWith(t, testConfig(), b)
			c := ts.dial(t)
			c.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
			c.expect("CAP", "*", "ACK")
			c.expect("AUTHENTICATE", "+")
			payload := saslPlain("", testAccount, b.password)
			c.send("AUTHENTICATE " + payload[:400])
			c.syncPing() // a full chunk means more follows: no answer yet
			rest := payload[400:]
			if rest == "" {
				rest = "+"
			}
			c.send("AUTHENTICATE " + rest)
			c.expect("900", "*", anyParam, testMXID)
			c.expect("903")
		})
	}
}

func TestSASLPayloadOver4096Bytes(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
	c.expect("CAP", "*", "ACK")
	c.expect("AUTHENTICATE", "+")
	chunk := "AUTHENTICATE " + strings.Repeat("A", 400)
	for range 10 { // 4000 bytes: still allowed
		c.send(chunk)
	}
	c.syncPing()
	c.send(chunk) // 4400 bytes
	// Too much in all fails the exchange (904); 905 is for one long line.
	c.expect("904", "*")
	// The exchange was reset, so a fresh one works.
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE " + saslPlain("", testAccount, testPassword))
	c.expect("900")
	c.expect("903")
}

func TestAuthenticateAfterSuccess(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP REQ :sasl", "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("", testAccount, testPassword))
	c.expect("CAP", "*", "ACK")
	c.expect("AUTHENTICATE", "+")
	c.expect("900")
	c.expect("903")
	c.send("AUTHENTICATE PLAIN")
	c.expect("907", "*")
	c.send("NICK alice", "USER alice 0 * :Alice", "CAP END")
	c.expectWelcome("alice")
	c.send("AUTHENTICATE PLAIN")
	c.expect("907", "alice")
	if n := ts.backend.logins.Load(); n != 1 {
		t.Errorf("Login called %d times, want 1", n)
	}
}

func TestPassLogin(t *testing.T) {
	ts := startServer(t, testConfig())
	c, h := ts.registered(t, "alice")
	if h.conn.Nick() != "alice" || h.conn.Username() != testAccount {
		t.Errorf("Conn has nick %q user %q", h.conn.Nick(), h.conn.Username())
	}
	c.send("PASS again")
	c.expect("462", "alice")
	c.send("USER alice 0 * :Alice")
	c.expect("462", "alice")
}

func TestWrongPassCloses(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("PASS wrong", "NICK alice", "USER alice 0 * :Alice")
	c.expect("464", "alice")
	c.expectClosed("Login failed")
	if len(ts.backend.handlers) != 0 {
		t.Error("a Handler was created for a failed login")
	}
}

// A connection without credentials is welcomed, login-pending: it may use
// only the service (HELP, IDENTIFY) and PING, QUIT, CAP and SASL; IDENTIFY
// makes it a full session on the same connection.
func TestNoLoginIsPending(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	c.expectWelcome("alice")
	greeting := c.expect("NOTICE", "alice")
	if greeting.Prefix.Name != "mxircd" || !strings.Contains(greeting.Params[1], "not logged in") {
		t.Errorf("greeting %q, want one from the service saying how to log in", greeting)
	}
	c.expect("NOTICE", "alice", anyParam)
	c.expect("NOTICE", "alice", anyParam)
	c.expect("NOTICE", "alice", anyParam)
	for _, line := range []string{"JOIN #a", "PRIVMSG #a :hi", "PRIVMSG bob :hi", "NICK other", "MODE alice", "MOTD", "PASS secret", "NOSUCHCOMMAND"} {
		c.send(line)
		m := c.expect("451", "alice")
		if !strings.Contains(m.Params[1], "IDENTIFY") {
			t.Errorf("451 %q does not say how to log in", m)
		}
	}
	c.syncPing()
	c.send("NOTICE mxircd :HELP") // notices get no answer
	c.send("PRIVMSG NickServ :HELP")
	help := c.expect("NOTICE", "alice")
	if help.Prefix.Name != "NickServ" || !strings.Contains(help.Params[1], "IDENTIFY") {
		t.Errorf("HELP answered %q", help)
	}
	c.expect("NOTICE", "alice", anyParam) // LOGIN
	c.expect("NOTICE", "alice", anyParam) // HELP
	c.send("PRIVMSG mxircd :VERIFY key")
	c.expect("NOTICE", "alice", `You are not logged in yet, so "VERIFY" is not available; HELP lists what is.`)
	c.send("PRIVMSG mxircd :IDENTIFY alice wrong")
	c.expect("NOTICE", "alice", "Not logged in: Invalid account or password")
	c.send("PRIVMSG mxircd :IDENTIFY 'unclosed")
	c.expect("NOTICE", "alice", "Cannot read that: a ' quote is not closed.")
	c.send("PRIVMSG mxircd :IDENTIFY a b c")
	c.expect("NOTICE", "alice", "Usage: IDENTIFY [<account>] <password>")
	if n := ts.backend.logins.Load(); n != 1 {
		t.Errorf("Login called %d times, want 1", n)
	}
	c.send("PRIVMSG mxircd :IDENTIFY alice " + testPassword)
	c.expect("NOTICE", "alice", "You are now logged in as "+testMXID+".")
	c.expect("900", "alice", anyParam, testMXID)
	h := ts.backend.nextHandler(t)
	waitFor(t, "Attach", func() bool { return h.attached.Load() == 1 })
	c.send("JOIN #a")
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 1 || cmds[0].Command != "JOIN" {
		t.Errorf("after IDENTIFY the handler got %v, want the JOIN", cmds)
	}
	c.send("PRIVMSG mxircd :HELP") // the session's service now
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 2 {
		t.Errorf("after IDENTIFY a line to the service did not reach the session: %v", cmds)
	}
}

// IDENTIFY with the password alone takes the nick as the account.
func TestPendingIdentifyWithNick(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("NICK alice", "USER x 0 * :Alice")
	c.expectWelcome("alice")
	c.send("PRIVMSG NickServ :IDENTIFY " + testPassword)
	for m := c.next(); !(m.Command == "NOTICE" && strings.HasPrefix(m.Params[1], "You are now logged in")); m = c.next() {
	}
	c.expect("900", "alice")
}

// SASL works in the login-pending state as well.
func TestPendingSASL(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP LS 302", "NICK alice", "USER alice 0 * :Alice")
	c.expect("CAP", "*", "LS")
	c.send("CAP REQ :sasl", "CAP END")
	c.expect("CAP", "alice", "ACK", "sasl")
	c.expectWelcome("alice")
	for range 4 {
		c.expect("NOTICE", "alice") // the service's greeting
	}
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE " + saslPlain("", testAccount, testPassword))
	c.expect("900", "alice")
	c.expect("903", "alice")
	h := ts.backend.nextHandler(t)
	waitFor(t, "Attach", func() bool { return h.attached.Load() == 1 })
	c.send("AUTHENTICATE PLAIN")
	c.expect("907", "alice")
}

// A login-pending connection that does not log in is closed, saying why.
func TestPendingTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.LoginPendingTimeout = 200 * time.Millisecond
	ts := startServer(t, cfg)
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	c.expectWelcome("alice")
	for {
		m := c.next()
		if m.Command == "ERROR" {
			if !strings.Contains(m.Params[0], "Login timed out") || !strings.Contains(m.Params[0], "IDENTIFY") {
				t.Errorf("closed with %q, want the login timeout and how to log in", m)
			}
			break
		}
	}
}

// With a negative LoginPendingTimeout a connection without credentials is
// refused at once, as before the login-pending state existed.
func TestNoLoginClosesWhenPendingIsOff(t *testing.T) {
	cfg := testConfig()
	cfg.LoginPendingTimeout = -1
	ts := startServer(t, cfg)
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	c.expect("464", "alice")
	c.expectClosed("Matrix login required")
	if n := ts.backend.logins.Load(); n != 0 {
		t.Errorf("Login called %d times without credentials", n)
	}
}

func TestCommandsBeforeRegistration(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	for _, line := range []string{"JOIN #a", "PRIVMSG #a :hi", "MODE alice", "MOTD", "NOSUCHCOMMAND"} {
		c.send(line)
		c.expect("451", "*")
	}
	c.registerPass("alice") // and registration still works
}

func TestInvalidNick(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	for _, nick := range []string{"#chan", "9lives", "-dash", "a:b", "a,b", "a*", "a!b", "a@b", strings.Repeat("n", NickLen+1)} {
		c.send("NICK " + nick)
		c.expect("432", "*", nick)
	}
	c.send("NICK")
	c.expect("461", "*", "NICK")
	c.registerPass("alice")
	c.send("NICK #chan")
	c.expect("432", "alice", "#chan")
	c.syncPing()
}

// An empty user name or realname is 461, and USER may be sent again.
func TestEmptyUserFields(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("PASS "+testPassword, "NICK alice", "USER "+testAccount+" 0 * :")
	c.expect("461", "alice", "USER")
	c.send("USER : 0 * :Alice")
	c.expect("461", "alice", "USER")
	c.send("USER " + testAccount + " 0 * :Alice")
	c.expectWelcome("alice")
}

func TestRegistrationTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.RegistrationTimeout = 200 * time.Millisecond
	ts := startServer(t, cfg)
	c := ts.dial(t)
	c.send("NICK alice")
	c.expectClosed("Registration timed out")
}

// TestFailedLoginLimit checks that password guessing from one address is
// cut off before the backend is asked, even for the right password.
func TestFailedLoginLimit(t *testing.T) {
	cfg := testConfig()
	cfg.FailedLoginBurst = 2
	cfg.FailedLoginRate = 0.001 // no refill within the test
	ts := startServer(t, cfg)
	c := ts.dial(t)
	c.send("CAP REQ :sasl")
	c.expect("CAP", "*", "ACK")
	for range 2 {
		c.send("AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("", testAccount, "guess"))
		c.expect("AUTHENTICATE", "+")
		c.expect("904", "*", "Invalid account or password")
	}
	c.send("AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("", testAccount, testPassword))
	c.expect("AUTHENTICATE", "+")
	m := c.expect("904", "*")
	if !strings.Contains(m.Params[1], "Too many failed logins") {
		t.Errorf("got %q, want the failed-login limit", m.String())
	}
	if n := ts.backend.logins.Load(); n != 2 {
		t.Errorf("Login called %d times, want 2: the limit must stop the third", n)
	}
	// The limit is per address, and PASS is held to it as well.
	c2 := ts.dial(t)
	c2.send("PASS "+testPassword, "NICK alice", "USER alice 0 * :Alice")
	c2.expect("464", "alice")
	c2.expectClosed("Login failed")
}

// Issue 15: guesses sent at the same moment are all counted. The limit
// was checked before the password and a failure counted after it, so 200
// connections whose AUTHENTICATE arrived together were all checked.
func TestFailedLoginLimitHoldsUnderConcurrency(t *testing.T) {
	const attempts, burst = 30, 3
	cfg := testConfig()
	cfg.FailedLoginBurst = burst
	cfg.FailedLoginRate = 0.001 // no refill within the test
	b := newTestBackend(t)
	b.gate = make(chan struct{}) // every check in progress at once
	ts := startServerWith(t, cfg, b)
	var refused atomic.Int32
	var wg sync.WaitGroup
	for range attempts {
		c := ts.dial(t)
		c.send("CAP REQ :sasl")
		c.expect("CAP", "*", "ACK")
		c.send("AUTHENTICATE PLAIN")
		c.expect("AUTHENTICATE", "+")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send("AUTHENTICATE " + saslPlain("", testAccount, "guess"))
			if m := c.next(); m.Command == "904" && strings.Contains(m.Trailing(), "Too many failed logins") {
				refused.Add(1)
			}
		}()
	}
	waitFor(t, "the burst's guesses being checked", func() bool { return b.logins.Load() >= burst })
	close(b.gate)
	wg.Wait()
	// The others waited their turn, then found the budget spent.
	if n := b.logins.Load(); n != burst {
		t.Errorf("%d guesses reached the password check, want %d (the burst)", n, burst)
	}
	if n := refused.Load(); n != attempts-burst {
		t.Errorf("%d guesses refused, want %d", n, attempts-burst)
	}
}

// Honest logins from one address that arrive together wait their turn
// rather than being refused: a restart sends every client behind a NAT
// back at once (TestManyUsersOneRoom).
func TestConcurrentGoodLoginsWait(t *testing.T) {
	const attempts, burst = 12, 2
	cfg := testConfig()
	cfg.FailedLoginBurst = burst
	cfg.FailedLoginRate = 0.001
	ts := startServer(t, cfg)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range attempts {
		c := ts.dial(t)
		c.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
		c.expect("CAP", "*", "ACK")
		c.expect("AUTHENTICATE", "+")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send("AUTHENTICATE " + saslPlain("", testAccount, testPassword))
			if m := c.next(); m.Command != "900" {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d of %d good logins at once were refused", n, attempts)
	}
}

// A good login gives its token back: only failures count.
func TestGoodLoginsDoNotCount(t *testing.T) {
	cfg := testConfig()
	cfg.FailedLoginBurst = 1
	cfg.FailedLoginRate = 0.001
	ts := startServer(t, cfg)
	for range 3 {
		c := ts.dial(t)
		c.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
		c.expect("CAP", "*", "ACK")
		c.expect("AUTHENTICATE", "+")
		c.send("AUTHENTICATE " + saslPlain("", testAccount, testPassword))
		c.expect("900", "*")
	}
}

// Until registration the reader goroutine alone sets the nick (NICK);
// from then on the session alone does (SetNick). A session that calls
// SetNick too early, here right after a SASL login, changes nothing.
func TestSetNickBeforeRegistrationIsRefused(t *testing.T) {
	ts := startServer(t, testConfig())
	c := ts.dial(t)
	c.send("CAP LS 302", "NICK alice", "USER alice 0 * :Alice")
	c.expect("CAP", "*", "LS")
	c.send("CAP REQ :sasl")
	c.expect("CAP", "alice", "ACK", "sasl")
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE " + saslPlain("", testAccount, testPassword))
	c.expect("900", "alice")
	c.expect("903", "alice")
	h := ts.backend.nextHandler(t)
	h.conn.SetNick("early")
	c.send("CAP END")
	c.expect("001", "alice", "Welcome to the TestNet IRC network, alice")
	for m := c.next(); m.Command != "376"; m = c.next() {
	}
	h.conn.SetNick("later")
	if got := h.conn.Nick(); got != "later" {
		t.Errorf("after registration SetNick left the nick %q, want later", got)
	}
}

// logLines is a log destination a test can read while connections write.
type logLines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(l.buf.String(), "\n")
}

// What a connection logs once it has logged in names the account, so an
// operator can find one user's trouble; before, it names only the address.
func TestConnectionLogNamesTheAccount(t *testing.T) {
	var logs logLines
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := newTestBackend(t)
	b.onCommand = func(h *testHandler, m *irc.Message) {
		if m.Command == "JOIN" {
			panic("test: a handler that fails")
		}
	}
	ts := startServerWith(t, cfg, b)
	c := ts.dial(t)
	c.send("PASS wrong", "NICK alice", "USER "+testAccount+" 0 * :Alice")
	c.expect("464")
	c.expectClosed("Login failed")
	c, h := ts.registered(t, "alice")
	c.send("JOIN #a")
	h.waitDetached(t, ts.srv)

	var refused, panicked string
	for _, line := range logs.lines() {
		switch {
		case strings.Contains(line, `msg="login refused"`):
			refused = line
		case strings.Contains(line, `msg="panic in connection"`):
			panicked = line
		}
	}
	if refused == "" || strings.Contains(refused, "account="+testMXID) {
		t.Errorf("refused login logged as %q, want it without the account it did not log in to", refused)
	}
	if !strings.Contains(panicked, "remote=") || !strings.Contains(panicked, "account="+testMXID) {
		t.Errorf("panic after login logged as %q, want the address and account=%s", panicked, testMXID)
	}
}
