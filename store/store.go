// Package store persists mxircd's state behind the narrow Store interface.
//
// SQLite is the embedded default and PostgreSQL serves hosted deployments.
// Both go through database/sql so that mautrix-go's SQL crypto store can
// share the same *sql.DB (see SQLStore.OpenCryptoStores).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	_ "github.com/jackc/pgx/v5/stdlib" // registers database/sql driver "pgx"
	_ "modernc.org/sqlite"             // registers database/sql driver "sqlite"
)

// ErrNotFound is returned (wrapped) when a requested record does not exist.
var ErrNotFound = errors.New("store: not found")

// Account is a Matrix login that mxircd acts as on behalf of an IRC user.
type Account struct {
	UserID       id.UserID // Matrix user ID, "@alice:example.org" — primary key
	Homeserver   string    // base URL used for this account
	DeviceID     string
	AccessToken  string
	PasswordHash string // opaque verifier string produced by the caller (e.g. "pbkdf2-sha256$..."), may be ""
	// AppPasswordHash is the verifier of the account's app password, ""
	// if it has none. PutAccount writes it only when it inserts the
	// account; SetAppPassword is its one writer after that, so a login
	// saving a new token cannot undo a PASSWORD SET made meanwhile.
	AppPasswordHash string
	CreatedAt       time.Time // set by PutAccount on insert
	UpdatedAt       time.Time // set by PutAccount on every write
	// AlwaysOn overrides the gateway's always-on setting for this account;
	// nil follows the global setting.
	AlwaysOn *bool
}

