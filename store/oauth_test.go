package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
	"maunium.net/go/mautrix/id"
)

func TestOAuthClientFirstRegistrationWins(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.Open(t, driver)
		ctx := context.Background()
		const hs = "https://matrix.example.org"
		if _, err := s.OAuthClient(ctx, hs); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("OAuthClient before any: %v, want ErrNotFound", err)
		}
		got, err := s.InitOAuthClient(ctx, &store.OAuthClient{Homeserver: hs, Issuer: "https://auth.example.org/", ClientID: "first"})
		if err != nil || got.ClientID != "first" || got.Issuer != "https://auth.example.org/" || got.CreatedAt.IsZero() {
			t.Fatalf("InitOAuthClient = %+v, %v", got, err)
		}
		got, err = s.InitOAuthClient(ctx, &store.OAuthClient{Homeserver: hs, Issuer: "https://auth.example.org/", ClientID: "second"})
		if err != nil || got.ClientID != "first" {
			t.Fatalf("second InitOAuthClient = %+v, %v; want the first kept", got, err)
		}
		// Deleting a client that is no longer the stored one changes nothing.
		if err := s.DeleteOAuthClient(ctx, hs, "second"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.OAuthClient(ctx, hs); err != nil || got.ClientID != "first" {
			t.Fatalf("after deleting a stale client: %+v, %v", got, err)
		}
		if err := s.DeleteOAuthClient(ctx, hs, "first"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.OAuthClient(ctx, hs); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v, want ErrNotFound", err)
		}
		if got, err := s.InitOAuthClient(ctx, &store.OAuthClient{Homeserver: hs, ClientID: "third"}); err != nil || got.ClientID != "third" {
			t.Fatalf("registering again = %+v, %v", got, err)
		}
	})
}

func oauthAccount(user id.UserID) *store.Account {
	return &store.Account{UserID: user, Homeserver: "https://matrix.example.org", DeviceID: "DEVICEID12", AccessToken: "access-1"}
}

func TestOAuthLoginAndRotation(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.Open(t, driver)
		ctx := context.Background()
		const user = "@alice:example.org"
		expires := time.UnixMilli(1_900_000_000_123).UTC()
		g := &store.OAuthGrant{UserID: user, ClientID: "client", RefreshToken: "refresh-1", Expires: expires}
		if err := s.PutOAuthLogin(ctx, oauthAccount(user), g); err != nil {
			t.Fatal(err)
		}
		got, err := s.OAuthGrant(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if got.ClientID != "client" || got.RefreshToken != "refresh-1" || !got.Expires.Equal(expires) || got.UpdatedAt.IsZero() {
			t.Fatalf("grant = %+v", got)
		}

		next := &store.OAuthGrant{UserID: user, ClientID: "client", RefreshToken: "refresh-2"}
		if err := s.RotateOAuthGrant(ctx, "refresh-1", "access-2", next); err != nil {
			t.Fatalf("RotateOAuthGrant: %v", err)
		}
		got, _ = s.OAuthGrant(ctx, user)
		acct, _ := s.Account(ctx, user)
		if got.RefreshToken != "refresh-2" || !got.Expires.IsZero() || acct.AccessToken != "access-2" {
			t.Fatalf("after rotation: grant %+v, access token %q", got, acct.AccessToken)
		}
		if acct.DeviceID != "DEVICEID12" {
			t.Errorf("rotation changed the device to %q", acct.DeviceID)
		}

		// Rotating from the old token again is refused and changes nothing.
		stale := &store.OAuthGrant{UserID: user, ClientID: "client", RefreshToken: "refresh-3"}
		if err := s.RotateOAuthGrant(ctx, "refresh-1", "access-3", stale); !errors.Is(err, store.ErrStale) {
			t.Fatalf("rotating from a used token: %v, want ErrStale", err)
		}
		got, _ = s.OAuthGrant(ctx, user)
		acct, _ = s.Account(ctx, user)
		if got.RefreshToken != "refresh-2" || acct.AccessToken != "access-2" {
			t.Fatalf("a refused rotation changed the grant to %q, token %q", got.RefreshToken, acct.AccessToken)
		}
		if err := s.RotateOAuthGrant(ctx, "refresh-2", "access-3", &store.OAuthGrant{UserID: "@nobody:example.org", RefreshToken: "x"}); !errors.Is(err, store.ErrStale) {
			t.Fatalf("rotating a grant that does not exist: %v, want ErrStale", err)
		}
	})
}

// TestRotateOAuthGrantOnce: of refreshes racing from one refresh token,
// exactly one is stored, and its access token with it.
func TestRotateOAuthGrantOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.Open(t, driver)
		ctx := context.Background()
		const user = "@bob:example.org"
		if err := s.PutOAuthLogin(ctx, oauthAccount(user), &store.OAuthGrant{UserID: user, ClientID: "c", RefreshToken: "r0"}); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.RotateOAuthGrant(ctx, "r0", fmt.Sprintf("access-%d", i),
					&store.OAuthGrant{UserID: user, ClientID: "c", RefreshToken: fmt.Sprintf("r-%d", i)})
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("rotations %d and %d both succeeded", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrStale):
				t.Fatalf("rotation %d: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no rotation succeeded")
		}
		g, _ := s.OAuthGrant(ctx, user)
		acct, _ := s.Account(ctx, user)
		if g.RefreshToken != fmt.Sprintf("r-%d", winner) || acct.AccessToken != fmt.Sprintf("access-%d", winner) {
			t.Fatalf("stored %q and %q, want the winner's (%d)", g.RefreshToken, acct.AccessToken, winner)
		}
	})
}

func TestDeleteOAuthGrant(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.Open(t, driver)
		ctx := context.Background()
		const user = "@carol:example.org"
		if err := s.PutOAuthLogin(ctx, oauthAccount(user), &store.OAuthGrant{UserID: user, ClientID: "c", RefreshToken: "r"}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteOAuthGrant(ctx, user); err != nil {
			t.Fatal(err)
		}
		if _, err := s.OAuthGrant(ctx, user); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("grant after delete: %v", err)
		}
		acct, err := s.Account(ctx, user)
		if err != nil || acct.AccessToken != "" || acct.DeviceID != "DEVICEID12" {
			t.Fatalf("account after the grant ended: %+v, %v; want it kept without a token", acct, err)
		}
		if err := s.DeleteOAuthGrant(ctx, user); err != nil {
			t.Fatalf("deleting again: %v", err)
		}

		// Deleting the account takes its grant along.
		if err := s.PutOAuthLogin(ctx, oauthAccount(user), &store.OAuthGrant{UserID: user, ClientID: "c", RefreshToken: "r2"}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAccount(ctx, user); err != nil {
			t.Fatal(err)
		}
		if _, err := s.OAuthGrant(ctx, user); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("grant after DeleteAccount: %v", err)
		}
	})
}

func TestPutOAuthLoginRefusesMismatch(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.Open(t, driver)
		ctx := context.Background()
		err := s.PutOAuthLogin(ctx, oauthAccount("@a:x"), &store.OAuthGrant{UserID: "@b:x", RefreshToken: "r"})
		if err == nil {
			t.Fatal("a grant of another account was stored")
		}
		if _, err := s.Account(ctx, "@a:x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused login left an account: %v", err)
		}
	})
}
