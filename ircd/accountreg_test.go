package ircd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// registeringBackend is a testBackend that also registers accounts
// (REGISTER): any name not registered before, with any password.
type registeringBackend struct {
	*testBackend
	calls atomic.Int32
	// gate, if set, holds each RegisterAccount until the test sends on it.
	gate chan struct{}

	mu    sync.Mutex
	taken map[string]bool
}

func (b *registeringBackend) RegisterAccount(ctx context.Context, account, password string, c *Conn) (Handler, error) {
	b.calls.Add(1)
	if b.gate != nil {
		<-b.gate
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taken[account] {
		return nil, &RegisterError{Code: RegisterAccountExists, Err: errors.New("that account name is taken")}
	}
	b.taken[account] = true
	h := newTestHandler(b.tb, c)
	b.handlers <- h
	return h, nil
}

// startRegisterServer serves a registeringBackend on which the names
// taken are registered already.
func startRegisterServer(t *testing.T, cfg Config, gated bool, taken ...string) (*testServer, *registeringBackend) {
	t.Helper()
	cfg.AccountRegistration = true
	b := &registeringBackend{testBackend: newTestBackend(t), taken: map[string]bool{}}
	if gated {
		b.gate = make(chan struct{})
	}
	for _, name := range taken {
		b.taken[name] = true
	}
	return startServerAs(t, cfg, b.testBackend, b), b
}

// REGISTER before connection registration logs in as SASL does (SUCCESS,
// then 900), and the welcome follows once registration ends; the
// capability is offered with its keys.
func TestRegisterBeforeConnect(t *testing.T) {
	ts, _ := startRegisterServer(t, testConfig(), false)
	c := ts.dial(t)
	c.send("CAP LS 302")
	ls := c.expect("CAP", "*", "LS")
	if !strings.Contains(" "+ls.Params[2]+" ", " draft/account-registration=before-connect,custom-account-name ") {
		t.Errorf("CAP LS %q lacks draft/account-registration=before-connect,custom-account-name", ls.Params[2])
	}
	c.send("REGISTER alice * secretpassword")
	c.expect("FAIL", "REGISTER", "NEED_NICK", "*")
	c.send("NICK alice", "REGISTER * * secretpassword")
	c.expect("REGISTER", "SUCCESS", testMXID)
	c.expect("900", "alice", anyParam, testMXID)
	h := ts.backend.nextHandler(t)
	c.send("VERIFY alice 1234")
	c.expect("FAIL", "VERIFY", "ALREADY_AUTHENTICATED", testMXID)
	c.send("USER alice 0 * :Alice", "CAP END")
	c.expectWelcome("alice")
	c.syncPing()
	if n := h.attached.Load(); n != 1 {
		t.Errorf("Attach called %d times, want 1", n)
	}
	c.send("REGISTER bob * secretpassword")
	c.expect("FAIL", "REGISTER", "ALREADY_AUTHENTICATED", testMXID)
}

// A login-pending connection that registers leaves that state for the
// account's session, as after IDENTIFY.
func TestRegisterWhilePending(t *testing.T) {
	ts, _ := startRegisterServer(t, testConfig(), false)
	c := ts.dial(t)
	c.send("NICK alice", "USER alice 0 * :Alice")
	c.expectWelcome("alice")
	for range 4 {
		c.expect("NOTICE", "alice") // the service's greeting
	}
	c.send("VERIFY alice 1234")
	c.expect("FAIL", "VERIFY", "INVALID_CODE", "alice")
	c.send("REGISTER * * secretpassword")
	c.expect("REGISTER", "SUCCESS", testMXID)
	c.expect("900", "alice", anyParam, testMXID)
	h := ts.backend.nextHandler(t)
	waitFor(t, "Attach", func() bool { return h.attached.Load() == 1 })
	c.send("JOIN #a")
	c.syncPing()
	if cmds := h.commands(); len(cmds) != 1 || cmds[0].Command != "JOIN" {
		t.Errorf("after REGISTER the handler got %v, want the JOIN", cmds)
	}
}

// Without AccountRegistration, or a Backend that can register, REGISTER
// is refused, and the capability neither offered nor granted.
func TestRegisterDisallowed(t *testing.T) {
	for _, tc := range []struct {
		name string
		on   bool
	}{{"off", false}, {"backend cannot", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.AccountRegistration = tc.on
			ts := startServer(t, cfg)
			c := ts.dial(t)
			c.send("CAP LS 302")
			if ls := c.expect("CAP", "*", "LS"); strings.Contains(ls.Params[2], "account-registration") {
				t.Errorf("CAP LS %q offers account registration", ls.Params[2])
			}
			c.send("CAP REQ draft/account-registration")
			c.expect("CAP", "*", "NAK")
			c.send("NICK alice", "REGISTER * * secretpassword")
			c.expect("FAIL", "REGISTER", "DISALLOWED", "alice")
			c.send("VERIFY alice 1234")
			c.expect("FAIL", "VERIFY", "DISALLOWED", "alice")
		})
	}
}