// Store is everything the rest of mxircd may ask of persistence.
type Store interface {
	// Account returns an error satisfying errors.Is(err, ErrNotFound) when
	// there is no such account.
	Account(ctx context.Context, userID id.UserID) (*Account, error)
	// PutAccount inserts or updates by UserID. It sets a.CreatedAt to the
	// stored creation time and a.UpdatedAt to the time of this write.
	PutAccount(ctx context.Context, a *Account) error
	// SetAppPassword replaces the verifier of an existing account's app
	// password ("" removes it). It returns an error satisfying
	// errors.Is(err, ErrNotFound) when there is no such account.
	SetAppPassword(ctx context.Context, userID id.UserID, verifier string) error
	// ClearPasswordVerifier empties the account's PasswordHash if it is
	// still verifier (a login that stored a newer one meanwhile keeps
	// it). A missing account or another verifier is not an error.
	ClearPasswordVerifier(ctx context.Context, userID id.UserID, verifier string) error
	// AddCertFP registers a TLS client certificate's fingerprint (see
	// CertFP) for the account; added is false when it was registered
	// for it already. One registered for another account is an error
	// satisfying errors.Is(err, ErrCertTaken).
	AddCertFP(ctx context.Context, userID id.UserID, fingerprint string) (added bool, err error)
	// CertFPs lists the account's certificates, oldest first.
	CertFPs(ctx context.Context, userID id.UserID) ([]CertFP, error)
	// DeleteCertFP removes one of the account's certificates
	// (ErrNotFound wrapped when it has no such one).
	DeleteCertFP(ctx context.Context, userID id.UserID, fingerprint string) error
	// CertFPAccount returns the account a certificate logs in to
	// (ErrNotFound wrapped when none).
	CertFPAccount(ctx context.Context, fingerprint string) (id.UserID, error)
	// InitSetting stores value under name unless one is stored already,
	// and returns the stored value.
	InitSetting(ctx context.Context, name, value string) (string, error)
	// PutSetting stores value under name, replacing what was stored.
	PutSetting(ctx context.Context, name, value string) error
	// Setting returns the value stored under name, "" if none.
	Setting(ctx context.Context, name string) (string, error)
	// ChannelNames returns the channel names an account gave rooms, by room ID.
	ChannelNames(ctx context.Context, userID id.UserID) (map[id.RoomID]string, error)
	// PutChannelNames records (or changes) the channel names an account
	// gave rooms, by room ID, in one transaction.
	PutChannelNames(ctx context.Context, userID id.UserID, names map[id.RoomID]string) error
	// ReadMarkers returns the read markers the account's IRC clients set
	// (draft/read-marker), unix ms by target: a room ID, or a query's
	// peer's user ID.
	ReadMarkers(ctx context.Context, userID id.UserID) (map[string]int64, error)
	// PutReadMarker moves the account's read marker of a target forward
	// to ts; a later one stored already stays.
	PutReadMarker(ctx context.Context, userID id.UserID, target string, ts int64) error

	// SaveSync stores b.Events in the shared event table (one row per
	// room+event ID, whichever account stored it first; an existing row is
	// kept as is), records each event the account had not seen as seen,
	// in its stream unless HistoryOnly, with consecutive positions after
	// the current head, and sets the account's sync token to b.NextBatch,
	// all in one transaction. It returns the stream position given to
	// each event, in b.Events order, 0 for an event the account had seen
	// (a duplicate) and for a HistoryOnly event. Empty Events still saves
	// the token.
	SaveSync(ctx context.Context, b *SyncBatch) ([]int64, error)
	// SyncState returns the account's stored sync token ("" if none) and
	// its stream head (0 if none).
	SyncState(ctx context.Context, userID id.UserID) (token string, head int64, err error)
	// AccountRooms returns the rooms the account had joined as of its
	// stored sync token, each with the summary its syncs last sent; ok is
	// false when the store does not hold the whole list (no full-state or
	// initial sync saved it yet).
	AccountRooms(ctx context.Context, userID id.UserID) (rooms []AccountRoom, ok bool, err error)
	// RoomState returns a room's current state as stored, the JSON of
	// one event per (type, state key), the newest stored.
	RoomState(ctx context.Context, roomID id.RoomID) ([][]byte, error)
	// StreamRange returns the account's stream events with
	// after < seq <= upTo, oldest first, at most perRoom per room (the
	// newest ones of each room; perRoom <= 0 means no limit), and how many
	// older ones were left out, by room ID (only rooms with some left
	// out). Events pruned from the event table are skipped silently.
	// StoredEvent.Seq is the stream position.
	StreamRange(ctx context.Context, userID id.UserID, after, upTo int64, perRoom int) ([]StoredEvent, map[id.RoomID]int, error)
	// Cursor returns a client's delivery position; ok is false if the
	// client (userID, client name) has none.
	Cursor(ctx context.Context, userID id.UserID, client string) (seq int64, ok bool, err error)
	// PutCursor moves a client's cursor forward to seq, never backward.
	PutCursor(ctx context.Context, userID id.UserID, client string, seq int64) error
	// RecentStreamIDs returns the event IDs of the newest limit events of
	// a room the account has seen (its stream and history), newest first.
	RecentStreamIDs(ctx context.Context, userID id.UserID, roomID id.RoomID, limit int) ([]id.EventID, error)
	// RoomsOver lists the rooms with more than keep stored events.
	RoomsOver(ctx context.Context, keep int) ([]id.RoomID, error)
	// PutCursors writes several cursors in one transaction, in order.
	PutCursors(ctx context.Context, updates []CursorUpdate) error
	// FindByTxn finds the event sender's account received in roomID with
	// its own transaction ID txnID (ErrNotFound wrapped).
	FindByTxn(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string) (*StoredEvent, error)
	// MaxCursor is the largest cursor of any client of the account; ok is
	// false if it has none.
	MaxCursor(ctx context.Context, userID id.UserID) (seq int64, ok bool, err error)
	// RoomHistory returns events of a room matching q, oldest first.
	// StoredEvent.Seq is the room position.
	RoomHistory(ctx context.Context, q HistoryQuery) ([]StoredEvent, error)
	// FindEvent returns one stored event by room and event ID, or an
	// error satisfying errors.Is(err, ErrNotFound).
	FindEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*StoredEvent, error)
	// LastEventBefore returns the newest event of the room with TS <= ts
	// whose Type is one of types (any type when types is empty), or an
	// error satisfying errors.Is(err, ErrNotFound).
	LastEventBefore(ctx context.Context, roomID id.RoomID, viewer id.UserID, ts int64, types []string) (*StoredEvent, error)
	// Targets returns the rooms whose latest event in the account's stream
	// of one of types (any type when empty) has a TS in [fromTS, toTS],
	// with that TS, by LastTS ascending, at most limit (limit <= 0 means
	// no limit). A room whose latest such event is later is not listed.
	Targets(ctx context.Context, userID id.UserID, fromTS, toTS int64, limit int, types []string) ([]Target, error)
	// Prune keeps the newest keep events of the room (by room position),
	// deletes older ones and the account stream rows that point at them.
	Prune(ctx context.Context, roomID id.RoomID, keep int) error
	// PutOutbox records messages to (re)send under (UserID, TxnID), in
	// the order given, in one transaction. A zero e.Created is set to the
	// current time. Putting a TxnID again replaces room, peer, type and
	// content and keeps its place in the order and its creation time,
	// which e.Created is set to.
	PutOutbox(ctx context.Context, entries ...*OutboxEntry) error
	// ResolveOutboxPeer gives the account's messages waiting for a direct
	// room with peer (OutboxEntry.Peer) that room.
	ResolveOutboxPeer(ctx context.Context, userID, peer id.UserID, roomID id.RoomID) error
	// DeleteOutbox forgets a message; it succeeds when it is already absent.
	DeleteOutbox(ctx context.Context, userID id.UserID, txnID string) error
	// Outbox returns an account's messages to (re)send, oldest first.
	Outbox(ctx context.Context, userID id.UserID) ([]OutboxEntry, error)
	// OAuthClient returns the client registered with the homeserver's
	// authorization server (ErrNotFound wrapped when none is).
	OAuthClient(ctx context.Context, homeserver string) (*OAuthClient, error)
	// InitOAuthClient stores c unless a client is stored for its homeserver
	// already, and returns the stored one: the first registration wins.
	InitOAuthClient(ctx context.Context, c *OAuthClient) (*OAuthClient, error)
	// DeleteOAuthClient forgets the homeserver's client if it is still
	// clientID (the server no longer knows it, or the issuer changed).
	DeleteOAuthClient(ctx context.Context, homeserver, clientID string) error
	// OAuthGrant returns the account's grant (ErrNotFound wrapped).
	OAuthGrant(ctx context.Context, userID id.UserID) (*OAuthGrant, error)
	// PutOAuthLogin stores an account that has just logged in through
	// OAuth and its grant, in one transaction.
	PutOAuthLogin(ctx context.Context, a *Account, g *OAuthGrant) error
	// RotateOAuthGrant stores the tokens a refresh gave in place of the
	// grant whose refresh token is oldRefresh, with the new access token,
	// in one transaction; ErrStale (wrapped) when the stored refresh token
	// is no longer oldRefresh (another refresh won) or there is no grant.
	RotateOAuthGrant(ctx context.Context, oldRefresh, accessToken string, g *OAuthGrant) error
	// DeleteOAuthGrant forgets the account's grant and its access token
	// (the login ended); it succeeds when there is none.
	DeleteOAuthGrant(ctx context.Context, userID id.UserID) error

	// RoomCreateFullAt returns when the account's room-creation budget is
	// full again; the zero time when it is, or the account is unknown.
	RoomCreateFullAt(ctx context.Context, userID id.UserID) (time.Time, error)
	// PutRoomCreateFullAt records when the account's room-creation
	// budget is full again, unless a later time is recorded already.
	PutRoomCreateFullAt(ctx context.Context, userID id.UserID, at time.Time) error

	// AlwaysOnAccounts lists the user IDs of accounts with an access token
	// that are always on: AlwaysOn true, or AlwaysOn nil when def is true.
	AlwaysOnAccounts(ctx context.Context, def bool) ([]id.UserID, error)

	// PutAutoRegistered, AutoRegisteredAccounts, SetAutoRegisteredLeft
	// and ForgetAutoRegistered keep the accounts the gateway registered
	// for connections without a login (autoreg.go).
	PutAutoRegistered(ctx context.Context, a *AutoRegistered) error
	AutoRegisteredAccounts(ctx context.Context) ([]AutoRegistered, error)
	SetAutoRegisteredLeft(ctx context.Context, userID id.UserID, at time.Time) error
	ForgetAutoRegistered(ctx context.Context, userID id.UserID) error
	// DeleteAccount removes the account and all its per-account rows;
	// it succeeds when there are none.
	DeleteAccount(ctx context.Context, userID id.UserID) error
	// DeleteCryptoState forgets the account's end-to-end encryption
	// keys (crypto_state.go). Only after OpenCryptoStores.
	DeleteCryptoState(ctx context.Context, userID id.UserID) error

	Close() error
}

