// Package storetest gives tests in any package a fresh, isolated store on
// every backend under test. It lives apart from package store so that
// production code never links the testing package.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxircd/mxircd/store"
)

// EnvPostgres names the environment variable holding a PostgreSQL DSN. When
// it is set, tests also run against PostgreSQL; the role must be allowed to
// create schemas in that database.
const EnvPostgres = "MXIRCD_TEST_POSTGRES"

// Drivers lists the backends tests should cover: always "sqlite", plus
// "postgres" when EnvPostgres is set.
func Drivers() []string {
	if os.Getenv(EnvPostgres) != "" {
		return []string{store.DialectSQLite, store.DialectPostgres}
	}
	return []string{store.DialectSQLite}
}

// Open returns a migrated store on an empty database of its own, closed
// (and, on PostgreSQL, dropped) when t finishes.
func Open(t testing.TB, driver string) *store.SQLStore {
	t.Helper()
	s, err := store.Open(context.Background(), Config(t, driver))
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: close: %v", err)
		}
	})
	return s
}

// Config returns the configuration of an empty database that nothing has
// opened yet, for tests that need to open, close and reopen it themselves.
// The database is removed when t finishes. It skips the test for "postgres"
// when EnvPostgres is not set.
func Config(t testing.TB, driver string) store.Config {
	t.Helper()
	switch driver {
	case store.DialectSQLite:
		// A subdirectory also exercises Open's creation of missing
		// parent directories.
		return store.Config{Driver: driver, Path: filepath.Join(t.TempDir(), "data", "mxircd.db")}
	case store.DialectPostgres:
		dsn := os.Getenv(EnvPostgres)
		if dsn == "" {
			t.Skipf("storetest: %s not set", EnvPostgres)
		}
		return store.Config{Driver: driver, DSN: tempSchema(t, dsn)}
	default:
		t.Fatalf("storetest: unknown driver %q", driver)
		return store.Config{}
	}
}

// RawDB opens the database of cfg (made by Config) without the store, for
// tests that write rows directly, such as seeding thousands of accounts in
// one transaction. Open the store first so the schema exists. The pool is
// closed when t finishes.
func RawDB(t testing.TB, cfg store.Config) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", cfg.DSN
	if cfg.Driver != store.DialectPostgres {
		driver, dsn = "sqlite", cfg.Path+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", cfg.Driver, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// tempSchema creates a uniquely named schema and returns dsn with its
// search_path pointing there, so that concurrent tests sharing one
// PostgreSQL database cannot see each other's tables.
func tempSchema(t testing.TB, dsn string) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	schema := "mxircd_test_" + hex.EncodeToString(b[:])

	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("storetest: open postgres: %v", err)
	}
	if _, err := admin.ExecContext(context.Background(), `CREATE SCHEMA "`+schema+`"`); err != nil {
		admin.Close()
		t.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	// Registered before the caller's Close cleanup, so it runs after it.
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA "`+schema+`" CASCADE`); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})

	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("storetest: parse %s: %v", EnvPostgres, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}
