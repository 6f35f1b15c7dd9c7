package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// Keeping auto-registered accounts (autoregister.keep_for): an account
// made for a connection without a login is the gateway's to look after.
// It is recorded when it is registered, with its password sealed
// (AutoRegisterKeyFrom); when its last client leaves, that time is
// recorded, and cleared when a client logs in to it again. The keeper
// (keepLoop, one goroutine per manager) saves those times and, once an
// account has had no client for KeepFor, stops its session, deactivates
// it on the homeserver with its password, deletes what the store holds
// of it, and forgets it. A failure is logged and tried again the next
// round; it holds up no other account.
//
// What the keeper knows (keeper.accounts and keeper.dirty) is guarded
// by Manager.mu, next to the attachment counts it follows: Start and
// launch mark an account attached, release marks it left. The keeper
// goroutine is the one writer of left_at, so saves cannot overtake each
// other. Logins to an account wait for its login lock (lockUser), which
// the keeper holds while it expires the account, so no client can
// attach to a session being ended or to an account being deactivated.

// DefaultAutoRegisterKeepFor is how long an auto-registered account is
// kept after its last client leaves, unless configured.
const DefaultAutoRegisterKeepFor = 24 * time.Hour

// keeper is the manager's record of the accounts it registered.
type keeper struct {
	key     []byte        // seals passwords at rest (AutoRegisterKeyFrom)
	keepFor time.Duration // 0: kept forever
	period  time.Duration // how often accounts are looked at

	// Under Manager.mu.
	accounts map[id.UserID]*keptAccount
	dirty    map[id.UserID]bool // to save: left_at, or the whole row when unsaved

	wake chan struct{} // something to save
	stop context.CancelFunc
	done chan struct{} // closed when keepLoop has ended
}

type keptAccount struct {
	sealed []byte
	leftAt time.Time // zero while a client is attached
	// unsaved says the account's row is not in the store yet (the
	// first save failed).
	unsaved bool
}

// AutoRegisterKeyFrom derives the key that seals the passwords of
// auto-registered accounts at rest from the pickle key, kept outside the
// database, so that it differs from the crypto store's and the outbox's.
func AutoRegisterKeyFrom(pickleKey []byte) []byte {
	sum := sha256.Sum256(append([]byte("mxircd autoregister password at rest\x00"), pickleKey...))
	return sum[:]
}

// sealPassword seals an account's password; the account is bound to it,
// so a sealed password cannot be moved to another account's row.
func sealPassword(key []byte, user id.UserID, password string) ([]byte, error) {
	aead, err := outboxAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(password)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(password), []byte("autoregister\x00"+string(user))), nil
}

// openPassword undoes sealPassword.
func openPassword(key []byte, user id.UserID, sealed []byte) (string, error) {
	aead, err := outboxAEAD(key)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed password too short")
	}
	pw, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte("autoregister\x00"+string(user)))
	if err != nil {
		return "", fmt.Errorf("opening the sealed password of %s (was the pickle key replaced?): %w", user, err)
	}
	return string(pw), nil
}

// keepPeriod is how often the keeper looks for accounts to deactivate: a
// tenth of keepFor, at least a second and at most a minute.
func keepPeriod(keepFor time.Duration) time.Duration {
	return min(max(keepFor/10, time.Second), time.Minute)
}

// startKeeper starts the keeper when the gateway can seal passwords.
// Called once by NewManager.
func (m *Manager) startKeeper() {
	ar := m.cfg.AutoRegister
	if len(ar.PasswordKey) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.keep = &keeper{
		key: ar.PasswordKey, keepFor: ar.KeepFor, period: keepPeriod(ar.KeepFor),
		accounts: map[id.UserID]*keptAccount{}, dirty: map[id.UserID]bool{},
		wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{}),
	}
	go m.keepLoop(ctx)
}