// Config selects the backend.
type Config struct {
	Driver string // "sqlite" (the default when empty) or "postgres"
	Path   string // SQLite database file, or ":memory:"
	DSN    string // PostgreSQL connection string (URL or key=value form)
}

// Dialect names returned by SQLStore.Dialect. They are also accepted by
// go.mau.fi/util/dbutil.ParseDialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// SQLStore implements Store on SQLite or PostgreSQL.
type SQLStore struct {
	db      *sql.DB
	dialect string
	// now is swapped by tests that need distinct timestamps within one
	// millisecond.
	now func() time.Time
}

var _ Store = (*SQLStore)(nil)

// sqliteBusyTimeout is how long a connection waits for another writer before
// giving up with SQLITE_BUSY.
const sqliteBusyTimeout = 5 * time.Second

// postgresMaxOpenConns bounds the gateway's connections to PostgreSQL.
const postgresMaxOpenConns = 32

// sqliteMaxOpenConns is one: SQLite has a single writer, and writers on
// other connections wait in its busy handler, which sleeps 1, 2, 5, 10...
// milliseconds between tries. With syncs, cursors and the outbox all
// writing, those sleeps were the tail of message latency; one connection
// makes everyone queue in Go instead, woken as soon as it is free. Reads
// are short, and no store method holds the connection while it asks for
// another.
const sqliteMaxOpenConns = 1

