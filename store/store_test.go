package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
	"maunium.net/go/mautrix/id"
)

// forEachDriver runs f as a subtest per backend under test.
func forEachDriver(t *testing.T, f func(t *testing.T, driver string)) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) { f(t, d) })
	}
}

// fixedClock returns a clock the test can move, at millisecond precision so
// that values survive the round trip through the database unchanged.
func fixedClock(start time.Time) (now func() time.Time, set func(time.Time)) {
	var mu sync.Mutex
	cur := start
	return func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return cur
		}, func(t time.Time) {
			mu.Lock()
			defer mu.Unlock()
			cur = t
		}
}

func schemaVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

// appliedAt maps each recorded schema version to when it was applied, so
// tests can tell whether a migration ran again.
func appliedAt(t *testing.T, db *sql.DB) map[int]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT version, applied_at FROM schema_version`)
	if err != nil {
		t.Fatalf("read schema_version: %v", err)
	}
	defer rows.Close()
	m := map[int]int64{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		m[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func realMigrations(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(store.MigrationsFS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(store.MigrationsFS(), p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatal("no embedded migrations")
	}
	return m
}

// firstMigrations returns the real migrations with versions 1..n.
func firstMigrations(t *testing.T, n int) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	for name, f := range realMigrations(t) {
		var v int
		if _, err := fmt.Sscanf(name, "%d_", &v); err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		if v <= n {
			out[name] = f
		}
	}
	return out
}

func openWith(t *testing.T, cfg store.Config, migs fs.FS) *store.SQLStore {
	t.Helper()
	s, err := store.OpenWithMigrations(context.Background(), cfg, migs)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func mustOpen(t *testing.T, cfg store.Config) *store.SQLStore {
	t.Helper()
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestAccountNotFound(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.Open(t, driver)
		_, err := s.Account(context.Background(), "@nobody:example.org")
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), "@nobody:example.org") {
			t.Errorf("error %q does not name the account", err)
		}
	})
}

func TestAccountRoundTrip(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		when := time.Date(2025, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
		now, _ := fixedClock(when)
		store.SetNow(s, now)

		in := &store.Account{
			UserID:       "@alice:example.org",
			Homeserver:   "https://matrix.example.org",
			DeviceID:     "ABCDEFGHIJ",
			AccessToken:  "syt_YWxpY2U_secret_token",
			PasswordHash: "pbkdf2-sha256$600000$c2FsdA$aGFzaA",
		}
		if err := s.PutAccount(ctx, in); err != nil {
			t.Fatal(err)
		}
		if !in.CreatedAt.Equal(when) || !in.UpdatedAt.Equal(when) {
			t.Errorf("PutAccount set CreatedAt=%v UpdatedAt=%v, want %v", in.CreatedAt, in.UpdatedAt, when)
		}
		got, err := s.Account(ctx, in.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *in {
			t.Errorf("round trip:\n got %+v\nwant %+v", *got, *in)
		}

		// Empty strings must survive too, not turn into NULL or fail.
		empty := &store.Account{UserID: "@empty:example.org"}
		if err := s.PutAccount(ctx, empty); err != nil {
			t.Fatal(err)
		}
		got, err = s.Account(ctx, empty.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *empty {
			t.Errorf("round trip:\n got %+v\nwant %+v", *got, *empty)
		}
	})
}

func TestPutAccountRejectsEmptyUserID(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.Open(t, driver)
		if err := s.PutAccount(context.Background(), &store.Account{}); err == nil {
			t.Fatal("PutAccount with empty UserID succeeded")
		}
	})
}

func TestPutAccountUpsert(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		t1 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		t2 := t1.Add(90 * time.Minute)
		now, set := fixedClock(t1)
		store.SetNow(s, now)

		if err := s.PutAccount(ctx, &store.Account{
			UserID: "@bob:example.org", Homeserver: "https://old.example.org",
			DeviceID: "OLD", AccessToken: "old-token", PasswordHash: "old-hash",
		}); err != nil {
			t.Fatal(err)
		}

		set(t2)
		// A caller-supplied CreatedAt must not overwrite the stored one.
		upd := &store.Account{
			UserID: "@bob:example.org", Homeserver: "https://new.example.org",
			DeviceID: "NEW", AccessToken: "new-token", PasswordHash: "",
			CreatedAt: t2.Add(time.Hour),
		}
		if err := s.PutAccount(ctx, upd); err != nil {
			t.Fatal(err)
		}
		want := store.Account{
			UserID: "@bob:example.org", Homeserver: "https://new.example.org",
			DeviceID: "NEW", AccessToken: "new-token", PasswordHash: "",
			CreatedAt: t1, UpdatedAt: t2,
		}
		if *upd != want {
			t.Errorf("PutAccount left struct\n %+v\nwant %+v", *upd, want)
		}
		got, err := s.Account(ctx, "@bob:example.org")
		if err != nil {
			t.Fatal(err)
		}
		if *got != want {
			t.Errorf("after upsert:\n got %+v\nwant %+v", *got, want)
		}
	})
}

func TestDeleteAccount(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		for _, user := range []id.UserID{"@carol:example.org", "@dave:example.org"} {
			if err := s.PutAccount(ctx, &store.Account{UserID: user}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteAccount(ctx, "@carol:example.org"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Account(ctx, "@carol:example.org"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after delete: err = %v, want ErrNotFound", err)
		}
		if _, err := s.Account(ctx, "@dave:example.org"); err != nil {
			t.Errorf("delete removed another account: %v", err)
		}
		if err := s.DeleteAccount(ctx, "@carol:example.org"); err != nil {
			t.Errorf("deleting an absent account: %v", err)
		}
	})
}

func TestConcurrentPutAccount(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		const n = 20
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := id.UserID(fmt.Sprintf("@user%d:example.org", i))
				// Several writes each, so writers genuinely overlap.
				for j := range 5 {
					err := s.PutAccount(ctx, &store.Account{UserID: user, AccessToken: fmt.Sprint(j)})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i := range n {
			user := id.UserID(fmt.Sprintf("@user%d:example.org", i))
			a, err := s.Account(ctx, user)
			if err != nil {
				t.Errorf("%s: %v", user, err)
			} else if a.AccessToken != "4" {
				t.Errorf("%s: token %q, want last write %q", user, a.AccessToken, "4")
			}
		}
	})
}

func TestReopenKeepsDataAndSkipsMigrations(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.Config(t, driver)
		s := mustOpen(t, cfg)
		latest := len(realMigrations(t))
		if v := schemaVersion(t, s.DB()); v != latest {
			t.Fatalf("fresh database at version %d, want %d", v, latest)
		}
		before := appliedAt(t, s.DB())
		if err := s.PutAccount(ctx, &store.Account{UserID: "@erin:example.org", AccessToken: "tok"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		time.Sleep(2 * time.Millisecond) // a re-run would record a different applied_at
		s = mustOpen(t, cfg)
		defer s.Close()
		after := appliedAt(t, s.DB())
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("schema_version changed on reopen: before %v, after %v", before, after)
		}
		a, err := s.Account(ctx, "@erin:example.org")
		if err != nil {
			t.Fatal(err)
		}
		if a.AccessToken != "tok" {
			t.Errorf("token %q after reopen, want %q", a.AccessToken, "tok")
		}
	})
}

// frozenV1 is the schema exactly as release version 1 created it. It must not
// follow later edits: it stands for databases already in the field.
const frozenV1 = `
CREATE TABLE accounts (
    user_id       TEXT   PRIMARY KEY,
    homeserver    TEXT   NOT NULL,
    device_id     TEXT   NOT NULL,
    access_token  TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
INSERT INTO schema_version (version, applied_at) VALUES (1, 1700000000000);
INSERT INTO accounts VALUES ('@old:example.org', 'https://hs.example.org', 'DEV', 'tok', 'hash', 1700000000000, 1700000001000);
`

func TestOpenFrozenV1Database(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.Config(t, driver)
		// An empty migration set creates only schema_version, at version 0.
		s := openWith(t, cfg, fstest.MapFS{})
		if _, err := s.DB().Exec(frozenV1); err != nil {
			t.Fatalf("build v1 database: %v", err)
		}
		s.Close()

		s = mustOpen(t, cfg)
		defer s.Close()
		if v, latest := schemaVersion(t, s.DB()), len(realMigrations(t)); v != latest {
			t.Errorf("version %d after Open, want %d", v, latest)
		}
		got, err := s.Account(ctx, "@old:example.org")
		if err != nil {
			t.Fatal(err)
		}
		want := store.Account{
			UserID: "@old:example.org", Homeserver: "https://hs.example.org",
			DeviceID: "DEV", AccessToken: "tok", PasswordHash: "hash",
			CreatedAt: time.UnixMilli(1700000000000).UTC(), UpdatedAt: time.UnixMilli(1700000001000).UTC(),
		}
		if *got != want {
			t.Errorf("v1 row:\n got %+v\nwant %+v", *got, want)
		}
		if err := s.PutAccount(ctx, &store.Account{UserID: "@new:example.org"}); err != nil {
			t.Errorf("write after upgrade: %v", err)
		}
	})
}

// Whatever older version a database is at, Open brings it to the latest.
func TestUpgradeFromEveryOlderVersion(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		latest := len(realMigrations(t))
		for from := 0; from < latest; from++ {
			t.Run(fmt.Sprintf("from%d", from), func(t *testing.T) {
				cfg := storetest.Config(t, driver)
				old := openWith(t, cfg, firstMigrations(t, from))
				if v := schemaVersion(t, old.DB()); v != from {
					t.Fatalf("old database at version %d, want %d", v, from)
				}
				old.Close()

				s := mustOpen(t, cfg)
				defer s.Close()
				if v := schemaVersion(t, s.DB()); v != latest {
					t.Errorf("version %d after Open, want %d", v, latest)
				}
				if err := s.PutAccount(context.Background(), &store.Account{UserID: "@x:example.org"}); err != nil {
					t.Error(err)
				}
			})
		}
	})
}

// testMigrations extends the real set with test-only versions, so the
// "apply only what is missing" path is exercised even while the real set
// has a single migration.
func testMigrations(t *testing.T, extra map[string]string) fstest.MapFS {
	m := realMigrations(t)
	for name, sql := range extra {
		m[name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return m
}

func TestUpgradeAppliesOnlyMissingMigrations(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.Config(t, driver)
		latest := len(realMigrations(t))
		next := fmt.Sprintf("%04d_nickname.sql", latest+1)

		s := mustOpen(t, cfg)
		if err := s.PutAccount(ctx, &store.Account{UserID: "@frank:example.org", DeviceID: "D1"}); err != nil {
			t.Fatal(err)
		}
		before := appliedAt(t, s.DB())
		s.Close()

		time.Sleep(2 * time.Millisecond)
		s = openWith(t, cfg, testMigrations(t, map[string]string{
			next: `ALTER TABLE accounts ADD COLUMN nickname TEXT NOT NULL DEFAULT 'none';`,
		}))
		defer s.Close()
		if v := schemaVersion(t, s.DB()); v != latest+1 {
			t.Fatalf("version %d, want %d", v, latest+1)
		}
		after := appliedAt(t, s.DB())
		for v, at := range before {
			if after[v] != at {
				t.Errorf("migration %d re-applied: applied_at %d, was %d", v, after[v], at)
			}
		}
		var nick string
		if err := s.DB().QueryRow(`SELECT nickname FROM accounts WHERE user_id = $1`, "@frank:example.org").Scan(&nick); err != nil {
			t.Fatalf("new column: %v", err)
		}
		if nick != "none" {
			t.Errorf("nickname %q, want default %q", nick, "none")
		}
		a, err := s.Account(ctx, "@frank:example.org")
		if err != nil {
			t.Fatal(err)
		}
		if a.DeviceID != "D1" {
			t.Errorf("device %q after upgrade, want D1", a.DeviceID)
		}
	})
}

func TestFailedUpgradeRollsBack(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		cfg := storetest.Config(t, driver)
		latest := len(realMigrations(t))
		good := fmt.Sprintf("%04d_extra.sql", latest+1)
		bad := fmt.Sprintf("%04d_broken.sql", latest+2)

		mustOpen(t, cfg).Close()

		_, err := store.OpenWithMigrations(context.Background(), cfg, testMigrations(t, map[string]string{
			good: `CREATE TABLE extra (id BIGINT PRIMARY KEY);`,
			bad:  `CREATE TABLE broken (;`,
		}))
		if err == nil {
			t.Fatal("Open with a broken migration succeeded")
		}
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("error %q does not name the failing migration %s", err, bad)
		}

		s := mustOpen(t, cfg)
		defer s.Close()
		if v := schemaVersion(t, s.DB()); v != latest {
			t.Errorf("version %d after failed upgrade, want %d", v, latest)
		}
		if _, err := s.DB().Exec(`SELECT COUNT(*) FROM extra`); err == nil {
			t.Error("table from the failed upgrade's earlier migration survived")
		}
	})
}

func TestRefusesNewerSchema(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		cfg := storetest.Config(t, driver)
		s := mustOpen(t, cfg)
		if _, err := s.DB().Exec(`INSERT INTO schema_version (version, applied_at) VALUES (99, 0)`); err != nil {
			t.Fatal(err)
		}
		s.Close()

		s, err := store.Open(context.Background(), cfg)
		if err == nil {
			s.Close()
			t.Fatal("Open accepted a database from a newer version")
		}
		latest := len(realMigrations(t))
		if msg := err.Error(); !strings.Contains(msg, "99") || !strings.Contains(msg, fmt.Sprintf("(%d)", latest)) {
			t.Errorf("error %q should name version 99 and latest known %d", msg, latest)
		}
	})
}

func TestMigrationNumberingGap(t *testing.T) {
	cfg := storetest.Config(t, store.DialectSQLite)
	m := realMigrations(t)
	m["0099_skipped_ahead.sql"] = &fstest.MapFile{Data: []byte(`SELECT 1;`)}
	if _, err := store.OpenWithMigrations(context.Background(), cfg, m); err == nil {
		t.Fatal("Open accepted a migration set with a gap")
	}
}

func TestSQLiteMemory(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{Driver: "sqlite", Path: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.PutAccount(ctx, &store.Account{UserID: id.UserID(fmt.Sprintf("@m%d:example.org", i))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 5 {
		if _, err := s.Account(ctx, id.UserID(fmt.Sprintf("@m%d:example.org", i))); err != nil {
			t.Error(err)
		}
	}
}

func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "mxircd.db")
	s, err := store.Open(context.Background(), store.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dialect() != store.DialectSQLite {
		t.Errorf("empty Driver gave dialect %q, want sqlite", s.Dialect())
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	var mode string
	if err := s.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	for name, cfg := range map[string]store.Config{
		"unknown driver":       {Driver: "mysql", DSN: "x"},
		"sqlite without path":  {Driver: "sqlite"},
		"sqlite path with ?":   {Driver: "sqlite", Path: filepath.Join(t.TempDir(), "a?b.db")},
		"postgres without DSN": {Driver: "postgres"},
	} {
		if s, err := store.Open(context.Background(), cfg); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestDialect(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		if got := storetest.Open(t, driver).Dialect(); got != driver {
			t.Errorf("Dialect() = %q, want %q", got, driver)
		}
	})
}

func TestInitSetting(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			s := storetest.Open(t, driver)
			ctx := context.Background()
			got, err := s.InitSetting(ctx, "media_key", "first")
			if err != nil || got != "first" {
				t.Fatalf("first InitSetting = %q, %v", got, err)
			}
			got, err = s.InitSetting(ctx, "media_key", "second")
			if err != nil || got != "first" {
				t.Fatalf("second InitSetting = %q, %v; the first value must win", got, err)
			}
			if got, _ := s.InitSetting(ctx, "other", "x"); got != "x" {
				t.Fatalf("other setting = %q", got)
			}
			if err := s.PutSetting(ctx, "media_key", "third"); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.InitSetting(ctx, "media_key", "fourth"); got != "third" {
				t.Fatalf("after PutSetting, InitSetting = %q, want the put value", got)
			}
			if err := s.PutSetting(ctx, "new", "v"); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.InitSetting(ctx, "new", "w"); got != "v" {
				t.Fatalf("PutSetting of a new name: InitSetting = %q", got)
			}
			if got, err := s.Setting(ctx, "media_key"); err != nil || got != "third" {
				t.Fatalf("Setting(media_key) = %q, %v; want third", got, err)
			}
			if got, err := s.Setting(ctx, "never_stored"); err != nil || got != "" {
				t.Fatalf("Setting of a name never stored = %q, %v; want empty", got, err)
			}
		})
	}
}

func TestChannelNames(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			s := storetest.Open(t, driver)
			ctx := context.Background()
			if names, err := s.ChannelNames(ctx, "@a:x"); err != nil || len(names) != 0 {
				t.Fatalf("no names yet: %v, %v", names, err)
			}
			for _, put := range []struct {
				user id.UserID
				room id.RoomID
				name string
			}{{"@a:x", "!r1:x", "#one"}, {"@a:x", "!r2:x", "#two"}, {"@b:x", "!r1:x", "#other"}, {"@a:x", "!r1:x", "#renamed"}} {
				if err := s.PutChannelNames(ctx, put.user, map[id.RoomID]string{put.room: put.name}); err != nil {
					t.Fatal(err)
				}
			}
			names, err := s.ChannelNames(ctx, "@a:x")
			if err != nil || len(names) != 2 || names["!r1:x"] != "#renamed" || names["!r2:x"] != "#two" {
				t.Fatalf("names of @a:x = %v, %v", names, err)
			}
			if err := s.PutChannelNames(ctx, "@a:x", map[id.RoomID]string{"!r2:x": "#second", "!r3:x": "#three"}); err != nil {
				t.Fatal(err)
			}
			names, err = s.ChannelNames(ctx, "@a:x")
			if err != nil || len(names) != 3 || names["!r1:x"] != "#renamed" || names["!r2:x"] != "#second" || names["!r3:x"] != "#three" {
				t.Fatalf("names of @a:x after a batch = %v, %v", names, err)
			}
		})
	}
}

// The app password has one writer, SetAppPassword: a login saving a new
// token with PutAccount (from an account it read before) keeps it.
func TestAppPassword(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		if err := s.SetAppPassword(ctx, "@nobody:example.org", "v"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetAppPassword of a missing account: %v, want ErrNotFound", err)
		}
		in := &store.Account{UserID: "@carol:example.org", AccessToken: "t1", AppPasswordHash: "first"}
		if err := s.PutAccount(ctx, in); err != nil {
			t.Fatal(err)
		}
		stale, err := s.Account(ctx, in.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if stale.AppPasswordHash != "first" {
			t.Errorf("inserted app password %q, want first", stale.AppPasswordHash)
		}
		if err := s.SetAppPassword(ctx, in.UserID, "second"); err != nil {
			t.Fatal(err)
		}
		stale.AccessToken = "t2"
		if err := s.PutAccount(ctx, stale); err != nil {
			t.Fatal(err)
		}
		got, err := s.Account(ctx, in.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AppPasswordHash != "second" || got.AccessToken != "t2" {
			t.Errorf("after PutAccount of a stale account: app password %q, token %q; want second, t2", got.AppPasswordHash, got.AccessToken)
		}
		if err := s.SetAppPassword(ctx, in.UserID, ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Account(ctx, in.UserID); got == nil || got.AppPasswordHash != "" {
			t.Errorf("cleared app password is %+v", got)
		}
	})
}

// ClearPasswordVerifier forgets the verifier it names, and only that one.
func TestClearPasswordVerifier(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		if err := s.ClearPasswordVerifier(ctx, "@nobody:example.org", "v"); err != nil {
			t.Errorf("ClearPasswordVerifier of a missing account: %v", err)
		}
		in := &store.Account{UserID: "@dan:example.org", AccessToken: "t", PasswordHash: "newer"}
		if err := s.PutAccount(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := s.ClearPasswordVerifier(ctx, in.UserID, "older"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Account(ctx, in.UserID); got == nil || got.PasswordHash != "newer" {
			t.Errorf("after clearing another verifier: %+v, want newer kept", got)
		}
		if err := s.ClearPasswordVerifier(ctx, in.UserID, "newer"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Account(ctx, in.UserID); got == nil || got.PasswordHash != "" || got.AccessToken != "t" {
			t.Errorf("after clearing the verifier: %+v, want no verifier and the token kept", got)
		}
	})
}
