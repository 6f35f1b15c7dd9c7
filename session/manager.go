// Package session runs one Matrix session per account: login, the sync loop,
// the room and member cache, outgoing requests, and the IRC clients attached
// to it. Each Session has one owner goroutine that alone touches its state;
// everything else sends it events.
package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// ErrInvalidCredentials means the account name or the password is wrong.
var ErrInvalidCredentials = errors.New("invalid account or password")

// Config is the Matrix side's settings.
type Config struct {
	// Homeserver is a fixed base URL for every login; empty means discover
	// it from the user ID's server through /.well-known/matrix/client.
	Homeserver string
	// ServerName is the server of accounts given without one ("alice").
	ServerName string
	// DeviceName is shown in the user's device list.
	DeviceName  string
	SyncTimeout time.Duration
	// TimelineLimit is how many events one incremental sync brings per
	// room before the rest is fetched by a second sync (default 100).
	TimelineLimit int
	HTTPClient    *http.Client
	// WrapTransport, if set, wraps the transport of HTTPClient (e.g. to
	// time homeserver requests for metrics).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Logger        *slog.Logger
	// OpLevel is the power level shown as channel operator (@); 0 means
	// mapping.OpLevel.
	OpLevel int
	// AcceptDMInvites says which direct chat invitations are accepted
	// without asking: AcceptDMInvitesKnown ("" too), All or None.
	AcceptDMInvites string
	// ShortAliases shows aliases on the user's own server without
	// ":server", for deployments where everyone shares one homeserver,
	// and accounts on ServerName by their localpart (accountName).
	ShortAliases bool
	// KeepClientNick leaves a client the nick it registered with and makes
	// NICK change only that; otherwise a client is given the nick other
	// users see the account under, and NICK changes the display name.
	KeepClientNick bool
	// MediaLink makes a browser link for a user's media; nil shows the
	// mxc:// URI. It must be safe to call from any goroutine.
	MediaLink func(user id.UserID, mxc id.ContentURI, filename string) string

	// AlwaysOn keeps sessions synced with no client attached, unless an
	// account turned it off for itself.
	AlwaysOn bool
	// AwayWhenDetached shows an account as away while no client is attached.
	AwayWhenDetached bool
	// ReplayLimit is the most missed events replayed per room to a client
	// without draft/chathistory; 0 replays nothing.
	ReplayLimit int
	// HistoryPerRoom is how many events the store keeps per room (default 5000).
	HistoryPerRoom int
	// RoomCreateBurst rooms an account may create at once by joining
	// channels that do not exist or starting DMs (default 5), then one
	// each RoomCreateInterval (default 1m).
	RoomCreateBurst    int
	RoomCreateInterval time.Duration
	// ListNewChannels publishes the rooms JOIN creates in the room
	// directory (matrix.list_new_channels).
	ListNewChannels bool
	// CryptoStore opens an account's end-to-end encryption keys; nil
	// leaves encrypted rooms undecrypted.
	CryptoStore CryptoStoreOpener
	// OutboxKey (32 bytes, see OutboxKeyFrom) seals the outbox copy of a
	// message to an encrypted room until it is encrypted for the room;
	// nil when encryption is off.
	OutboxKey []byte
	// ServiceNick is the nick of the gateway's service (default
	// DefaultServiceNick); NickServ is an alias.
	ServiceNick string
	// EncryptNewDMs makes the DMs opened from IRC encrypted, when the
	// account has encryption.
	EncryptNewDMs bool
	// PasswordRecheck is how long a Matrix password the homeserver
	// accepted is taken from the stored verifier before the homeserver
	// is asked again (default DefaultPasswordRecheck; auth_recheck.go).
	PasswordRecheck time.Duration
	// Guests is how connections without a login are served (lurk.go).
	Guests GuestConfig
	// AutoRegister is how accounts are registered for connections
	// without a login, when the gateway does (autoreg.go).
	AutoRegister AutoRegisterConfig
	// SendToVerifiedOnly shares room keys only with devices the account
	// has verified (encryption.send_to = "verified"); others are told the
	// key is withheld (m.unverified). Off: every device of the room's
	// members, as Element does by default.
	SendToVerifiedOnly bool
	// SSOBaseURL is the public base URL of the gateway's HTTP listener,
	// where SSO logins come back (SSOHandler); "" offers no SSO.
	SSOBaseURL string
	// SSOLinkTTL is how long an SSO login link works (default 10m).
	SSOLinkTTL time.Duration
	// LazyMembers syncs with lazy-loaded members and fetches a room's
	// full member list when NAMES, WHO, a join burst or the ban list
	// needs it (members.go); counts, names and DMs come from sync's room
	// summary (summary.go). On by default.
	LazyMembers bool
}

