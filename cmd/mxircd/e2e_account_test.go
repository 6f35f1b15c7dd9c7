package main

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

// serviceSays waits for a NOTICE from the service nick containing text.
func serviceSays(t *testing.T, c *testenv.IRCClient, text string) *irc.Message {
	t.Helper()
	return expectFrom(t, c, "NOTICE", "mxircd", text)
}

// withPassword is acct logging in with another password.
func withPassword(acct *testenv.Account, password string) *testenv.Account {
	return &testenv.Account{UserID: acct.UserID, Localpart: acct.Localpart, Password: password, Client: acct.Client}
}

// saslRefused tries a SASL PLAIN login and expects 904 with text in it.
func saslRefused(t *testing.T, g *gateway, account, password, text string) {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("CAP REQ :sasl")
	c.Send("NICK someone")
	c.Send("USER u 0 * :u")
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
	sendPlain(c, account, password)
	m := c.Expect(t, irc.ERR_SASLFAIL)
	if !strings.Contains(m.Trailing(), text) {
		t.Errorf("904 says %q, want %q", m.Trailing(), text)
	}
	c.Close()
}

// An app password set through the service logs in over SASL and PASS, on
// the stored session and device; a wrong one and a cleared one are
// refused.
func TestAppPassword(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice := hs.Register(t, "alice")
		const appPassword = `app pass "1234"`
		c := connect(t, g, "alice", alice)
		c.Send(`PRIVMSG mxircd :PASSWORD SET 'app pass "1234"'`)
		serviceSays(t, c, "Your app password is set")
		c.Send("PRIVMSG mxircd :PASSWORD SET short")
		serviceSays(t, c, "An app password is 8 to 256 bytes")
		c.Send(`PRIVMSG mxircd :PASSWORD SET "unclosed`)
		serviceSays(t, c, "Cannot read that")

		c2 := connect(t, g, "alice2", withPassword(alice, appPassword))
		c2.Drain(t)
		c3 := testenv.DialIRC(t, g.ircAddr())
		c3.Send("PASS :%s", appPassword)
		c3.Send("NICK al3")
		c3.Send("USER %s 0 * :Alice", alice.Localpart)
		c3.Expect(t, irc.RPL_WELCOME)
		if devices := gatewayDevices(t, alice); len(devices) != 1 {
			t.Errorf("gateway devices after app password logins: %v, want one", devices)
		}
		saslRefused(t, g, alice.UserID.String(), appPassword+"x", "Invalid account or password")

		c.Send("PRIVMSG NickServ :PASSWORD CLEAR")
		expectFrom(t, c, "NOTICE", "NickServ", "Your app password is removed")
		saslRefused(t, g, alice.UserID.String(), appPassword, "Invalid account or password")
		// The Matrix password still works.
		connect(t, g, "alice4", alice).Drain(t)
	})
}

// A wrong app password counts as a failed login: after the address's
// allowance, even the right one is turned away for a while.
func TestWrongAppPasswordIsLimited(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice := hs.Register(t, "alice")
	c := connect(t, g, "alice", alice)
	c.Send("PRIVMSG mxircd :PASSWORD SET right-app-password")
	serviceSays(t, c, "Your app password is set")
	// The default allowance is a burst of 10, refilled at one per 5 s;
	// the attempts themselves take time, so a few more may pass.
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		limited = saslAttempt(t, g, alice.UserID.String(), "wrong-app-password") == "limited"
	}
	if !limited {
		t.Fatal("30 wrong app passwords in a row were never limited")
	}
	saslRefused(t, g, alice.UserID.String(), "right-app-password", "Too many failed logins")
}

// saslAttempt tries a SASL PLAIN login that must fail, and says how:
// "limited" or "refused".
func saslAttempt(t *testing.T, g *gateway, account, password string) string {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	defer c.Close()
	c.Send("CAP REQ :sasl")
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
	sendPlain(c, account, password)
	m := c.Expect(t, irc.ERR_SASLFAIL)
	switch {
	case strings.Contains(m.Trailing(), "Too many failed logins"):
		return "limited"
	case strings.Contains(m.Trailing(), "Invalid account or password"):
		return "refused"
	}
	t.Fatalf("unexpected 904: %s", m)
	return ""
}

