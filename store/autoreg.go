package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// AutoRegistered is an account the gateway registered for a connection
// without a login ([autoregister]), which it deactivates once nobody has
// used it for a while.
type AutoRegistered struct {
	UserID id.UserID
	// SealedPassword is the account's password, sealed by the caller;
	// the store keeps it as opaque bytes.
	SealedPassword []byte
	CreatedAt      time.Time // set by PutAutoRegistered
	// LeftAt is when the account's last client left; zero while a
	// client is attached.
	LeftAt time.Time
}

// PutAutoRegistered records an account the gateway registered, with
// a.LeftAt as when its last client left (zero: a client is attached).
// Putting an account again replaces its password and LeftAt and keeps
// its creation time, which a.CreatedAt is set to.
func (s *SQLStore) PutAutoRegistered(ctx context.Context, a *AutoRegistered) error {
	if a == nil || a.UserID == "" || len(a.SealedPassword) == 0 {
		return errors.New("store: record an auto-registered account: no user ID or password")
	}
	var created int64
	err := s.db.QueryRowContext(ctx,
		`INSERT INTO auto_registered (user_id, sealed_password, created_at, left_at) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (user_id) DO UPDATE SET sealed_password = excluded.sealed_password, left_at = excluded.left_at
		 RETURNING created_at`,
		string(a.UserID), base64.StdEncoding.EncodeToString(a.SealedPassword), s.now().UnixMilli(), nullMillis(a.LeftAt)).
		Scan(&created)
	if err != nil {
		return fmt.Errorf("store: record auto-registered account %s: %w", a.UserID, err)
	}
	a.CreatedAt = fromMillis(created)
	return nil
}

// AutoRegisteredAccounts lists every recorded auto-registered account.
func (s *SQLStore) AutoRegisteredAccounts(ctx context.Context) ([]AutoRegistered, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT user_id, sealed_password, created_at, left_at FROM auto_registered ORDER BY created_at, user_id`)
	if err != nil {
		return nil, fmt.Errorf("store: list auto-registered accounts: %w", err)
	}
	defer rows.Close()
	var all []AutoRegistered
	for rows.Next() {
		var user, sealed string
		var created int64
		var left sql.NullInt64
		if err := rows.Scan(&user, &sealed, &created, &left); err != nil {
			return nil, fmt.Errorf("store: list auto-registered accounts: %w", err)
		}
		pw, err := base64.StdEncoding.DecodeString(sealed)
		if err != nil {
			return nil, fmt.Errorf("store: auto-registered account %s: damaged password: %w", user, err)
		}
		a := AutoRegistered{UserID: id.UserID(user), SealedPassword: pw, CreatedAt: fromMillis(created)}
		if left.Valid {
			a.LeftAt = fromMillis(left.Int64)
		}
		all = append(all, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list auto-registered accounts: %w", err)
	}
	return all, nil
}

// SetAutoRegisteredLeft records when the account's last client left;
// the zero time says a client is attached. An account not recorded is
// an error satisfying errors.Is(err, ErrNotFound).
func (s *SQLStore) SetAutoRegisteredLeft(ctx context.Context, userID id.UserID, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE auto_registered SET left_at = $1 WHERE user_id = $2`, nullMillis(at), string(userID))
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("store: save when the last client of %s left: %w", userID, err)
	}
	return nil
}

// ForgetAutoRegistered drops the record of an auto-registered account;
// it succeeds when there is none.
func (s *SQLStore) ForgetAutoRegistered(ctx context.Context, userID id.UserID) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM auto_registered WHERE user_id = $1`, string(userID)); err != nil {
		return fmt.Errorf("store: forget auto-registered account %s: %w", userID, err)
	}
	return nil
}

// DeleteAccount removes the account and its rows in every per-account
// table (its token and device, OAuth grant, certificates, channel names,
// sync state and room list, stream, client cursors and outbox), in one
// transaction, and succeeds when the account is already absent. Events
// in the shared event table and room state stay until Prune removes
// them. The record of an auto-registered account stays (see
// ForgetAutoRegistered), and so does its end-to-end encryption state
// (DeleteCryptoState). The account's session must have ended: a session
// still running would write some of it back.
func (s *SQLStore) DeleteAccount(ctx context.Context, userID id.UserID) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Serialized with SaveSync, so that a concurrent save cannot
		// leave stream rows behind.
		if _, err := lockEvents(ctx, tx); err != nil {
			return err
		}
		for _, table := range []string{"accounts", "oauth_grants", "cert_fingerprints", "channel_names", "sync_state", "account_rooms", "account_events", "client_cursors", "outbox", "read_markers"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE user_id = $1`, string(userID)); err != nil {
				return err
			}
		}
		// The settings of the account's client names (session's
		// TAGSONLY: "tags_only <user ID> <client>"), by prefix without
		// LIKE, whose _ and % user IDs may hold.
		prefix := "tags_only " + string(userID) + " "
		_, err := tx.ExecContext(ctx, `DELETE FROM settings WHERE substr(name, 1, $1) = $2`, utf8.RuneCountInString(prefix), prefix)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete account %s: %w", userID, err)
	}
	return nil
}

// nullMillis is t in unix milliseconds, NULL for the zero time.
func nullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}
