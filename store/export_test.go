package store

import (
	"context"
	"io/fs"
	"time"
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