// PASSWORD SET and CERTFP ADD are refused over plaintext from another machine. The test
// needs an address of this machine that is not loopback.
func TestPasswordNeedsTLSOrLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	hs := testenv.SharedHomeserver(t)
	g := startTestGateway(t, gatewayConfig(t, hs, "sqlite", func(c *Config) {
		c.IRC.Listen = []string{net.JoinHostPort(ip.String(), "0")}
		c.IRC.AllowInsecurePlaintext = true
		c.Encryption.Enabled = false
	}))
	alice := hs.Register(t, "alice")
	c := connect(t, g, "alice", alice)
	c.Send("PRIVMSG mxircd :PASSWORD SET right-app-password")
	serviceSays(t, c, "Not over this connection")
	const fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	c.Send("PRIVMSG mxircd :CERTFP ADD %s", fp)
	serviceSays(t, c, "Not over this connection")
	if _, err := g.store.CertFPAccount(ctxFor(t), fp); err == nil {
		t.Errorf("a client certificate was registered over plaintext")
	}
	acct, err := g.store.Account(ctxFor(t), alice.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if acct.AppPasswordHash != "" {
		t.Errorf("an app password was stored over plaintext")
	}
}

func nonLoopbackIP(t *testing.T) net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("cannot list this machine's addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Skip("this machine has no IPv4 address other than loopback")
	return nil
}

// The service's account commands: STATUS, ALWAYSON (and the old
// command), DEVICES with DELETE through the homeserver's password
// confirmation, and LOGOUT with its confirmation.
func TestServiceAccountCommands(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, _, _, channel := twoInARoom(t, hs, "status")
		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")

		c.Send("PRIVMSG mxircd :STATUS")
		serviceSays(t, c, "Account "+alice.UserID.String())
		serviceSays(t, c, "Sync: up to date")
		serviceSays(t, c, "Rooms: 1 joined")
		serviceSays(t, c, "Encryption: ")
		serviceSays(t, c, "Last error: none")
		c.Send("PRIVMSG mxircd :STATUS extra")
		serviceSays(t, c, "Usage: STATUS")

		c.Send("PRIVMSG mxircd :ALWAYSON OFF")
		serviceSays(t, c, "Always-on is now off")
		c.Send("PRIVMSG mxircd :ALWAYSON sideways")
		serviceSays(t, c, "ALWAYSON takes ON, OFF or DEFAULT.")
		c.Send("ALWAYSON ON") // the old command keeps working
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "Always-on is now on")
		}, "ALWAYSON ON confirmed")
		c.Send("PRIVMSG mxircd :ALWAYSON")
		serviceSays(t, c, "Always-on is on")

		gw := gatewayDevices(t, alice)
		// A third device, as another Matrix client would make.
		other, err := mautrix.NewClient(hs.URL, "", "")
		if err != nil {
			t.Fatal(err)
		}
		login, err := other.Login(ctxFor(t), &mautrix.ReqLogin{
			Type:       mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: alice.UserID.String()},
			Password:   alice.Password, InitialDeviceDisplayName: "phone", StoreCredentials: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Send("PRIVMSG mxircd :DEVICES")
		serviceSays(t, c, "Your account has 3 devices")
		own := serviceSays(t, c, "(this gateway)")
		if len(gw) != 1 || !strings.HasPrefix(own.Trailing(), gw[0].String()+" ") {
			t.Errorf("the gateway's device %s is not the one marked: %s", gw[0], own)
		}
		c.Send("PRIVMSG mxircd :DEVICES DELETE %s", gw[0])
		serviceSays(t, c, "LOGOUT logs it out")
		c.Send("PRIVMSG mxircd :DEVICES DELETE NOSUCHDEVICE")
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && m.Prefix.Name == "mxircd" &&
				(strings.Contains(m.Trailing(), "no device") || strings.Contains(m.Trailing(), "Matrix password"))
		}, "DEVICES DELETE of an unknown device answered")
		c.Send("PRIVMSG mxircd :DEVICES DELETE %s", login.DeviceID)
		serviceSays(t, c, "wants your Matrix password")
		c.Send("PRIVMSG mxircd :DEVICES DELETE %s not-the-password", login.DeviceID)
		serviceSays(t, c, "did not accept that password")
		c.Send("PRIVMSG mxircd :DEVICES DELETE %s '%s'", login.DeviceID, alice.Password)
		serviceSays(t, c, "Device "+login.DeviceID.String()+" is logged out")
		if _, err := other.Whoami(ctxFor(t)); !errors.Is(err, mautrix.MUnknownToken) {
			t.Errorf("the deleted device's token still works: %v", err)
		}
		for _, line := range c.Lines() {
			if strings.Contains(line, alice.Password) {
				t.Errorf("a line to the client shows the password: %s", line)
			}
		}

		c.Send("PRIVMSG mxircd :PASSWORD SET app-password-before-logout")
		serviceSays(t, c, "Your app password is set")
		c.Send("PRIVMSG mxircd :LOGOUT")
		serviceSays(t, c, "Type LOGOUT CONFIRM")
		c.Send("PRIVMSG mxircd :LOGOUT CONFIRM")
		serviceSays(t, c, "logged out of your Matrix account")
		closing := c.ExpectClosed(t)
		if len(closing) == 0 || closing[len(closing)-1].Command != "ERROR" || !strings.Contains(closing[len(closing)-1].Trailing(), "LOGOUT") {
			t.Errorf("closed after %v, want an ERROR naming LOGOUT", closing)
		}
		if devices := gatewayDevices(t, alice); len(devices) != 0 {
			t.Errorf("devices besides the test's after LOGOUT: %v, want none", devices)
		}
		waitNoSession(t, g)
		// The app password unlocked the stored session, which is gone.
		saslRefused(t, g, alice.UserID.String(), "app-password-before-logout", "an app password cannot start one")
		connect(t, g, "alice", alice).Drain(t)
		if devices := gatewayDevices(t, alice); len(devices) != 1 || devices[0] == gw[0] {
			t.Errorf("gateway devices after logging in again: %v, want one new one (not %s)", devices, gw[0])
		}
	})
}

