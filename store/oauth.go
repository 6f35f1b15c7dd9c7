package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

// ErrStale is returned (wrapped) when a compare-and-swap finds the row
// changed since the caller read it.
var ErrStale = errors.New("store: changed meanwhile")

// OAuthClient is the gateway's registration with a homeserver's OAuth 2.0
// authorization server.
type OAuthClient struct {
	Homeserver string // client-server API base URL
	Issuer     string
	ClientID   string
	CreatedAt  time.Time // set by InitOAuthClient
}

// OAuthGrant is an account's OAuth 2.0 login. RefreshToken is a secret of
// the gateway: nothing may show it to an IRC client.
type OAuthGrant struct {
	UserID       id.UserID
	ClientID     string
	RefreshToken string
	// Expires is when the account's access token stops working; zero when
	// the server did not say.
	Expires   time.Time
	UpdatedAt time.Time // set on every write
}

func (s *SQLStore) OAuthClient(ctx context.Context, homeserver string) (*OAuthClient, error) {
	c := &OAuthClient{Homeserver: homeserver}
	var created int64
	err := s.db.QueryRowContext(ctx,
		`SELECT issuer, client_id, created_at FROM oauth_clients WHERE homeserver = $1`, homeserver).
		Scan(&c.Issuer, &c.ClientID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: OAuth client for %s: %w", homeserver, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: OAuth client for %s: %w", homeserver, err)
	}
	c.CreatedAt = fromMillis(created)
	return c, nil
}

// InitOAuthClient keeps the first registration, so that gateways (or
// logins) registering at once all end up using one client_id.
func (s *SQLStore) InitOAuthClient(ctx context.Context, c *OAuthClient) (*OAuthClient, error) {
	if c == nil || c.Homeserver == "" || c.ClientID == "" {
		return nil, errors.New("store: save OAuth client: no homeserver or client_id")
	}
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO oauth_clients (homeserver, issuer, client_id, created_at) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (homeserver) DO NOTHING`,
		c.Homeserver, c.Issuer, c.ClientID, s.now().UnixMilli()); err != nil {
		return nil, fmt.Errorf("store: save OAuth client for %s: %w", c.Homeserver, err)
	}
	return s.OAuthClient(ctx, c.Homeserver)
}

func (s *SQLStore) DeleteOAuthClient(ctx context.Context, homeserver, clientID string) error {
	if _, err := s.db.ExecContext(ctx,
		`DELETE FROM oauth_clients WHERE homeserver = $1 AND client_id = $2`, homeserver, clientID); err != nil {
		return fmt.Errorf("store: forget OAuth client for %s: %w", homeserver, err)
	}
	return nil
}

func (s *SQLStore) OAuthGrant(ctx context.Context, userID id.UserID) (*OAuthGrant, error) {
	g := &OAuthGrant{UserID: userID}
	var expires, updated int64
	err := s.db.QueryRowContext(ctx,
		`SELECT client_id, refresh_token, expires_at, updated_at FROM oauth_grants WHERE user_id = $1`, string(userID)).
		Scan(&g.ClientID, &g.RefreshToken, &expires, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: OAuth grant of %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: OAuth grant of %s: %w", userID, err)
	}
	if expires != 0 {
		g.Expires = fromMillis(expires)
	}
	g.UpdatedAt = fromMillis(updated)
	return g, nil
}

func expiresMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (s *SQLStore) PutOAuthLogin(ctx context.Context, a *Account, g *OAuthGrant) error {
	if a == nil || g == nil || a.UserID == "" || g.UserID != a.UserID || g.RefreshToken == "" {
		return errors.New("store: save OAuth login: account and grant do not match, or no refresh token")
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := putAccount(ctx, tx, a, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO oauth_grants (user_id, client_id, refresh_token, expires_at, updated_at)
			 VALUES ($1, $2, $3, $4, $5)
			 ON CONFLICT (user_id) DO UPDATE SET
				client_id = excluded.client_id,
				refresh_token = excluded.refresh_token,
				expires_at = excluded.expires_at,
				updated_at = excluded.updated_at`,
			string(g.UserID), g.ClientID, g.RefreshToken, expiresMillis(g.Expires), now.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: save OAuth login of %s: %w", a.UserID, err)
	}
	g.UpdatedAt = fromMillis(now.UnixMilli())
	return nil
}

// RotateOAuthGrant is a compare-and-swap on the refresh token: the grant
// and the account's access token change together, and only if nobody has
// rotated the grant since oldRefresh was read. The caller stores the new
// refresh token here before it uses it, or the old one, again.
func (s *SQLStore) RotateOAuthGrant(ctx context.Context, oldRefresh, accessToken string, g *OAuthGrant) error {
	if g == nil || g.UserID == "" || g.RefreshToken == "" || accessToken == "" {
		return errors.New("store: rotate OAuth grant: no user, refresh token or access token")
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE oauth_grants SET refresh_token = $1, expires_at = $2, updated_at = $3
			 WHERE user_id = $4 AND refresh_token = $5`,
			g.RefreshToken, expiresMillis(g.Expires), now.UnixMilli(), string(g.UserID), oldRefresh)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrStale
		}
		res, err = tx.ExecContext(ctx,
			`UPDATE accounts SET access_token = $1, updated_at = $2 WHERE user_id = $3`,
			accessToken, now.UnixMilli(), string(g.UserID))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("no account row: %w", ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: rotate OAuth grant of %s: %w", g.UserID, err)
	}
	g.UpdatedAt = fromMillis(now.UnixMilli())
	return nil
}

// DeleteOAuthGrant also clears the account's access token, which the
// revoked grant no longer renews, so that nothing resumes with it.
func (s *SQLStore) DeleteOAuthGrant(ctx context.Context, userID id.UserID) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_grants WHERE user_id = $1`, string(userID)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`UPDATE accounts SET access_token = '', updated_at = $1 WHERE user_id = $2`, s.now().UnixMilli(), string(userID))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: forget OAuth grant of %s: %w", userID, err)
	}
	return nil
}
