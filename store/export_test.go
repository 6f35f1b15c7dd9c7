package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"time"

	"maunium.net/go/mautrix/id"
)

// OpenWithMigrations opens with a test-only migration set (files at the root
// of fsys), to build databases at versions other than the latest.
func OpenWithMigrations(ctx context.Context, cfg Config, fsys fs.FS) (*SQLStore, error) {
	return openWith(ctx, cfg, fsys)
}

// MigrationsFS is the embedded migration set Open uses.
func MigrationsFS() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// SetNow replaces the store's clock, since timestamps only have millisecond
// resolution and tests need writes that are distinguishable.
func SetNow(s *SQLStore, now func() time.Time) { s.now = now }

// DB is the underlying pool, for tests that read the schema.
func (s *SQLStore) DB() *sql.DB { return s.db }

// Dialect is DialectSQLite or DialectPostgres.
func (s *SQLStore) Dialect() string { return s.dialect }

// ClearSyncState forgets the account's sync token, as a reset of its
// device would. The stream and its head stay, so that positions never
// repeat.
func (s *SQLStore) ClearSyncState(ctx context.Context, userID id.UserID) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`UPDATE sync_state SET next_batch = '', rooms_stored = 0 WHERE user_id = $1`, string(userID)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM account_rooms WHERE user_id = $1`, string(userID))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: clear sync state of %s: %w", userID, err)
	}
	return nil
}

// DeleteAccount removes the account and its rows in every per-account table
// of the event store, in one transaction, and succeeds when the account is
// already absent. Channel names are kept. Events in the shared event table
// stay until Prune removes them. Tests use it to check that each
// per-account table is keyed by the account.
func (s *SQLStore) DeleteAccount(ctx context.Context, userID id.UserID) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Serialized with SaveSync, so that a concurrent save cannot
		// leave stream rows behind.
		if _, err := lockEvents(ctx, tx); err != nil {
			return err
		}
		for _, table := range []string{"accounts", "oauth_grants", "cert_fingerprints", "sync_state", "account_rooms", "account_events", "client_cursors", "outbox"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE user_id = $1`, string(userID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete account %s: %w", userID, err)
	}
	return nil
}
