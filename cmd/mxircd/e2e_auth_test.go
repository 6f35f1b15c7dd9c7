package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// changeMatrixPassword changes acct's password through the client-server
// API as Element does when told to keep the other devices logged in
// (logout_devices=false), and returns acct with the new password.
func changeMatrixPassword(t *testing.T, acct *testenv.Account, password string) *testenv.Account {
	t.Helper()
	body := map[string]any{
		"auth": map[string]any{
			"type":       mautrix.AuthTypePassword,
			"identifier": mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: acct.UserID.String()},
			"user":       acct.UserID.String(),
			"password":   acct.Password,
		},
		"new_password":   password,
		"logout_devices": false,
	}
	if _, err := acct.Client.MakeRequest(ctxFor(t), http.MethodPost, acct.Client.BuildClientURL("v3", "account", "password"), body, nil); err != nil {
		t.Fatalf("changing the Matrix password: %v", err)
	}
	return withPassword(acct, password)
}

// Issue 15 (3): a password changed in Matrix with logout_devices=false
// leaves the gateway's token valid; the old password is refused once the
// homeserver is asked again (after matrix.password_recheck, and at once
// after a restart), its verifier is forgotten, and the refusal counts as a
// failed login. The new password logs in on the same device, and a
// recheck that the homeserver accepts makes no device and no new token.
func TestPasswordChangedInMatrix(t *testing.T) {
	const recheck = time.Second
	forEachStoreWith(t, func(cfg *Config) {
		cfg.Matrix.PasswordRecheck = Duration{recheck}
		cfg.Debug.Listen = "127.0.0.1:0"
	}, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		old := hs.Register(t, "alice")
		c := dialClient(t, b.addr(), "alice", old, "")
		c.Drain(t)
		devices := gatewayDevices(t, old)
		if len(devices) != 1 {
			t.Fatalf("gateway devices: %v, want one", devices)
		}
		alice := changeMatrixPassword(t, old, "the-new-password-1")
		acct, err := b.g.store.Account(ctxFor(t), old.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if acct.PasswordHash == "" {
			t.Fatal("no verifier stored after the first login")
		}
		// The situation of the issue: the gateway's token still works.
		gwClient, err := mautrix.NewClient(hs.URL, old.UserID, acct.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gwClient.Whoami(ctxFor(t)); err != nil {
			t.Fatalf("the gateway's token stopped working after the password change: %v", err)
		}

		time.Sleep(recheck + recheck/2) // the homeserver's word on the old password is now stale
		saslRefused(t, b.g, old.UserID.String(), old.Password, "Invalid account or password")
		debug := "http://" + b.g.debugLn.Addr().String() + "/metrics"
		if v, _ := sample(scrape(t, debug), "mxircd_login_failures_total", "reason", "invalid_credentials"); v != 1 {
			t.Errorf("invalid_credentials failures after the old password: %v, want 1", v)
		}
		if acct, err := b.g.store.Account(ctxFor(t), old.UserID); err != nil || acct.PasswordHash != "" {
			t.Errorf("the refused password's verifier is still stored (%v)", err)
		}

		c2 := dialClient(t, b.addr(), "alice2", alice, "")
		c2.Drain(t)
		if got := gatewayDevices(t, alice); len(got) != 1 || got[0] != devices[0] {
			t.Errorf("gateway devices after the new password: %v, want %v", got, devices)
		}
		before, err := b.g.store.Account(ctxFor(t), old.UserID)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(recheck + recheck/2)
		c3 := dialClient(t, b.addr(), "alice3", alice, "") // asks the homeserver again
		c3.Drain(t)
		after, err := b.g.store.Account(ctxFor(t), old.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if after.AccessToken != before.AccessToken || after.PasswordHash != before.PasswordHash {
			t.Error("an accepted recheck logged in again (new token or verifier)")
		}
		if got := gatewayDevices(t, alice); len(got) != 1 || got[0] != devices[0] {
			t.Errorf("gateway devices after a recheck: %v, want %v", got, devices)
		}
		for _, cl := range []*testenv.IRCClient{c, c2, c3} {
			cl.Close()
		}

		// Across a restart, even with a long recheck time: the new
		// process has not heard the homeserver accept any password.
		third := changeMatrixPassword(t, alice, "the-new-password-2")
		b.cfg.Matrix.PasswordRecheck = Duration{time.Hour}
		b.restart(t)
		saslRefused(t, b.g, old.UserID.String(), alice.Password, "Invalid account or password")
		dialClient(t, b.addr(), "alice4", third, "").Drain(t)
		if got := gatewayDevices(t, alice); len(got) != 1 || got[0] != devices[0] {
			t.Errorf("gateway devices after the restart: %v, want %v", got, devices)
		}
	})
}

// certGateway is a test gateway with a plaintext IRC listener (addrs()[0])
// and a TLS one (addrs()[1]).
func certGateway(t *testing.T, hs *testenv.Homeserver, driver string) *gateway {
	t.Helper()
	return startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
		dir := t.TempDir()
		cfg.IRC.TLS.Cert, cfg.IRC.TLS.Key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		writeCert(t, cfg.IRC.TLS.Cert, cfg.IRC.TLS.Key, 1)
		cfg.IRC.TLS.Listen = []string{"127.0.0.1:0"}
		cfg.Debug.Listen = "127.0.0.1:0"
	}))
}