// Manager owns every live Session and logs clients in to them.
type Manager struct {
	cfg   Config
	store store.Store
	log   *slog.Logger

	mu       sync.Mutex
	sessions map[id.UserID]*Session
	ending   map[id.UserID]*Session // stopped, still finishing queued requests
	// attached counts the attachments holding each session; one that
	// reaches none ends unless it is always-on.
	attached  map[*Session]int
	userLocks map[id.UserID]*userLock
	closed    bool
	running   sync.WaitGroup

	stats   stats // counters for metrics (stats.go)
	auth    *Authenticator
	shared  *stateRegistry // room state shared between sessions
	loaded  loadedStates   // rooms' stored state, read once for the sessions resuming in them
	members *memberFetcher // full member lists, fetched once at a time per room (members.go)
	here    hereRegistry   // presence of the accounts with a session here (here.go)
	// leaveReasons are the reasons of PARTs from this gateway, for the
	// other sessions in the room (leavereason.go).
	leaveReasons leaveReasons
	// lazyMu guards whether stored room states may lack members
	// (lazilyStored), read from the store once.
	lazyMu                sync.Mutex
	lazyKnown, lazyStored bool
	sections              storedSections  // rooms' state sections stored whole, not to store again
	encrypted             *encryptedRooms // rooms no plaintext may be sent to
	// saveSlots bounds the sync responses being stored at once (see
	// syncer.persistSync).
	saveSlots chan struct{}
	// startSlots bounds the first syncs in flight (see syncer.run).
	startSlots *startGate

	// Client cursors waiting to be saved. The cursor writer (cursorLoop)
	// is the only goroutine that writes cursors to the store, in group
	// commits; everyone else queues updates here.
	cursorMu      sync.Mutex
	cursorOps     []store.CursorUpdate
	cursorWaiters []chan error
	cursorWake    chan struct{}
	cursorDone    chan struct{}
	stopCursors   context.CancelFunc
	cursorCommits atomic.Int64 // transactions of the cursor writer

	// The lurkers' shared account (lurk.go): guestMu serialises finding
	// or registering it, and guards guestAcct; guestUser (under mu) is
	// a registered guest's Matrix ID, whose session has no encryption.
	guestMu   sync.Mutex
	guestAcct *store.Account
	guestUser id.UserID
	lurking   atomic.Int64 // lurkers attached (counted in attached too)

	// keep looks after the accounts registered for connections without
	// a login (autoreg_keep.go); nil when there is no key to seal their
	// passwords with.
	keep *keeper
}

// DefaultConfig is the Matrix side's settings where none are given, and
// what the gateway's configuration starts from: the one place these
// defaults live. NewManager takes each zero field of its Config from
// here, except those whose zero means something (the booleans,
// ReplayLimit), which it takes as given.
func DefaultConfig() Config {
	return Config{
		DeviceName:         "mxircd",
		SyncTimeout:        30 * time.Second,
		TimelineLimit:      100,
		OpLevel:            mapping.OpLevel,
		AlwaysOn:           true,
		AwayWhenDetached:   true,
		ReplayLimit:        100,
		HistoryPerRoom:     5000,
		RoomCreateBurst:    5,
		RoomCreateInterval: time.Minute,
		ServiceNick:        DefaultServiceNick,
		EncryptNewDMs:      true,
		PasswordRecheck:    DefaultPasswordRecheck,
		SSOLinkTTL:         10 * time.Minute,
		AcceptDMInvites:    AcceptDMInvitesKnown,
		Guests:             GuestConfig{HistoryOnJoin: 20, MaxChannels: 20},
		LazyMembers:        true,
	}
}

