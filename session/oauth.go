package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxircd/mxircd/store"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// An account that logged in through OAuth 2.0 (package oauth) has a grant
// in the store: a refresh token that renews its access token. mautrix's
// client does the renewing: before any request when the token is about to
// expire, and, through renewToken, when the homeserver refuses the token
// early. Each renewal is stored (RotateOAuthGrant, refresh token and access
// token in one transaction) before mautrix uses the new tokens.

// Two limits of mautrix to know: a token response without expires_in makes
// it take the new token as expired at once (MAS always sends expires_in);
// and Session.setToken (a password login while the session runs) clears
// the grant from the client, after which a refused token ends the session
// and the stale grant is forgotten.

// noExpiry stands in for an access token the server gave no lifetime:
// mautrix would otherwise take the zero time as expired and refresh before
// every request. Such a token is renewed when the homeserver refuses it.
const noExpiry = 100 * 365 * 24 * time.Hour

// errGrantRevoked says the account's OAuth grant is over: the refresh token
// was revoked or expired, so the user must log in again.
var errGrantRevoked = errors.New("the Matrix login was revoked")

// grantRotator stores each renewal of a session's OAuth grant. Every
// session's client has one (as SaveNewToken, which mautrix reads without
// a lock of ours, so it is set once, before the session starts); it is
// active once the account has a grant, from the start or from a browser
// login while the session runs (adoptGrant).
type grantRotator struct {
	store  store.Store
	log    *slog.Logger
	user   id.UserID
	active atomic.Bool

	// refusedSince is when the homeserver first refused the session's
	// token or grant while a browser login was under way. Sync loop.
	refusedSince time.Time

	mu       sync.Mutex // guards the fields below
	clientID string
	current  string // the refresh token last stored
}

func (r *grantRotator) set(clientID, refreshToken string) {
	r.mu.Lock()
	r.clientID, r.current = clientID, refreshToken
	r.mu.Unlock()
	r.active.Store(true)
}

// save is mautrix's SaveNewToken: the new tokens are stored (a
// compare-and-swap on the refresh token last stored) before mautrix uses
// them. mautrix calls it under its refresh lock, one at a time.
func (r *grantRotator) save(ctx context.Context, refreshToken, accessToken string, expiry time.Time) error {
	r.mu.Lock()
	current, clientID := r.current, r.clientID
	r.mu.Unlock()
	next := &store.OAuthGrant{UserID: r.user, ClientID: clientID, RefreshToken: refreshToken, Expires: expiry}
	if err := r.store.RotateOAuthGrant(ctx, current, accessToken, next); err != nil {
		return err
	}
	r.mu.Lock()
	if r.current == current {
		r.current = refreshToken
	}
	r.mu.Unlock()
	r.log.Info("renewed the Matrix access token", "user", r.user, "expires", expiry)
	return nil
}

// useOAuthGrant gives cli its grant rotator, and makes cli renew its
// access token through the account's OAuth grant, if it has one. Called
// before the session starts.
func (m *Manager) useOAuthGrant(ctx context.Context, cli *mautrix.Client) (*grantRotator, error) {
	rot := &grantRotator{store: m.store, log: m.log, user: cli.UserID}
	cli.SaveNewToken = rot.save
	g, err := m.store.OAuthGrant(ctx, cli.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return rot, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading the OAuth grant: %w", err)
	}
	rot.set(g.ClientID, g.RefreshToken)
	expires := g.Expires
	if expires.IsZero() {
		expires = time.Now().Add(noExpiry)
	}
	cli.OAuthSetTokens(g.ClientID, g.RefreshToken, cli.AccessToken, expires)
	return rot, nil
}

