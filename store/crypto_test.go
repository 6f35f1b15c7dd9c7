package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/crypto"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// Each account's Olm account lives in the gateway's database, scoped by
// its Matrix ID, survives a restart, and is useless without the pickle key.
func TestCryptoStoresPerAccount(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.Config(t, driver)
		key := bytes.Repeat([]byte{7}, store.PickleKeySize)
		st, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		stores, err := st.OpenCryptoStores(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		alice := stores.Open("@alice:example.org", "ALICEDEV")
		acct := crypto.NewOlmAccount()
		if err := alice.PutAccount(ctx, acct); err != nil {
			t.Fatal(err)
		}
		if got, err := stores.Open("@bob:example.org", "BOBDEV").GetAccount(ctx); err != nil || got != nil {
			t.Fatalf("bob's store gives an account before he has one: %v, %v", got, err)
		}
		st.Close()

		// A restart: the same identity comes back, for alice only.
		st, err = store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores, err = st.OpenCryptoStores(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := stores.Open("@alice:example.org", "ALICEDEV").GetAccount(ctx)
		if err != nil || got == nil {
			t.Fatalf("alice's account after a restart: %v, %v", got, err)
		}
		if got.IdentityKey() != acct.IdentityKey() {
			t.Errorf("identity key after a restart = %s, want %s", got.IdentityKey(), acct.IdentityKey())
		}
		if got, err := stores.Open("@bob:example.org", "BOBDEV").GetAccount(ctx); err != nil || got != nil {
			t.Errorf("bob's store gives alice's account: %v, %v", got, err)
		}

		// The database alone opens nothing.
		other, err := st.OpenCryptoStores(ctx, bytes.Repeat([]byte{8}, store.PickleKeySize))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := other.Open("@alice:example.org", "ALICEDEV").GetAccount(ctx); err == nil {
			t.Errorf("alice's account opened with another pickle key: %v", got)
		}
		if _, err := st.OpenCryptoStores(ctx, []byte("short")); err == nil {
			t.Error("a short pickle key was taken")
		}
	})
}

// Two gateways in two schemas of one PostgreSQL database (or a gateway
// beside anything else built on mautrix) each get their own crypto tables.
func TestCryptoStoresInTwoSchemas(t *testing.T) {
	if !slices.Contains(storetest.Drivers(), "postgres") {
		t.Skip("needs MXIRCD_TEST_POSTGRES")
	}
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, store.PickleKeySize)
	for i := range 2 {
		st := storetest.Open(t, "postgres")
		stores, err := st.OpenCryptoStores(ctx, key)
		if err != nil {
			t.Fatalf("schema %d: %v", i+1, err)
		}
		if err := stores.Open("@alice:example.org", "DEV").PutAccount(ctx, crypto.NewOlmAccount()); err != nil {
			t.Fatalf("schema %d: %v", i+1, err)
		}
	}
}

func TestPickleKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "pickle.key")
	key, err := store.LoadOrCreatePickleKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || len(key) != store.PickleKeySize {
		t.Errorf("new key file: mode %v, %d bytes; want 0600 and %d", info.Mode().Perm(), len(key), store.PickleKeySize)
	}
	again, err := store.LoadOrCreatePickleKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Errorf("the key read back differs (%v)", err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LoadOrCreatePickleKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key others can read: err = %v, want a refusal saying to chmod 600", err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LoadOrCreatePickleKey(short); err == nil || !strings.Contains(err.Error(), "3 bytes") {
		t.Errorf("a 3-byte key: err = %v, want a refusal naming its size", err)
	}
}