// stopKeeper ends the keeper and waits for it, until ctx ends.
func (m *Manager) stopKeeper(ctx context.Context) error {
	if m.keep == nil {
		return nil
	}
	m.keep.stop()
	select {
	case <-m.keep.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// keepRegistered records an account just registered, its client about
// to attach. A failure to store it is logged; the keeper tries again.
// Reader goroutine.
func (m *Manager) keepRegistered(ctx context.Context, user id.UserID, password string) {
	k := m.keep
	if k == nil {
		m.log.Warn("an account was registered that the gateway cannot deactivate later: it has no key to keep its password with", "user", user)
		return
	}
	sealed, err := sealPassword(k.key, user, password)
	if err != nil {
		m.log.Error("could not seal the password of an account just registered; it is kept forever", "user", user, "err", err)
		return
	}
	m.mu.Lock()
	k.accounts[user] = &keptAccount{sealed: sealed}
	m.mu.Unlock()
	err = m.store.PutAutoRegistered(ctx, &store.AutoRegistered{UserID: user, SealedPassword: sealed})
	if err != nil {
		m.log.Warn("could not record an account just registered; trying again later", "user", user, "err", err)
		m.mu.Lock()
		if ka := k.accounts[user]; ka != nil {
			ka.unsaved = true
			k.dirty[user] = true
		}
		m.mu.Unlock()
		k.poke()
	}
}

// keepLeft marks an account just registered as left when no client
// attached to it after all (the login or the start failed). Reader
// goroutine.
func (m *Manager) keepLeft(user id.UserID) {
	if m.keep == nil {
		return
	}
	m.mu.Lock()
	if sess := m.sessions[user]; sess == nil || m.attached[sess] == 0 {
		m.keptLeftLocked(user)
	}
	m.mu.Unlock()
}

// keptAttachedLocked notes that a client attached to user's session.
// Manager.mu held.
func (m *Manager) keptAttachedLocked(user id.UserID) {
	k := m.keep
	if k == nil {
		return
	}
	if ka := k.accounts[user]; ka != nil && !ka.leftAt.IsZero() {
		ka.leftAt = time.Time{}
		k.dirty[user] = true
		k.poke()
	}
}

// keptLeftLocked notes that the last client of user's session left.
// Manager.mu held.
func (m *Manager) keptLeftLocked(user id.UserID) {
	k := m.keep
	if k == nil {
		return
	}
	if cur := m.sessions[user]; cur != nil && m.attached[cur] > 0 {
		return // an older session's last client; the account has others
	}
	if ka := k.accounts[user]; ka != nil && ka.leftAt.IsZero() {
		ka.leftAt = time.Now()
		k.dirty[user] = true
		k.poke()
	}
}

// poke wakes the keeper to save what changed. Never blocks.
func (k *keeper) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// keepLoop is the keeper goroutine: it loads the recorded accounts, saves
// changes as they come, and looks for accounts to deactivate every
// period.
func (m *Manager) keepLoop(ctx context.Context) {
	k := m.keep
	defer close(k.done)
	t := time.NewTicker(k.period)
	defer t.Stop()
	loaded := false
	for {
		if !loaded {
			m.safely("keeper", func() { loaded = m.loadKept(ctx) })
		}
		m.safely("keeper", func() { m.saveKept(ctx) })
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
		case <-t.C:
			if loaded && k.keepFor > 0 {
				m.safely("keeper", func() { m.expireKept(ctx) })
			}
		}
	}
}

// loadKept reads the recorded accounts; false when the store could not
// say (tried again next round). An account recorded without a client
// attached counts as left when the gateway started, if not before: a
// client attached when the gateway stopped is gone now.
func (m *Manager) loadKept(ctx context.Context) bool {
	k := m.keep
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	all, err := m.store.AutoRegisteredAccounts(rctx)
	cancel()
	if err != nil {
		m.log.Warn("could not load the auto-registered accounts; trying again", "err", err)
		return false
	}
	now := time.Now()
	m.mu.Lock()
	for _, a := range all {
		if k.accounts[a.UserID] != nil {
			continue // registered since the start
		}
		ka := &keptAccount{sealed: a.SealedPassword, leftAt: a.LeftAt}
		sess := m.sessions[a.UserID]
		switch attached := sess != nil && m.attached[sess] > 0; {
		case attached && !ka.leftAt.IsZero():
			ka.leftAt = time.Time{}
			k.dirty[a.UserID] = true
		case !attached && ka.leftAt.IsZero():
			ka.leftAt = now
			k.dirty[a.UserID] = true
		}
		k.accounts[a.UserID] = ka
	}
	m.mu.Unlock()
	if len(all) > 0 {
		m.log.Info("loaded the auto-registered accounts", "count", len(all), "keep_for", k.keepFor)
	}
	return true
}

// saveKept saves what changed since the last save; what fails stays to
// save next round.
func (m *Manager) saveKept(ctx context.Context) {
	k := m.keep
	type change struct {
		user    id.UserID
		row     store.AutoRegistered
		unsaved bool
	}
	m.mu.Lock()
	changes := make([]change, 0, len(k.dirty))
	for user := range k.dirty {
		if ka := k.accounts[user]; ka != nil {
			changes = append(changes, change{user, store.AutoRegistered{UserID: user, SealedPassword: ka.sealed, LeftAt: ka.leftAt}, ka.unsaved})
		}
	}
	clear(k.dirty)
	m.mu.Unlock()
	for _, c := range changes {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		if c.unsaved {
			err = m.store.PutAutoRegistered(sctx, &c.row)
		} else {
			err = m.store.SetAutoRegisteredLeft(sctx, c.user, c.row.LeftAt)
		}
		cancel()
		m.mu.Lock()
		if ka := k.accounts[c.user]; ka != nil {
			if err == nil && c.unsaved {
				ka.unsaved = false
			} else if err != nil {
				k.dirty[c.user] = true
			}
		}
		m.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			m.log.Warn("could not save when an auto-registered account was last used; trying again", "user", c.user, "err", err)
		}
	}
}