func NewManager(cfg Config, st store.Store) *Manager {
	d := DefaultConfig()
	cfg.ServiceNick = cmp.Or(cfg.ServiceNick, d.ServiceNick)
	cfg.DeviceName = cmp.Or(cfg.DeviceName, d.DeviceName)
	cfg.SyncTimeout = cmp.Or(cfg.SyncTimeout, d.SyncTimeout)
	cfg.TimelineLimit = cmp.Or(cfg.TimelineLimit, d.TimelineLimit)
	cfg.OpLevel = cmp.Or(cfg.OpLevel, d.OpLevel)
	cfg.HistoryPerRoom = cmp.Or(cfg.HistoryPerRoom, d.HistoryPerRoom)
	cfg.RoomCreateBurst = cmp.Or(cfg.RoomCreateBurst, d.RoomCreateBurst)
	cfg.RoomCreateInterval = cmp.Or(cfg.RoomCreateInterval, d.RoomCreateInterval)
	cfg.SSOLinkTTL = cmp.Or(cfg.SSOLinkTTL, d.SSOLinkTTL)
	cfg.AcceptDMInvites = cmp.Or(cfg.AcceptDMInvites, d.AcceptDMInvites)
	cfg.Guests.MaxChannels = cmp.Or(cfg.Guests.MaxChannels, d.Guests.MaxChannels)
	if cfg.PasswordRecheck <= 0 {
		cfg.PasswordRecheck = d.PasswordRecheck
	}
	if cfg.HTTPClient == nil {
		// No overall timeout: long-poll syncs set their own through ctx.
		// Every session keeps a long-poll open; over HTTP/1.1 each needs
		// its own connection, and the default of two idle connections per
		// host would close and reopen most of them after every sync.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 0
		t.MaxIdleConnsPerHost = 16384
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	if cfg.WrapTransport != nil {
		wrapped := *cfg.HTTPClient
		wrapped.Transport = cfg.WrapTransport(wrapped.Transport)
		cfg.HTTPClient = &wrapped
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:         cfg,
		store:       st,
		log:         cfg.Logger,
		sessions:    map[id.UserID]*Session{},
		ending:      map[id.UserID]*Session{},
		attached:    map[*Session]int{},
		userLocks:   map[id.UserID]*userLock{},
		shared:      newStateRegistry(),
		members:     newMemberFetcher(memberFetchesAtOnce),
		encrypted:   newEncryptedRooms(),
		saveSlots:   make(chan struct{}, concurrentSaves),
		startSlots:  newStartGate(concurrentFirstSyncs),
		cursorWake:  make(chan struct{}, 1),
		cursorDone:  make(chan struct{}),
		stopCursors: cancel,
	}
	m.auth = &Authenticator{cfg: &m.cfg, store: st, log: m.log, passwords: newPasswordCache(), failures: newAccountFailures(), lockUser: m.lockUser}
	m.auth.browser = newBrowserLogins(&m.cfg, st)
	go m.cursorLoop(ctx)
	go m.pruneLoop(ctx)
	m.startKeeper()
	return m
}

// concurrentSaves is how many sync responses are stored at once. More
// would only wait for the store's connections and fight over its events
// lock.
const concurrentSaves = 8

// concurrentFirstSyncs is how many sessions make their first sync at once.
// A restart resumes every always-on session; without a bound each would
// hold its parsed full-state response while waiting to store it, and
// 10,000 of them took all of a 24 GiB machine. The store takes eight at a
// time; a few more keep the homeserver's answers coming meanwhile.
const concurrentFirstSyncs = 24

// pruneEvery is how often the event store is trimmed to its window.
const pruneEvery = 10 * time.Minute

// pruneLoop keeps every room's stored history within HistoryPerRoom
// events. Rooms are stored once for all accounts, so this is one job for
// the gateway, not one per session.
func (m *Manager) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.safely("pruner", func() { m.prune(ctx) })
		}
	}
}

func (m *Manager) prune(ctx context.Context) {
	keep := m.cfg.HistoryPerRoom
	rooms, err := m.store.RoomsOver(ctx, keep)
	if err != nil {
		m.log.Warn("could not find rooms to prune", "err", err)
		return
	}
	for _, roomID := range rooms {
		if err := m.store.Prune(ctx, roomID, keep); err != nil {
			m.log.Warn("could not prune stored history", "room", roomID, "err", err)
		}
	}
	if len(rooms) > 0 {
		m.log.Info("pruned stored history", "rooms", len(rooms), "kept_per_room", keep)
	}
}

// userLock serialises logins of one account, so two clients connecting at
// once share one session and one device. users counts the logins holding
// or waiting for it; at none it leaves userLocks, which so holds only the
// accounts being logged in to, whatever names are tried. Guarded by
// Manager.mu, apart from the mutex itself.
type userLock struct {
	sync.Mutex
	users int
}