// Open connects to the configured database and brings its schema up to date.
// It refuses a database whose schema is newer than this build knows.
func Open(ctx context.Context, cfg Config) (*SQLStore, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: embedded migrations: %w", err)
	}
	return openWith(ctx, cfg, sub)
}

func openWith(ctx context.Context, cfg Config, migrationsFS fs.FS) (*SQLStore, error) {
	migs, err := loadMigrations(migrationsFS)
	if err != nil {
		return nil, err
	}

	var s *SQLStore
	switch cfg.Driver {
	case "", DialectSQLite:
		s, err = openSQLite(ctx, cfg.Path)
	case DialectPostgres:
		s, err = openPostgres(ctx, cfg.DSN)
	default:
		return nil, fmt.Errorf("store: unknown driver %q (want %q or %q)", cfg.Driver, DialectSQLite, DialectPostgres)
	}
	if err != nil {
		return nil, err
	}

	if err := migrate(ctx, s.db, s.dialect, migs); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string) (*SQLStore, error) {
	if path == "" {
		return nil, errors.New("store: sqlite driver needs Config.Path")
	}
	// The modernc driver splits the DSN at the first '?', so a '?' in the
	// file name would be misread as connection parameters.
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("store: sqlite path %q must not contain '?'", path)
	}
	memory := path == ":memory:"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
		// The database holds access tokens. Creating the file ourselves
		// keeps it private; SQLite gives -wal/-shm files the same mode.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			err = f.Close()
		} else if errors.Is(err, fs.ErrExist) {
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("store: create %s: %w", path, err)
		}
	}

	// synchronous(NORMAL) in WAL mode does not wait for the disk on every
	// commit: a crash of the gateway loses nothing committed, a power
	// failure may undo the last commits (sync token and events together,
	// so they are fetched again). Commits are frequent (every sync, every
	// client cursor), and a full fsync each would cost milliseconds.
	//
	// _txlock=immediate makes every read-write transaction take the write
	// lock at BEGIN, where busy_timeout applies. A deferred transaction
	// that reads and then writes can instead fail with SQLITE_BUSY at once
	// when another connection committed in between. mautrix recommends the
	// same setting for its SQLite stores.
	//
	// _time_format=sqlite writes time.Time values (only mautrix's crypto
	// store has any) in a form SQLite's date functions read; the driver's
	// default, Go's String(), makes unixepoch() return NULL, and mautrix
	// then never finds an expired Megolm session.
	dsn := path + "?_pragma=" + fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate&_time_format=sqlite"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	if memory {
		// Every connection to ":memory:" is a separate, empty database,
		// so everything must go through one connection that is never
		// recycled. Callers must not nest queries on this store.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		db.SetMaxOpenConns(sqliteMaxOpenConns)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	return &SQLStore{db: db, dialect: DialectSQLite, now: time.Now}, nil
}