// expireKept deactivates each account whose last client left more than
// keepFor ago, one after the other.
func (m *Manager) expireKept(ctx context.Context) {
	k := m.keep
	now := time.Now()
	var due []id.UserID
	m.mu.Lock()
	for user, ka := range k.accounts {
		if !ka.leftAt.IsZero() && now.Sub(ka.leftAt) >= k.keepFor {
			due = append(due, user)
		}
	}
	m.mu.Unlock()
	for _, user := range due {
		if ctx.Err() != nil {
			return
		}
		m.safely("keeper", func() {
			if err := m.expire(ctx, user); err != nil && ctx.Err() == nil {
				m.log.Warn("could not deactivate an auto-registered account nobody uses; trying again later", "user", user, "err", err)
			}
		})
	}
}

// sessionStopWait bounds how long the keeper waits for the session of an
// account it deactivates to end (it finishes its queued requests first,
// at most 15 s).
const sessionStopWait = 30 * time.Second

// expire ends one account whose last client left keepFor ago: its
// session, its Matrix account, what the store holds of it. Keeper
// goroutine.
func (m *Manager) expire(ctx context.Context, user id.UserID) error {
	k := m.keep
	// No login can attach to the account meanwhile.
	defer m.lockUser(user)()
	m.mu.Lock()
	ka := k.accounts[user]
	if m.closed || ka == nil || ka.leftAt.IsZero() || time.Since(ka.leftAt) < k.keepFor {
		m.mu.Unlock()
		return nil // a client came back
	}
	sealed, left := ka.sealed, ka.leftAt
	sess := m.sessions[user]
	if sess != nil {
		if m.attached[sess] > 0 {
			m.mu.Unlock()
			return nil
		}
		delete(m.sessions, user)
		m.ending[user] = sess
	} else {
		sess = m.ending[user]
	}
	m.mu.Unlock()
	if sess != nil {
		sess.stop()
		select {
		case <-sess.done:
		case <-time.After(sessionStopWait):
			return errors.New("its session did not end in time")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	password, err := openPassword(k.key, user, sealed)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	forget := true // delete the store's copy of the account too
	switch err := m.deactivate(dctx, user, password); {
	case errors.Is(err, errAccountGone):
		m.log.Info("an auto-registered account no longer takes its password (deactivated already, or taken over); forgetting it", "user", user)
	case errors.Is(err, errPasswordChanged):
		// Someone changed the password: the account is theirs now.
		m.log.Info("the password of an auto-registered account was changed; it is kept and no longer deactivated", "user", user)
		forget = false
	case err != nil:
		return err
	default:
		m.log.Info("deactivated an auto-registered account nobody used for a while", "user", user, "left", left, "keep_for", k.keepFor)
	}
	if forget {
		if err := m.store.DeleteAccount(dctx, user); err != nil {
			return err
		}
		if m.cfg.CryptoStore != nil {
			if err := m.store.DeleteCryptoState(dctx, user); err != nil {
				return err
			}
		}
		m.auth.passwords.forget(user.String())
	}
	if err := m.store.ForgetAutoRegistered(dctx, user); err != nil {
		return err
	}
	m.mu.Lock()
	delete(k.accounts, user)
	delete(k.dirty, user)
	m.mu.Unlock()
	return nil
}

var (
	// errAccountGone: the homeserver does not log in to the account with
	// its password (it is deactivated, or its password was changed
	// while its token was revoked).
	errAccountGone = errors.New("the account does not log in with its password any more")
	// errPasswordChanged: the account's token works but the homeserver
	// refuses its password.
	errPasswordChanged = errors.New("the homeserver refused the account's password")
)

// deactivate deactivates the account on its homeserver
// (/account/deactivate, user-interactive authentication with its
// password), with its stored token, or a login with its password when
// there is none or it is refused. Keeper goroutine.
func (m *Manager) deactivate(ctx context.Context, user id.UserID, password string) error {
	acct, err := m.store.Account(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		acct = &store.Account{UserID: user}
	} else if err != nil {
		return err
	}
	hs := acct.Homeserver
	if hs == "" {
		if hs, err = homeserverFor(ctx, &m.cfg, user); err != nil {
			return err
		}
	}
	if acct.AccessToken != "" {
		cli, err := newClient(&m.cfg, hs, user, acct.AccessToken)
		if err != nil {
			return err
		}
		err = deactivateAccount(ctx, cli, password)
		if !errors.Is(err, mautrix.MUnknownToken) {
			return err
		}
	}
	cli, err := newClient(&m.cfg, hs, user, "")
	if err != nil {
		return err
	}
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user.String()},
		Password:                 password,
		InitialDeviceDisplayName: m.cfg.DeviceName,
		StoreCredentials:         true,
	})
	switch {
	case errors.Is(err, mautrix.MForbidden), errors.Is(err, mautrix.MUserDeactivated):
		return errAccountGone
	case err != nil:
		return fmt.Errorf("logging in to deactivate: %s", matrixErrorText(err))
	}
	return deactivateAccount(ctx, cli, password)
}

