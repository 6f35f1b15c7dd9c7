package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// A certificate logs in to one account: adding it again for the same
// account changes nothing, for another is refused; deleting it (or the
// account) makes it unknown.
func TestCertFPs(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		const alice, bob = "@alice:example.org", "@bob:example.org"
		const fp1, fp2 = "aa11", "bb22"
		if added, err := s.AddCertFP(ctx, alice, fp1); err != nil || !added {
			t.Fatalf("AddCertFP: %v, %v", added, err)
		}
		if added, err := s.AddCertFP(ctx, alice, fp1); err != nil || added {
			t.Errorf("AddCertFP again: %v, %v; want not added, no error", added, err)
		}
		if _, err := s.AddCertFP(ctx, bob, fp1); !errors.Is(err, store.ErrCertTaken) {
			t.Errorf("AddCertFP of alice's certificate for bob: %v, want ErrCertTaken", err)
		}
		if _, err := s.AddCertFP(ctx, alice, fp2); err != nil {
			t.Fatal(err)
		}
		if who, err := s.CertFPAccount(ctx, fp2); err != nil || who != alice {
			t.Errorf("CertFPAccount: %q, %v", who, err)
		}
		list, err := s.CertFPs(ctx, alice)
		if err != nil || len(list) != 2 || list[0].Fingerprint != fp1 || list[1].Fingerprint != fp2 || list[0].CreatedAt.IsZero() {
			t.Errorf("CertFPs: %+v, %v", list, err)
		}
		if list, err := s.CertFPs(ctx, bob); err != nil || len(list) != 0 {
			t.Errorf("bob's CertFPs: %+v, %v", list, err)
		}
		if err := s.DeleteCertFP(ctx, bob, fp1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("bob deleting alice's certificate: %v, want ErrNotFound", err)
		}
		if err := s.DeleteCertFP(ctx, alice, fp1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CertFPAccount(ctx, fp1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a deleted certificate: %v, want ErrNotFound", err)
		}
		if err := s.PutAccount(ctx, &store.Account{UserID: alice}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAccount(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CertFPAccount(ctx, fp2); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a certificate of a deleted account: %v, want ErrNotFound", err)
		}
	})
}