func openPostgres(ctx context.Context, dsn string) (*SQLStore, error) {
	if dsn == "" {
		return nil, errors.New("store: postgres driver needs Config.DSN")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	// Thousands of sessions save at once; PostgreSQL allows 100
	// connections by default, and a few dozen busy ones are faster than
	// hundreds fighting over locks.
	db.SetMaxOpenConns(postgresMaxOpenConns)
	db.SetMaxIdleConns(postgresMaxOpenConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect postgres: %w", err)
	}
	return &SQLStore{db: db, dialect: DialectPostgres, now: time.Now}, nil
}

// Close closes the underlying pool, also for the crypto stores sharing it.
func (s *SQLStore) Close() error { return s.db.Close() }

func (s *SQLStore) Account(ctx context.Context, userID id.UserID) (*Account, error) {
	a := &Account{UserID: userID}
	var created, updated int64
	var alwaysOn sql.NullInt64
	err := s.db.QueryRowContext(ctx,
		`SELECT homeserver, device_id, access_token, password_hash, created_at, updated_at, always_on, app_password_hash
		 FROM accounts WHERE user_id = $1`, string(userID)).
		Scan(&a.Homeserver, &a.DeviceID, &a.AccessToken, &a.PasswordHash, &created, &updated, &alwaysOn, &a.AppPasswordHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: load account %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: load account %s: %w", userID, err)
	}
	a.CreatedAt = fromMillis(created)
	a.UpdatedAt = fromMillis(updated)
	if alwaysOn.Valid {
		on := alwaysOn.Int64 != 0
		a.AlwaysOn = &on
	}
	return a, nil
}

func (s *SQLStore) PutAccount(ctx context.Context, a *Account) error {
	return putAccount(ctx, s.db, a, s.now())
}

// queryRower is a *sql.DB or a *sql.Tx.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func putAccount(ctx context.Context, q queryRower, a *Account, at time.Time) error {
	if a == nil || a.UserID == "" {
		return errors.New("store: save account: empty user ID")
	}
	now := at.UnixMilli()
	var alwaysOn sql.NullInt64
	if a.AlwaysOn != nil {
		alwaysOn = sql.NullInt64{Int64: boolInt(*a.AlwaysOn), Valid: true}
	}
	var created int64
	// One upsert statement rather than read-then-write, so concurrent
	// writers of the same account cannot race between the two steps.
	err := q.QueryRowContext(ctx,
		`INSERT INTO accounts (user_id, homeserver, device_id, access_token, password_hash, created_at, updated_at, always_on, app_password_hash)
		 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)
		 ON CONFLICT (user_id) DO UPDATE SET
			homeserver = excluded.homeserver,
			device_id = excluded.device_id,
			access_token = excluded.access_token,
			password_hash = excluded.password_hash,
			updated_at = excluded.updated_at,
			always_on = excluded.always_on
		 RETURNING created_at`,
		string(a.UserID), a.Homeserver, a.DeviceID, a.AccessToken, a.PasswordHash, now, alwaysOn, a.AppPasswordHash).
		Scan(&created)
	if err != nil {
		return fmt.Errorf("store: save account %s: %w", a.UserID, err)
	}
	a.CreatedAt = fromMillis(created)
	a.UpdatedAt = fromMillis(now)
	return nil
}

