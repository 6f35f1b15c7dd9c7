package ircd

import (
	"encoding/base64"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// SASL EXTERNAL is offered (in the sasl capability and 908) only on
// connections Config.ClientCert says can carry a certificate; it logs in
// by the fingerprint it reports, with the authzid the client sent; no
// certificate is refused in words, and a certificate the backend refuses
// is a failed login.
func TestSASLExternal(t *testing.T) {
	var tlsConn atomic.Bool
	var fp atomic.Value
	fp.Store("")
	cfg := testConfig()
	cfg.FailedLoginRate = 1e-6 // what is spent stays spent during the test
	cfg.ClientCert = func(net.Conn) (string, bool) { return fp.Load().(string), tlsConn.Load() }
	b := newTestBackend(t)
	b.certFP = "ab12"
	ts := startServerWith(t, cfg, b)

	start := func() *testClient {
		c := ts.dial(t)
		c.send("CAP LS 302", "NICK alice", "USER alice 0 * :Alice")
		ls := c.expect("CAP", "*", "LS")
		if want := map[bool]string{false: "sasl=PLAIN", true: "sasl=PLAIN,EXTERNAL"}[tlsConn.Load()]; !strings.Contains(" "+ls.Trailing()+" ", " "+want+" ") {
			t.Errorf("CAP LS %q lacks %s", ls.Trailing(), want)
		}
		c.send("CAP REQ :sasl")
		c.expect("CAP", "alice", "ACK", "sasl")
		return c
	}

	// Not a connection that can carry a certificate: no EXTERNAL.
	c := start()
	c.send("AUTHENTICATE EXTERNAL")
	c.expect("908", "alice", "PLAIN")
	c.expect("904", "alice")

	tlsConn.Store(true)
	c = start()
	c.send("AUTHENTICATE EXTERNAL")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE +")
	if m := c.expect("904", "alice"); !strings.Contains(m.Trailing(), "no TLS client certificate") {
		t.Errorf("904 without a certificate: %q", m.Trailing())
	}
	if n := b.logins.Load(); n != 0 {
		t.Errorf("the backend was asked %d times without a certificate", n)
	}

	fp.Store("ffff")
	c.send("AUTHENTICATE EXTERNAL")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE +")
	if m := c.expect("904", "alice"); !strings.Contains(m.Trailing(), "not registered") {
		t.Errorf("904 for an unknown certificate: %q", m.Trailing())
	}

	fp.Store("ab12")
	c.send("AUTHENTICATE EXTERNAL")
	c.expect("AUTHENTICATE", "+")
	c.send("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte(testAccount)))
	c.expect("900", "alice")
	c.expect("903", "alice")
	c.send("CAP END")
	c.expect("001", "alice")
	if n := b.logins.Load(); n != 2 {
		t.Errorf("%d logins asked of the backend, want 2", n)
	}
	// The refused certificate spent one of the address's failed logins.
	ts.srv.mu.Lock()
	f := ts.srv.failures["127.0.0.1"]
	ts.srv.mu.Unlock()
	if f == nil || f.lim.Tokens() > float64(cfg.FailedLoginBurst)-0.5 {
		t.Errorf("the refused certificate was not counted as a failed login")
	}
}