// renewIfRefused renews, through the account's grant, a stored access
// token that the homeserver refuses before its time (it was logged out
// while nothing ran), so that a login with an app password, which cannot
// log in to Matrix again, still finds a session to start. Called before
// the session starts.
func renewIfRefused(ctx context.Context, cli *mautrix.Client, rot *grantRotator) error {
	if !rot.active.Load() {
		return nil
	}
	if _, err := cli.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		return nil // checkToken deals with anything else
	}
	// A buffer longer than any token lives makes mautrix refresh now.
	if err := cli.OAuthRefreshToken(ctx, 2*noExpiry); err != nil {
		return fmt.Errorf("renewing the access token through the OAuth grant: %w", err)
	}
	return nil
}

// adoptGrant makes a running session renew its token through a grant a
// browser login has just stored (with the access token it brought). Any
// goroutine.
func (s *Session) adoptGrant(g *store.OAuthGrant, accessToken string) {
	expires := g.Expires
	if expires.IsZero() {
		expires = time.Now().Add(noExpiry)
	}
	// The client first: a renewal already under way finishes before
	// (mautrix's lock), and the store no longer has its refresh token.
	s.cli.OAuthSetTokens(g.ClientID, g.RefreshToken, accessToken, expires)
	s.grant.set(g.ClientID, g.RefreshToken)
	if v := s.verifier.Load(); v != nil {
		v.cli.OAuthSetTokens("", "", accessToken, time.Time{})
	}
}

// renewToken renews the access token after the homeserver refused it
// (M_UNKNOWN_TOKEN: it expired early, or soft_logout). It returns nil when
// the session may go on with a new token, errGrantRevoked (wrapped) when
// the grant is over (it is then forgotten), and another error when the
// renewal failed for now and may be tried again. Sync loop goroutine.
func (s *Session) renewToken() error {
	if s.grant.active.Load() {
		// A buffer longer than any token lives makes mautrix refresh now.
		err := s.cli.OAuthRefreshToken(s.ctx, 2*noExpiry)
		if err == nil {
			s.grant.refusedSince = time.Time{}
			return nil
		}
		var he mautrix.HTTPError
		over := errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode == "invalid_grant" ||
			errors.Is(err, mautrix.ErrNoRefreshToken) || errors.Is(err, mautrix.ErrClientIDNotSet)
		if !over {
			return err
		}
	}
	// A LOGIN of this account may have replaced the grant (or the token)
	// just now: the homeserver then ends the old one as the new one
	// comes, before the new one reaches the session.
	if s.adoptStoredGrant() {
		return nil
	}
	if s.mgr.BrowserLoginsWaiting() > 0 {
		if s.grant.refusedSince.IsZero() {
			s.grant.refusedSince = time.Now()
		}
		if time.Since(s.grant.refusedSince) < browserLoginRace {
			return errors.New("the access token was refused while a browser login is under way; asking again")
		}
	}
	s.grant.refusedSince = time.Time{}
	if !s.grant.active.Load() {
		return errGrantRevoked
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ferr := s.mgr.store.DeleteOAuthGrant(ctx, s.user); ferr != nil {
		s.log.Error("could not forget the revoked OAuth grant", "err", ferr)
	}
	return errGrantRevoked
}

// browserLoginRace is how long a session whose token or grant the
// homeserver refuses keeps asking while a browser login is under way,
// which may be storing a new grant for its device.
const browserLoginRace = 30 * time.Second

// adoptStoredGrant takes a grant the store has that the session does not
// use yet (a browser login stored it), and says whether it did. Sync loop.
func (s *Session) adoptStoredGrant() bool {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	g, err := s.mgr.store.OAuthGrant(ctx, s.user)
	if err != nil {
		return false
	}
	s.grant.mu.Lock()
	current := s.grant.current
	s.grant.mu.Unlock()
	if s.grant.active.Load() && g.RefreshToken == current {
		return false
	}
	acct, err := s.mgr.store.Account(ctx, s.user)
	if err != nil || acct.AccessToken == "" {
		return false
	}
	s.adoptGrant(g, acct.AccessToken)
	s.grant.refusedSince = time.Time{}
	s.log.Info("took the OAuth grant a new login stored")
	return true
}