// lockUser takes the account's login lock, and returns what releases it.
func (m *Manager) lockUser(user id.UserID) (unlock func()) {
	m.mu.Lock()
	l := m.userLocks[user]
	if l == nil {
		l = &userLock{}
		m.userLocks[user] = l
	}
	l.users++
	m.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.userLocks, user)
		}
		m.mu.Unlock()
	}
}

// Login checks account and password and attaches client to the account's
// session, starting it if needed. It may take as long as the homeserver
// does, bounded by ctx. Called on the client's reader goroutine.
func (m *Manager) Login(ctx context.Context, account, password string, client Client) (*Attachment, error) {
	from := ""
	if ra, ok := client.(interface{ RemoteAddr() net.Addr }); ok && ra.RemoteAddr() != nil {
		from = ra.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(from); err == nil {
			from = host
		}
	}
	creds, err := m.auth.Password(ctx, account, password, from)
	if err != nil {
		return nil, err
	}
	return m.Start(ctx, creds, client)
}

// Authenticator is where clients' credentials are checked.
func (m *Manager) Authenticator() *Authenticator { return m.auth }

// Start attaches client to the session of the account creds proved,
// starting the session if none runs. It releases creds. Called on the
// client's reader goroutine.
func (m *Manager) Start(ctx context.Context, creds *Credentials, client Client) (*Attachment, error) {
	defer creds.Release()
	user, acct := creds.User, creds.Account
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("server is shutting down")
	}
	sess := m.sessions[user]
	if sess != nil {
		m.attached[sess]++
		m.keptAttachedLocked(user)
		m.mu.Unlock()
		switch {
		case creds.grant != nil:
			sess.adoptGrant(creds.grant, acct.AccessToken)
		case !creds.stored:
			sess.setToken(acct.AccessToken)
		}
		return m.newAttachment(ctx, sess, client, creds), nil
	}
	ending := m.ending[user]
	m.mu.Unlock()
	if ending != nil {
		// The last session is still sending what its clients queued, and
		// saving what it learned; start from where it ends.
		select {
		case <-ending.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	cli, err := newClient(&m.cfg, acct.Homeserver, user, acct.AccessToken)
	if err != nil {
		return nil, err
	}
	// Before the first request, so that an expired token is renewed.
	oauth, err := m.useOAuthGrant(ctx, cli)
	if err != nil {
		return nil, err
	}
	if creds.stored {
		if err := renewIfRefused(ctx, cli, oauth); err != nil {
			return nil, err
		}
	}
	if err := m.auth.checkToken(ctx, creds, cli); err != nil {
		return nil, err
	}
	sess, err = m.launch(ctx, cli, acct, oauth, 1, creds.displayName)
	if err != nil {
		return nil, err
	}
	return m.newAttachment(ctx, sess, client, creds), nil
}

// newAttachment makes the attachment of a client that logged in with
// creds, with its client name's settings.
func (m *Manager) newAttachment(ctx context.Context, sess *Session, client Client, creds *Credentials) *Attachment {
	a := newAttachment(sess, client, creds.ClientName)
	a.tagsOnly.Store(m.loadTagsOnly(ctx, creds.User, creds.ClientName))
	return a
}

// launch loads what the session resumes from and starts it with refs
// attachments; oauth says cli renews its token through an OAuth grant.
func (m *Manager) launch(ctx context.Context, cli *mautrix.Client, acct *store.Account, oauth *grantRotator, refs int, name string) (*Session, error) {
	user := cli.UserID
	cli.DeviceID = id.DeviceID(acct.DeviceID)
	names, err := m.store.ChannelNames(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("loading channel names: %w", err)
	}
	since, head, err := m.store.SyncState(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("loading the sync position: %w", err)
	}
	outbox, err := m.store.Outbox(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("loading unsent messages: %w", err)
	}
	roomsFullAt, err := m.store.RoomCreateFullAt(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("loading the room-creation budget: %w", err)
	}
	readMarks, err := m.store.ReadMarkers(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("loading read markers: %w", err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("server is shutting down")
	}
	sess := newSession(m, cli)
	sess.grant = oauth
	sess.ownName = name
	sess.noCrypto = user == m.guestUser
	sess.guest = sess.noCrypto
	for roomID, name := range names {
		sess.savedNames[roomID] = name
	}
	sess.readMarks = readMarks
	sess.syncer, sess.head = newSyncer(sess, since), head
	sess.alwaysOn.Store(m.cfg.AlwaysOn)
	if acct.AlwaysOn != nil {
		sess.alwaysOn.Store(*acct.AlwaysOn)
	}
	// Until a client attaches, the account shows as away if configured.
	sess.detachedAway.Store(m.cfg.AwayWhenDetached && refs == 0)
	sess.unsent = outbox
	sess.newRooms = roomLimiter(m.cfg.RoomCreateInterval, m.cfg.RoomCreateBurst, roomsFullAt, time.Now())
	if refs > 0 {
		m.attached[sess] = refs
		m.keptAttachedLocked(user)
	}
	m.sessions[user] = sess
	m.running.Add(1)
	go func() {
		defer m.running.Done()
		sess.run()
		m.mu.Lock()
		if m.ending[sess.user] == sess {
			delete(m.ending, sess.user)
		}
		m.mu.Unlock()
	}()
	return sess, nil
}

// release drops one attachment's hold on a session and stops the session
// when no client is left, unless it is always-on. Any goroutine.
func (m *Manager) release(sess *Session) {
	m.mu.Lock()
	refs := m.attached[sess] - 1
	if refs > 0 {
		m.attached[sess] = refs
	} else {
		delete(m.attached, sess)
		m.keptLeftLocked(sess.user)
	}
	stop := refs == 0 && m.sessions[sess.user] == sess && !sess.alwaysOn.Load()
	if stop {
		delete(m.sessions, sess.user)
		m.ending[sess.user] = sess
	}
	m.mu.Unlock()
	if stop {
		sess.stop()
	}
}

// sessionOf is the running session of user, if there is one here. Any
// goroutine.
func (m *Manager) sessionOf(user id.UserID) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[user]
}

// forget removes a session that ended by itself (its token was revoked).
func (m *Manager) forget(sess *Session) {
	m.mu.Lock()
	if m.sessions[sess.user] == sess {
		delete(m.sessions, sess.user)
	}
	m.mu.Unlock()
}

// Close stops every session and waits for them, until ctx ends.
func (m *Manager) Close(ctx context.Context) error {
	if err := m.stopKeeper(ctx); err != nil {
		m.log.Warn("the keeper of auto-registered accounts did not stop in time", "err", err)
	}
	m.mu.Lock()
	m.closed = true
	var all []*Session
	for _, s := range m.sessions {
		all = append(all, s)
	}
	clear(m.sessions)
	m.mu.Unlock()
	for _, s := range all {
		s.stop()
	}
	done := make(chan struct{})
	go func() {
		m.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Every client has been written to: save where each one is.
	m.stopCursors()
	select {
	case <-m.cursorDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SessionCount is the number of sessions running, including stopped ones
// still finishing their queued requests.
func (m *Manager) SessionCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions) + len(m.ending)
}

// CursorCommits is how many transactions the cursor writer has made, for
// the debug counters. Any goroutine.
func (m *Manager) CursorCommits() int64 { return m.cursorCommits.Load() }

// BusySessions is the number of sessions with homeserver or store
// requests running or waiting. Any goroutine.
func (m *Manager) BusySessions() int {
	m.mu.Lock()
	all := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	n := 0
	for _, s := range all {
		if s.jobs.busy() || s.side.busy() {
			n++
		}
	}
	return n
}

// matrixErrorText is the homeserver's own explanation when there is one.
func matrixErrorText(err error) string { return plainError(err) }

// ResumeAll starts, in the background, the session of every always-on
// account that has a token, as they were before the gateway stopped. Any
// goroutine; call once at start-up.
func (m *Manager) ResumeAll() {
	m.running.Add(1)
	go func() {
		defer m.running.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		users, err := m.store.AlwaysOnAccounts(ctx, m.cfg.AlwaysOn)
		cancel()
		if err != nil {
			m.log.Error("cannot list always-on accounts; they resume when their clients connect", "err", err)
			return
		}
		// A few at a time, so thousands of accounts do not all hit the
		// store and the homeserver in the same second.
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for _, u := range users {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				m.safely("resume worker", func() {
					if err := m.resume(u); err != nil {
						m.log.Warn("could not resume always-on session", "user", u, "err", err)
					}
				})
			}()
		}
		wg.Wait()
		if len(users) > 0 {
			m.log.Info("resumed always-on sessions", "count", len(users))
		}
	}()
}

func (m *Manager) resume(user id.UserID) error {
	defer m.lockUser(user)()
	m.mu.Lock()
	_, running := m.sessions[user]
	closed := m.closed
	m.mu.Unlock()
	if running || closed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acct, err := m.store.Account(ctx, user)
	if err != nil {
		return err
	}
	if acct.AccessToken == "" {
		return nil
	}
	// The sync loop finds out if the token is no longer good, and waits
	// out a homeserver that is down.
	cli, err := newClient(&m.cfg, acct.Homeserver, user, acct.AccessToken)
	if err != nil {
		return err
	}
	// Before the first request, so that an expired token is renewed.
	oauth, err := m.useOAuthGrant(ctx, cli)
	if err != nil {
		return err
	}
	_, err = m.launch(ctx, cli, acct, oauth, 0, "")
	return err
}

// setAlwaysOn saves an account's always-on setting; nil follows the
// gateway's default.
func (m *Manager) setAlwaysOn(ctx context.Context, user id.UserID, on *bool) error {
	acct, err := m.store.Account(ctx, user)
	if err != nil {
		return err
	}
	acct.AlwaysOn = on
	return m.store.PutAccount(ctx, acct)
}

// cursorWait bounds how long a client's writer waits for its cursor to be
// saved before it sends anyway (a crash then may show those lines twice).
const cursorWait = 2 * time.Second

// commitCursor saves that a client has been given the stream up to seq,
// and returns once that is durable (or after cursorWait). It is called by
// the client's writer just before it writes the lines, so a crash cannot
// show the client lines it has already seen. Clients' saves are grouped
// into one transaction. Any goroutine.
func (m *Manager) commitCursor(user id.UserID, client string, seq int64) {
	done := make(chan error, 1)
	m.queueCursor(store.CursorUpdate{UserID: user, Client: client, Seq: seq}, done)
	select {
	case <-done:
	case <-time.After(cursorWait):
		m.log.Warn("saving a client's position is slow; sending anyway", "user", user, "client", client)
	case <-m.cursorDone:
	}
}

// saveCursor moves a client's cursor forward to seq through the cursor
// writer, the one writer of cursors, and waits until it is saved. Any
// goroutine but the cursor writer.
func (m *Manager) saveCursor(ctx context.Context, user id.UserID, client string, seq int64) error {
	done := make(chan error, 1)
	m.queueCursor(store.CursorUpdate{UserID: user, Client: client, Seq: seq}, done)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-m.cursorDone:
		return errors.New("the gateway is stopping")
	}
}