// One connection may try only a few names in a row.
func TestRegisterLimitPerConnection(t *testing.T) {
	ts, b := startRegisterServer(t, testConfig(), false, "taken")
	c := ts.dial(t)
	c.send("NICK alice")
	for range registerConnBurst {
		c.send("REGISTER taken * secretpassword")
		c.expect("FAIL", "REGISTER", "ACCOUNT_EXISTS", "taken")
	}
	c.send("REGISTER free * secretpassword")
	m := c.expect("FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", "free")
	if !strings.Contains(m.Params[3], "this connection") {
		t.Errorf("refusal %q does not say why", m.Params[3])
	}
	if n := b.calls.Load(); n != registerConnBurst {
		t.Errorf("RegisterAccount called %d times, want %d", n, registerConnBurst)
	}
	// Another connection from the same address is not held back.
	other := ts.dial(t)
	other.send("NICK bob", "REGISTER free * secretpassword")
	other.expect("REGISTER", "SUCCESS")
}

// One address may make only RegistrationBurst accounts; refusals do not
// count, and registrations in progress at once all do.
func TestRegisterLimitPerAddress(t *testing.T) {
	cfg := testConfig()
	cfg.RegistrationBurst = 2
	cfg.RegistrationInterval = time.Hour
	ts, b := startRegisterServer(t, cfg, true, "taken")
	release := func() {
		t.Helper()
		select {
		case b.gate <- struct{}{}:
		case <-time.After(waitTimeout):
			t.Fatal("no registration to let through")
		}
	}

	first := ts.dial(t)
	first.send("NICK a", "REGISTER taken * secretpassword")
	release()
	first.expect("FAIL", "REGISTER", "ACCOUNT_EXISTS", "taken")
	first.send("REGISTER a1 * secretpassword")
	release()
	first.expect("REGISTER", "SUCCESS")

	// The second registration is in progress while a third asks.
	second := ts.dial(t)
	second.send("NICK b", "REGISTER a2 * secretpassword")
	waitFor(t, "the second registration to start", func() bool { return b.calls.Load() == 3 })
	third := ts.dial(t)
	third.send("NICK c", "REGISTER a3 * secretpassword")
	m := third.expect("FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", "a3")
	if !strings.Contains(m.Params[3], "your address") {
		t.Errorf("refusal %q does not say why", m.Params[3])
	}
	release()
	second.expect("REGISTER", "SUCCESS")
	third.send("REGISTER a3 * secretpassword")
	third.expect("FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", "a3")
	if n := b.calls.Load(); n != 3 {
		t.Errorf("RegisterAccount called %d times, want 3", n)
	}
}

func TestAddressKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:6667":              "192.0.2.7",
		"[::ffff:192.0.2.7]:6667":     "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:6667": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:6667":   "2001:db8:1:2::/64",
		"[fe80::1%eth0]:6667":         "fe80::/64",
		"not an address":              "not an address",
	} {
		if got := addressKey(fakeAddr(addr)); got != want {
			t.Errorf("addressKey(%s) = %s, want %s", addr, got, want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }
