package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"
)

// The keys of end-to-end encryption (each account's Olm account, Olm and
// Megolm sessions, device lists, cross-signing keys) live in this same
// database, in mautrix's own crypto tables, each row scoped by the
// account's Matrix ID. Those tables are versioned by mautrix's upgrade
// table (crypto_version), next to our numbered migrations, and upgraded
// when the crypto stores are opened. Every secret in them is pickled with
// a key that is kept outside the database (see LoadOrCreatePickleKey), so
// a copy of the database alone opens nothing.
//
// On SQLite the store has one connection: a crypto store call made while
// a transaction of this package is open on the same goroutine would wait
// for itself. The crypto stores are used only outside such transactions.

// CryptoStores opens the crypto store of each account.
type CryptoStores struct {
	db        *dbutil.Database
	pickleKey []byte
}

// OpenCryptoStores creates or upgrades the crypto tables and returns what
// opens each account's store. Call once at start-up.
func (s *SQLStore) OpenCryptoStores(ctx context.Context, pickleKey []byte) (*CryptoStores, error) {
	if len(pickleKey) != PickleKeySize {
		return nil, fmt.Errorf("store: the pickle key must be %d bytes", PickleKeySize)
	}
	db, err := dbutil.NewWithDB(s.db, s.dialect)
	if err != nil {
		return nil, fmt.Errorf("store: crypto tables: %w", err)
	}
	if s.dialect == DialectPostgres {
		// mautrix asks information_schema whether its version table
		// exists, in any schema: with mxircd in one schema and anything
		// of mautrix's in another (another gateway, a bridge) it would
		// skip creating ours. Made here, in the schema of the search path,
		// an empty table means "nothing yet" and every upgrade runs.
		if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS crypto_version (version INTEGER, compat INTEGER)`); err != nil {
			return nil, fmt.Errorf("store: crypto tables: %w", err)
		}
	}
	if err := crypto.NewSQLCryptoStore(db, dbutil.NoopLogger, "", "", pickleKey).DB.Upgrade(ctx); err != nil {
		return nil, fmt.Errorf("store: upgrading the crypto tables: %w", err)
	}
	return &CryptoStores{db: db, pickleKey: pickleKey}, nil
}

// Open is the crypto store of one account's device. Any goroutine.
func (c *CryptoStores) Open(user id.UserID, device id.DeviceID) *crypto.SQLCryptoStore {
	return crypto.NewSQLCryptoStore(c.db, dbutil.NoopLogger, user.String(), device, c.pickleKey)
}

// PickleKeySize is the length of the key secrets are pickled with.
const PickleKeySize = 32

// LoadOrCreatePickleKey reads the key that encrypts the crypto store's
// secrets from path, creating it (mode 0600, random) the first time. A
// key file that others may read, or of the wrong size, is refused.
func LoadOrCreatePickleKey(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createPickleKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("pickle key %s: %w", path, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("pickle key %s can be read by other users (mode %v): run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pickle key %s: %w", path, err)
	}
	if len(key) != PickleKeySize {
		return nil, fmt.Errorf("pickle key %s holds %d bytes, not %d: it is damaged or not a key; restore it from a backup (a new key cannot open the stored encryption keys)", path, len(key), PickleKeySize)
	}
	return key, nil
}

func createPickleKey(path string) ([]byte, error) {
	key := make([]byte, PickleKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("pickle key %s: %w", path, err)
	}
	// Written whole under another name first, so a crash never leaves a
	// short key behind.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pickle-key-*")
	if err != nil {
		return nil, fmt.Errorf("pickle key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("pickle key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// Link fails if another process created the key meanwhile: use theirs.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreatePickleKey(path)
		}
		return nil, fmt.Errorf("pickle key %s: %w", path, err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, key) {
		return nil, fmt.Errorf("pickle key %s could not be read back: %v", path, err)
	}
	return key, nil
}