// deactivateAccount asks for the account of cli to be deactivated: the
// first request learns the user-interactive session, the second proves
// the password in it.
func deactivateAccount(ctx context.Context, cli *mautrix.Client, password string) error {
	url := cli.BuildClientURL("v3", "account", "deactivate")
	body, err := cli.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPost, URL: url, RequestJSON: struct{}{}})
	var httpErr mautrix.HTTPError
	if err == nil || !errors.As(err, &httpErr) || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusUnauthorized {
		return err // done without a password, or refused
	}
	var uia mautrix.RespUserInteractive
	if json.Unmarshal(body, &uia) != nil && json.Unmarshal([]byte(httpErr.ResponseBody), &uia) != nil {
		return err
	}
	if !uia.HasSingleStageFlow(mautrix.AuthTypePassword) {
		return fmt.Errorf("the homeserver wants a kind of confirmation the gateway cannot give (%v)", uia.Flows)
	}
	auth := passwordAuth(uia.Session, cli.UserID, password)
	_, err = cli.MakeFullRequest(ctx, mautrix.FullRequest{
		Method: http.MethodPost, URL: url, RequestJSON: map[string]any{"auth": auth}, SensitiveContent: true,
	})
	if errors.As(err, &httpErr) && httpErr.Response != nil && httpErr.Response.StatusCode == http.StatusUnauthorized {
		return errPasswordChanged
	}
	return err
}
