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
