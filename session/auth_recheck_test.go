package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// Issue 15 (3): when the homeserver cannot answer the recheck, a password
// it accepted within the last hour is still taken (a reconnect during a
// short outage gets its bouncer); an older one is refused in words that
// say it is the homeserver's trouble, not a wrong password, and does not
// count as one. A proxy in front of the real homeserver answers 502, as
// one in front of a homeserver that is down does.
func TestPasswordRecheckDuringOutage(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	target, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var down atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "homeserver down", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	const recheck = time.Second
	m := NewManager(Config{Homeserver: front.URL, PasswordRecheck: recheck}, storetest.Open(t, "sqlite"))
	t.Cleanup(func() { m.Close(context.Background()) })
	au := m.Authenticator()
	alice := hs.Register(t, "outage")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	login := func() (*Credentials, error) {
		creds, err := au.Password(ctx, alice.UserID.String(), alice.Password, "192.0.2.1")
		if creds != nil {
			creds.Release()
		}
		return creds, err
	}
	if _, err := login(); err != nil {
		t.Fatal(err)
	}

	down.Store(true)
	time.Sleep(recheck + recheck/2)
	if creds, err := login(); err != nil || !creds.stored {
		t.Fatalf("during an outage, a password accepted a second ago: %v", err)
	}
	acct, err := m.store.Account(ctx, alice.UserID)
	if err != nil {
		t.Fatal(err)
	}
	au.passwords.remember(alice.UserID.String(), acct.PasswordHash, alice.Password, time.Now().Add(-passwordOutageGrace-time.Minute))
	_, err = login()
	if err == nil || errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), "could not check your password") {
		t.Fatalf("during an outage, a password accepted long ago: %v, want the homeserver's trouble", err)
	}
	if acct, err := m.store.Account(ctx, alice.UserID); err != nil || acct.PasswordHash == "" {
		t.Errorf("the verifier was dropped although the homeserver refused nothing (%v)", err)
	}

	down.Store(false)
	if creds, err := login(); err != nil || !creds.stored {
		t.Fatalf("after the outage: %v", err)
	}
	if ok, confirmed := au.passwords.check(alice.UserID.String(), acct.PasswordHash, alice.Password); !ok || time.Since(confirmed) > time.Minute {
		t.Errorf("after the outage the password is not confirmed anew (%v, %v)", ok, confirmed)
	}
}

// What a recheck costs a reconnect: a login whose password the homeserver
// accepted lately (the verifier, through the memory cache) against one
// that asks the homeserver (a GET and a user-interactive DELETE). The test
// Dendrite hashes passwords with the cheapest bcrypt cost; a production
// homeserver spends more on its check.
func BenchmarkPasswordRecheck(b *testing.B) {
	hs := testenv.SharedHomeserver(b)
	for _, bc := range []struct {
		name    string
		recheck time.Duration
	}{{"verifier", time.Hour}, {"recheck", time.Nanosecond}} {
		b.Run(bc.name, func(b *testing.B) {
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			m := NewManager(Config{Homeserver: hs.URL, PasswordRecheck: bc.recheck, Logger: quiet}, storetest.Open(b, "sqlite"))
			b.Cleanup(func() { m.Close(context.Background()) })
			acct := hs.Register(b, "bench")
			ctx := context.Background()
			login := func() {
				creds, err := m.Authenticator().Password(ctx, acct.UserID.String(), acct.Password, "192.0.2.1")
				if err != nil {
					b.Fatal(err)
				}
				creds.Release()
			}
			login()
			for b.Loop() {
				login()
			}
		})
	}
}

// A stored verifier the homeserver no longer takes (here one of a password
// the account never had, as after a change elsewhere) is refused at the
// recheck as a wrong password: it spends the account's failed-login budget
// and the verifier is forgotten.
func TestPasswordRecheckRefusal(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	m := NewManager(Config{Homeserver: hs.URL}, storetest.Open(t, "sqlite"))
	t.Cleanup(func() { m.Close(context.Background()) })
	au := m.Authenticator()
	alice := hs.Register(t, "refused")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	creds, err := au.Password(ctx, alice.UserID.String(), alice.Password, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	creds.Release()
	const old = "the-password-before-the-change"
	acct, err := m.store.Account(ctx, alice.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if acct.PasswordHash, err = hashPassword(old); err != nil {
		t.Fatal(err)
	}
	if err := m.store.PutAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}

	_, err = au.Password(ctx, alice.UserID.String(), old, "198.51.100.7")
	if !errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), "no longer accepts") {
		t.Fatalf("the old password: %v, want refused at the recheck", err)
	}
	au.failures.mu.Lock()
	tokens := au.failures.m[alice.UserID].lim.Tokens()
	au.failures.mu.Unlock()
	if tokens > accountFailureBurst-0.5 {
		t.Errorf("the refusal left %.2f of the account's %d failed logins", tokens, accountFailureBurst)
	}
	if got, err := m.store.Account(ctx, alice.UserID); err != nil || got.PasswordHash != "" {
		t.Errorf("the refused verifier is still stored (%v)", err)
	}
	// The real password still logs in (on the same device).
	creds, err = au.Password(ctx, alice.UserID.String(), alice.Password, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	creds.Release()
	if got, _ := m.store.Account(ctx, alice.UserID); got == nil || got.DeviceID != acct.DeviceID {
		t.Errorf("the real password after the refusal moved to another device: %+v", got)
	}
}
