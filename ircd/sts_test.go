package ircd

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// TestCapLSSTS: the sts capability carries the policy the server gives for
// the connection, only to CAP LS 302, and cannot be requested.
func TestCapLSSTS(t *testing.T) {
	cfg := testConfig()
	cfg.STS = func(nc net.Conn) string {
		if _, ok := nc.(*net.TCPConn); ok {
			return "port=6697"
		}
		return ""
	}
	ts := startServer(t, cfg)
	c := ts.dial(t)
	c.send("CAP LS 302")
	caps := strings.Fields(c.expect("CAP", "*", "LS").Params[2])
	if !slices.Contains(caps, "sts=port=6697") {
		t.Errorf("CAP LS 302 = %q, want sts=port=6697", caps)
	}
	c.send("CAP REQ sts")
	c.expect("CAP", "*", "NAK", "sts")

	c = ts.dial(t)
	c.send("CAP LS")
	for _, cp := range strings.Fields(c.expect("CAP", "*", "LS").Params[2]) {
		if strings.HasPrefix(cp, "sts") {
			t.Errorf("CAP LS (301) listed %q", cp)
		}
	}

	// No policy for the connection: no sts.
	cfg.STS = func(net.Conn) string { return "" }
	c = startServer(t, cfg).dial(t)
	c.send("CAP LS 302")
	for _, cp := range strings.Fields(c.expect("CAP", "*", "LS").Params[2]) {
		if strings.HasPrefix(cp, "sts") {
			t.Errorf("CAP LS 302 without a policy listed %q", cp)
		}
	}
}