// resetCursor moves a client's cursor back to seq after a write to it
// failed. Any goroutine; never blocks.
func (m *Manager) resetCursor(user id.UserID, client string, seq int64) {
	m.queueCursor(store.CursorUpdate{UserID: user, Client: client, Seq: seq, Force: true}, nil)
}

func (m *Manager) queueCursor(u store.CursorUpdate, done chan error) {
	m.cursorMu.Lock()
	m.cursorOps = append(m.cursorOps, u)
	if done != nil {
		m.cursorWaiters = append(m.cursorWaiters, done)
	}
	m.cursorMu.Unlock()
	select {
	case m.cursorWake <- struct{}{}:
	default:
	}
}

// cursorLoop writes client cursors as they come, all that came during the
// previous write in one transaction; after ctx ends it writes what is left.
func (m *Manager) cursorLoop(ctx context.Context) {
	defer close(m.cursorDone)
	for {
		select {
		case <-m.cursorWake:
			m.safely("cursor writer", m.flushCursors)
		case <-ctx.Done():
			m.safely("cursor writer", m.flushCursors)
			return
		}
	}
}

func (m *Manager) flushCursors() {
	m.cursorMu.Lock()
	ops, waiters := m.cursorOps, m.cursorWaiters
	m.cursorOps, m.cursorWaiters = nil, nil
	m.cursorMu.Unlock()
	if len(ops) == 0 {
		return
	}
	// The waiters hear back even if the store panics.
	err := errors.New("saving the positions failed")
	defer func() {
		for _, w := range waiters {
			w <- err
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = m.store.PutCursors(ctx, ops)
	cancel()
	m.cursorCommits.Add(1)
	if err != nil {
		// The clients get these events again on their next connect.
		m.log.Warn("could not save clients' positions", "count", len(ops), "err", err)
	}
}

// safely runs f, one round of a long-lived manager goroutine (the cursor
// writer, the pruner, a resume worker), and logs a panic in it with its
// stack instead of ending the gateway; the goroutine goes on with its
// next round. It reports whether f returned normally.
func (m *Manager) safely(what string, f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in the session manager", "part", what, "panic", r, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	f()
	return true
}