// newClientCert makes a self-signed TLS client certificate, as a user
// would with openssl, and returns it with its SHA-256 fingerprint.
func newClientCert(t *testing.T, name string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, hex.EncodeToString(sum[:])
}

// dialCert connects to the gateway's TLS listener presenting cert (none
// if nil).
func dialCert(t *testing.T, g *gateway, cert *tls.Certificate) *testenv.IRCClient {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", g.addrs()[1].String(), cfg)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	return testenv.NewIRCClient(t, conn)
}

// saslCapValue asks for the capabilities (302) and returns the value of sasl.
func saslCapValue(t *testing.T, c *testenv.IRCClient) string {
	t.Helper()
	c.Send("CAP LS 302")
	m := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "LS" }, "CAP LS")
	for _, capability := range strings.Fields(m.Trailing()) {
		if v, ok := strings.CutPrefix(capability, "sasl="); ok {
			return v
		}
	}
	return ""
}

// saslExternal registers over c with SASL EXTERNAL (authzid "" sends
// "+") and returns the 903 or 904 that answers it.
func saslExternal(t *testing.T, c *testenv.IRCClient, nick, authzid string) *irc.Message {
	t.Helper()
	c.Send("CAP REQ :sasl")
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :cert", nick)
	c.Send("AUTHENTICATE EXTERNAL")
	c.ExpectMatch(t, isCmd("AUTHENTICATE", "+"), "AUTHENTICATE +")
	if authzid == "" {
		c.Send("AUTHENTICATE +")
	} else {
		c.Send("AUTHENTICATE %s", b64(authzid))
	}
	return c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == irc.RPL_SASLSUCCESS || m.Command == irc.ERR_SASLFAIL
	}, "903 or 904")
}

// externalRefused expects a SASL EXTERNAL login over c to get 904 with
// text in it.
func externalRefused(t *testing.T, c *testenv.IRCClient, text string) {
	t.Helper()
	externalRefusedAs(t, c, "", text)
}

// externalRefusedAs is externalRefused asking for the account authzid.
func externalRefusedAs(t *testing.T, c *testenv.IRCClient, authzid, text string) {
	t.Helper()
	m := saslExternal(t, c, "nobody", authzid)
	if m.Command != irc.ERR_SASLFAIL || !strings.Contains(m.Trailing(), text) {
		t.Errorf("SASL EXTERNAL answered %s, want 904 with %q", m, text)
	}
	c.Close()
}