// dialPending connects without credentials and waits for the service's
// greeting.
func dialPending(t *testing.T, g *gateway, nick string) *testenv.IRCClient {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :pending", nick)
	c.Expect(t, irc.RPL_WELCOME)
	serviceSays(t, c, "not logged in to Matrix yet")
	serviceSays(t, c, "IDENTIFY <Matrix ID> <password>")
	return c
}

// A connection without credentials is login-pending: only the service,
// PING and the like work; IDENTIFY (with the Matrix password or an app
// password) makes it a session with its connect burst on the same
// connection.
func TestLoginPending(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "pending")
		c := dialPending(t, g, "alice")
		for _, line := range []string{"JOIN " + channel, "PRIVMSG " + channel + " :leak?", "PRIVMSG " + bob.Localpart + " :leak?", "NAMES " + channel, "LIST"} {
			c.Send("%s", line)
			m := c.Expect(t, irc.ERR_NOTREGISTERED)
			if !strings.Contains(m.Trailing(), "IDENTIFY") {
				t.Errorf("451 to %q does not say how to log in: %s", line, m)
			}
		}
		c.Send("PRIVMSG mxircd :STATUS")
		serviceSays(t, c, `"STATUS" is not available`)
		c.Send("PRIVMSG NickServ :IDENTIFY %s wrong-password", alice.UserID)
		expectFrom(t, c, "NOTICE", "NickServ", "Not logged in: Invalid account or password")
		if n := g.sessions.SessionCount(); n != 0 {
			t.Errorf("a pending connection started %d sessions", n)
		}
		c.Send("PRIVMSG mxircd :IDENTIFY %s '%s'", alice.UserID, alice.Password)
		serviceSays(t, c, "You are now logged in as "+alice.UserID.String())
		c.Expect(t, irc.RPL_LOGGEDIN)
		c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst after IDENTIFY")
		waitNames(t, c, channel, bob.Localpart)
		c.Send("PRIVMSG %s :hello after IDENTIFY", channel)
		bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
			return ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "hello after IDENTIFY"
		})
		c.Send("PRIVMSG NickServ :IDENTIFY %s x", alice.UserID)
		expectFrom(t, c, "NOTICE", "NickServ", "You are logged in already")
		for _, raw := range roomRaw(t, bob, room) {
			if strings.Contains(raw, "leak?") || strings.Contains(raw, alice.Password) {
				t.Errorf("a line of the pending connection reached Matrix: %s", raw)
			}
		}

		// An app password works through IDENTIFY too.
		c.Send("PRIVMSG mxircd :PASSWORD SET app-password-for-irc")
		serviceSays(t, c, "Your app password is set")
		c2 := dialPending(t, g, "alice2")
		c2.Send("PRIVMSG mxircd :IDENTIFY %s app-password-for-irc", alice.Localpart)
		serviceSays(t, c2, "You are now logged in as "+alice.UserID.String())
		c2.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst after IDENTIFY with the app password")
	})
}

// A pending connection that does not log in in time is closed with an
// ERROR that says why and how to log in.
func TestLoginPendingTimeout(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGatewayWith(t, hs, "sqlite", func(cfg *Config) { cfg.IRC.LoginPendingTimeout = Duration{time.Second} })
	c := dialPending(t, g, "slow")
	closing := c.ExpectClosed(t)
	if len(closing) == 0 || closing[len(closing)-1].Command != "ERROR" ||
		!strings.Contains(closing[len(closing)-1].Trailing(), "Login timed out") ||
		!strings.Contains(closing[len(closing)-1].Trailing(), "IDENTIFY") {
		t.Errorf("closed after %v, want an ERROR about the login timeout", closing)
	}
}

// login_pending_timeout = "0s" refuses connections without credentials at
// once, as before.
func TestLoginPendingOff(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGatewayWith(t, hs, "sqlite", func(cfg *Config) { cfg.IRC.LoginPendingTimeout = Duration{0} })
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("NICK nobody")
	c.Send("USER nobody 0 * :x")
	c.Expect(t, irc.ERR_PASSWDMISMATCH)
	c.ExpectClosed(t)
}