func (s *SQLStore) SetAppPassword(ctx context.Context, userID id.UserID, verifier string) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE accounts SET app_password_hash = $1, updated_at = $2 WHERE user_id = $3`,
		verifier, s.now().UnixMilli(), string(userID))
	if err != nil {
		return fmt.Errorf("store: save app password of %s: %w", userID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: save app password of %s: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("store: save app password of %s: %w", userID, ErrNotFound)
	}
	return nil
}

func (s *SQLStore) ClearPasswordVerifier(ctx context.Context, userID id.UserID, verifier string) error {
	_, err := s.db.ExecContext(ctx,
		`UPDATE accounts SET password_hash = '', updated_at = $1 WHERE user_id = $2 AND password_hash = $3`,
		s.now().UnixMilli(), string(userID), verifier)
	if err != nil {
		return fmt.Errorf("store: forget the password verifier of %s: %w", userID, err)
	}
	return nil
}

// InitSetting stores value under name unless a value is already stored,
// and returns the stored one: the first writer wins, also between
// gateways sharing a database.
func (s *SQLStore) InitSetting(ctx context.Context, name, value string) (string, error) {
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return "", fmt.Errorf("store: init setting %s: %w", name, err)
	}
	var stored string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&stored); err != nil {
		return "", fmt.Errorf("store: load setting %s: %w", name, err)
	}
	return stored, nil
}

// PutSetting stores value under name, the last writer winning.
func (s *SQLStore) PutSetting(ctx context.Context, name, value string) error {
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
		return fmt.Errorf("store: put setting %s: %w", name, err)
	}
	return nil
}

// Setting returns the value stored under name, "" if none is.
func (s *SQLStore) Setting(ctx context.Context, name string) (string, error) {
	var stored string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: load setting %s: %w", name, err)
	}
	return stored, nil
}

func (s *SQLStore) ChannelNames(ctx context.Context, userID id.UserID) (map[id.RoomID]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT room_id, name FROM channel_names WHERE user_id = $1`, string(userID))
	if err != nil {
		return nil, fmt.Errorf("store: load channel names of %s: %w", userID, err)
	}
	defer rows.Close()
	names := map[id.RoomID]string{}
	for rows.Next() {
		var roomID, name string
		if err := rows.Scan(&roomID, &name); err != nil {
			return nil, fmt.Errorf("store: load channel names of %s: %w", userID, err)
		}
		names[id.RoomID(roomID)] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load channel names of %s: %w", userID, err)
	}
	return names, nil
}

func (s *SQLStore) PutChannelNames(ctx context.Context, userID id.UserID, names map[id.RoomID]string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: save channel names of %s: %w", userID, err)
	}
	defer tx.Rollback()
	for roomID, name := range names {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO channel_names (user_id, room_id, name) VALUES ($1, $2, $3)
			 ON CONFLICT (user_id, room_id) DO UPDATE SET name = excluded.name`, string(userID), string(roomID), name); err != nil {
			return fmt.Errorf("store: save channel name of %s in %s: %w", roomID, userID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save channel names of %s: %w", userID, err)
	}
	return nil
}

// fromMillis returns UTC so that stored times do not depend on the
// process's local zone.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
