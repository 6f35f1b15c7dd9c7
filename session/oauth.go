package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mxircd/mxircd/store"
	"maunium.net/go/mautrix"
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

// useOAuthGrant makes cli renew its access token through the account's
// OAuth grant, if it has one, and says whether it has. Called before the
// session starts.
func (m *Manager) useOAuthGrant(ctx context.Context, cli *mautrix.Client) (bool, error) {
	g, err := m.store.OAuthGrant(ctx, cli.UserID.String())
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading the OAuth grant: %w", err)
	}
	// mautrix calls SaveNewToken under its refresh lock, one at a time, so
	// current needs no lock of its own.
	current := g.RefreshToken
	cli.SaveNewToken = func(ctx context.Context, refreshToken, accessToken string, expiry time.Time) error {
		next := &store.OAuthGrant{UserID: g.UserID, ClientID: g.ClientID, RefreshToken: refreshToken, Expires: expiry}
		if err := m.store.RotateOAuthGrant(ctx, current, accessToken, next); err != nil {
			return err
		}
		current = refreshToken
		m.log.Info("renewed the Matrix access token", "user", g.UserID, "expires", expiry)
		return nil
	}
	expires := g.Expires
	if expires.IsZero() {
		expires = time.Now().Add(noExpiry)
	}
	cli.OAuthSetTokens(g.ClientID, g.RefreshToken, cli.AccessToken, expires)
	return true, nil
}

// renewToken renews the access token after the homeserver refused it
// (M_UNKNOWN_TOKEN: it expired early, or soft_logout). It returns nil when
// the session may go on with a new token, errGrantRevoked (wrapped) when
// the grant is over (it is then forgotten), and another error when the
// renewal failed for now and may be tried again. Sync loop goroutine.
func (s *Session) renewToken() error {
	if !s.oauth {
		return errGrantRevoked
	}
	// A buffer longer than any token lives makes mautrix refresh now.
	err := s.cli.OAuthRefreshToken(s.ctx, 2*noExpiry)
	if err == nil {
		return nil
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode == "invalid_grant" ||
		errors.Is(err, mautrix.ErrNoRefreshToken) || errors.Is(err, mautrix.ErrClientIDNotSet) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ferr := s.mgr.store.DeleteOAuthGrant(ctx, s.user.String()); ferr != nil {
			s.log.Error("could not forget the revoked OAuth grant", "err", ferr)
		}
		return fmt.Errorf("%w: %w", errGrantRevoked, err)
	}
	return err
}