// Issue 14 (certfp): a TLS client certificate registered through the
// service logs in by SASL EXTERNAL to the account's stored session and
// device; EXTERNAL is offered on TLS only; an unknown certificate, none at
// all, another account's name, a deleted certificate and a logged-out
// account are refused with 904 in words.
func TestCertFP(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := certGateway(t, hs, driver)
			alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
			cert, fp := newClientCert(t, "alice's laptop")
			other, otherFP := newClientCert(t, "someone else")

			plain := testenv.DialIRC(t, g.ircAddr())
			if v := saslCapValue(t, plain); v != "PLAIN" {
				t.Errorf("plaintext listener: sasl=%q, want PLAIN", v)
			}
			plain.Send("CAP REQ :sasl")
			plain.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
			plain.Send("AUTHENTICATE EXTERNAL")
			if m := plain.Expect(t, irc.RPL_SASLMECHS); m.Param(1) != "PLAIN" {
				t.Errorf("908 on plaintext: %s", m)
			}
			plain.Expect(t, irc.ERR_SASLFAIL)
			plain.Close()

			c := dialCert(t, g, &cert)
			if v := saslCapValue(t, c); v != "PLAIN,EXTERNAL" {
				t.Errorf("TLS listener: sasl=%q, want PLAIN,EXTERNAL", v)
			}
			externalRefused(t, c, "not registered")

			c = dialCert(t, g, &cert)
			c.Register(t, "alice", alice.UserID.String(), alice.Password)
			c.Send("PRIVMSG mxircd :CERTFP ADD")
			serviceSays(t, c, "The certificate "+fp+" now logs you in as "+alice.UserID.String())
			c.Send("PRIVMSG mxircd :CERTFP ADD %s", strings.ToUpper(fp))
			serviceSays(t, c, "is registered already")
			c.Send("PRIVMSG mxircd :CERTFP ADD not-a-fingerprint")
			serviceSays(t, c, "is not a SHA-256 fingerprint")
			c.Send("PRIVMSG mxircd :CERTFP LIST")
			serviceSays(t, c, "Your account has 1 client certificates")
			if line := serviceSays(t, c, fp+", added ").Trailing(); !strings.HasSuffix(line, "(this connection)") {
				t.Errorf("the current connection's certificate is not marked: %q", line)
			}
			devices := gatewayDevices(t, alice)

			c2 := dialCert(t, g, &cert)
			if m := saslExternal(t, c2, "alice2", ""); m.Command != irc.RPL_SASLSUCCESS {
				t.Fatalf("SASL EXTERNAL with the registered certificate: %s", m)
			}
			c2.Send("CAP END")
			c2.Expect(t, irc.RPL_WELCOME)
			c2.Send("PRIVMSG mxircd :STATUS")
			serviceSays(t, c2, "Account "+alice.UserID.String())
			c3 := dialCert(t, g, &cert)
			if m := saslExternal(t, c3, "alice3", alice.Localpart+"@laptop"); m.Command != irc.RPL_SASLSUCCESS {
				t.Fatalf("SASL EXTERNAL naming the account and a client: %s", m)
			}
			if got := gatewayDevices(t, alice); len(got) != 1 || got[0] != devices[0] {
				t.Errorf("gateway devices after certificate logins: %v, want %v", got, devices)
			}

			externalRefusedAs(t, dialCert(t, g, &cert), bob.UserID.String(), "not registered for that account")
			externalRefused(t, dialCert(t, g, &other), "not registered")
			externalRefused(t, dialCert(t, g, nil), "no TLS client certificate")
			// Each certificate refused counts as a failed login; having
			// none is no guess.
			debug := "http://" + g.debugLn.Addr().String() + "/metrics"
			if v, _ := sample(scrape(t, debug), "mxircd_login_failures_total", "reason", "invalid_credentials"); v != 3 {
				t.Errorf("invalid_credentials failures after three refused certificates: %v, want 3", v)
			}

			b := dialCert(t, g, &cert)
			b.Register(t, "bob", bob.UserID.String(), bob.Password)
			b.Send("PRIVMSG mxircd :CERTFP ADD")
			serviceSays(t, b, "logs in to another account already")
			b.Send("PRIVMSG mxircd :CERTFP ADD %s", otherFP)
			serviceSays(t, b, "now logs you in as "+bob.UserID.String())
			b.Send("PRIVMSG mxircd :CERTFP DEL %s", fp)
			serviceSays(t, b, "Your account has no certificate "+fp)

			c.Send("PRIVMSG mxircd :CERTFP DEL %s", fp)
			serviceSays(t, c, "The certificate "+fp+" no longer logs you in")
			c.Send("PRIVMSG mxircd :CERTFP")
			serviceSays(t, c, "Your account has no client certificates")
			externalRefused(t, dialCert(t, g, &cert), "not registered")
			if _, err := g.store.CertFPAccount(ctxFor(t), otherFP); err != nil {
				t.Errorf("bob's certificate after alice deleted hers: %v", err)
			}

			// A certificate cannot start a Matrix login.
			c.Send("PRIVMSG mxircd :CERTFP ADD %s", fp)
			serviceSays(t, c, "now logs you in")
			c.Send("PRIVMSG mxircd :LOGOUT CONFIRM")
			serviceSays(t, c, "logged out of your Matrix account")
			c.ExpectClosed(t)
			waitSessions(t, g, 1) // bob's
			externalRefused(t, dialCert(t, g, &cert), "a certificate cannot start one")
		})
	}
}
