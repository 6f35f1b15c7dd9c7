package main

import (
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/mxircd/mxircd/internal/testenv"
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
		acct, err := b.g.store.Account(ctxFor(t), old.UserID.String())
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
		if acct, err := b.g.store.Account(ctxFor(t), old.UserID.String()); err != nil || acct.PasswordHash != "" {
			t.Errorf("the refused password's verifier is still stored (%v)", err)
		}

		c2 := dialClient(t, b.addr(), "alice2", alice, "")
		c2.Drain(t)
		if got := gatewayDevices(t, alice); len(got) != 1 || got[0] != devices[0] {
			t.Errorf("gateway devices after the new password: %v, want %v", got, devices)
		}
		before, err := b.g.store.Account(ctxFor(t), old.UserID.String())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(recheck + recheck/2)
		c3 := dialClient(t, b.addr(), "alice3", alice, "") // asks the homeserver again
		c3.Drain(t)
		after, err := b.g.store.Account(ctxFor(t), old.UserID.String())
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
