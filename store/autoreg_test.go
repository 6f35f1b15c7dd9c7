package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// The auto-registered accounts: recorded with their sealed password,
// their last client's leaving saved and cleared, listed, forgotten.
func TestAutoRegistered(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		now, set := fixedClock(time.Date(2025, 2, 1, 10, 0, 0, 0, time.UTC))
		store.SetNow(s, now)

		if got, err := s.AutoRegisteredAccounts(ctx); err != nil || len(got) != 0 {
			t.Fatalf("empty store: %v, %v", got, err)
		}
		sealed := []byte{0, 1, 2, 0xff, 'x'}
		a := &store.AutoRegistered{UserID: "@anon:x", SealedPassword: sealed}
		if err := s.PutAutoRegistered(ctx, a); err != nil {
			t.Fatal(err)
		}
		if !a.CreatedAt.Equal(now()) {
			t.Errorf("CreatedAt = %v, want %v", a.CreatedAt, now())
		}
		left := now().Add(time.Hour)
		set(now().Add(2 * time.Hour))
		if err := s.PutAutoRegistered(ctx, &store.AutoRegistered{UserID: "@other:x", SealedPassword: []byte("o"), LeftAt: left}); err != nil {
			t.Fatal(err)
		}
		got, err := s.AutoRegisteredAccounts(ctx)
		if err != nil || len(got) != 2 {
			t.Fatalf("AutoRegisteredAccounts = %+v, %v", got, err)
		}
		if got[0].UserID != "@anon:x" || !bytes.Equal(got[0].SealedPassword, sealed) || !got[0].LeftAt.IsZero() || !got[0].CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("first = %+v, want %s attached with its password", got[0], a.UserID)
		}
		if got[1].UserID != "@other:x" || !got[1].LeftAt.Equal(left) {
			t.Errorf("second = %+v, want @other:x left at %v", got[1], left)
		}

		// Its last client leaves, then one comes back.
		if err := s.SetAutoRegisteredLeft(ctx, "@anon:x", left); err != nil {
			t.Fatal(err)
		}
		if got := autoRegistered(t, s, "@anon:x"); got == nil || !got.LeftAt.Equal(left) {
			t.Errorf("after leaving: %+v, want left at %v", got, left)
		}
		if err := s.SetAutoRegisteredLeft(ctx, "@anon:x", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if got := autoRegistered(t, s, "@anon:x"); got == nil || !got.LeftAt.IsZero() {
			t.Errorf("after coming back: %+v, want no left_at", got)
		}
		if err := s.SetAutoRegisteredLeft(ctx, "@nobody:x", left); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an account not recorded: %v, want ErrNotFound", err)
		}

		// Putting it again keeps its creation time.
		set(now().Add(time.Hour))
		again := &store.AutoRegistered{UserID: "@anon:x", SealedPassword: []byte("new"), LeftAt: left}
		if err := s.PutAutoRegistered(ctx, again); err != nil {
			t.Fatal(err)
		}
		if got := autoRegistered(t, s, "@anon:x"); got == nil || !got.CreatedAt.Equal(a.CreatedAt) || string(got.SealedPassword) != "new" || !got.LeftAt.Equal(left) {
			t.Errorf("put again: %+v", got)
		}

		if err := s.ForgetAutoRegistered(ctx, "@anon:x"); err != nil {
			t.Fatal(err)
		}
		if got := autoRegistered(t, s, "@anon:x"); got != nil {
			t.Errorf("forgotten account still listed: %+v", got)
		}
		if autoRegistered(t, s, "@other:x") == nil {
			t.Error("forgetting one account forgot another")
		}
		if err := s.ForgetAutoRegistered(ctx, "@anon:x"); err != nil {
			t.Errorf("forgetting again: %v", err)
		}
		if err := s.PutAutoRegistered(ctx, &store.AutoRegistered{UserID: "@anon:x"}); err == nil {
			t.Error("an account without a password was recorded")
		}
	})
}

func autoRegistered(t *testing.T, s *store.SQLStore, user id.UserID) *store.AutoRegistered {
	t.Helper()
	all, err := s.AutoRegisteredAccounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.UserID == user {
			return &a
		}
	}
	return nil
}

// DeleteAccount leaves no row of the account in any table keyed by
// account (it is what the gateway does to an auto-registered account
// it deactivated), and nothing of another account goes with it.
func TestDeleteAccountLeavesNoRows(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		for _, u := range []id.UserID{"@a:x", "@b:x"} {
			if err := s.PutAccount(ctx, &store.Account{UserID: u, AccessToken: "t", DeviceID: "D"}); err != nil {
				t.Fatal(err)
			}
			saveSync(t, s, u, "tok", ev("!r:x", "$1", 1))
			if err := s.PutCursor(ctx, u, "c", 1); err != nil {
				t.Fatal(err)
			}
			if err := s.PutOutbox(ctx, &store.OutboxEntry{UserID: u, TxnID: "t1", Content: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutChannelNames(ctx, u, map[id.RoomID]string{"!r:x": "#r"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddCertFP(ctx, u, "fp"+string(u[1:2])); err != nil {
				t.Fatal(err)
			}
			if err := s.PutOAuthLogin(ctx, &store.Account{UserID: u, AccessToken: "t", DeviceID: "D"}, &store.OAuthGrant{UserID: u, ClientID: "c", RefreshToken: "r" + string(u)}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutAutoRegistered(ctx, &store.AutoRegistered{UserID: u, SealedPassword: []byte("p")}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutSetting(ctx, "tags_only "+string(u)+" laptop", "on"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteAccount(ctx, "@a:x"); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"accounts", "oauth_grants", "cert_fingerprints", "channel_names", "sync_state", "account_events", "client_cursors", "outbox"} {
			for user, want := range map[string]int{"@a:x": 0, "@b:x": 1} {
				if n := countRows(t, s, `SELECT COUNT(*) FROM `+table+` WHERE user_id = $1`, user); n != want {
					t.Errorf("%s: %d rows of %s, want %d", table, n, user, want)
				}
			}
		}
		for name, want := range map[string]string{"tags_only @a:x laptop": "", "tags_only @b:x laptop": "on"} {
			if got, err := s.Setting(ctx, name); err != nil || got != want {
				t.Errorf("setting %q = %q, %v; want %q", name, got, err, want)
			}
		}
		// The record stays for ForgetAutoRegistered, the last step.
		if autoRegistered(t, s, "@a:x") == nil {
			t.Error("DeleteAccount forgot the auto-registered record")
		}
	})
}
