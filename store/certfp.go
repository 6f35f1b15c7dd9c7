package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

// ErrCertTaken is returned (wrapped) when a certificate fingerprint is
// registered for another account already.
var ErrCertTaken = errors.New("store: the certificate belongs to another account")

// CertFP is a TLS client certificate registered to log in to an account.
type CertFP struct {
	Fingerprint string // lowercase hex SHA-256 of the certificate's DER
	CreatedAt   time.Time
}

func (s *SQLStore) AddCertFP(ctx context.Context, userID id.UserID, fingerprint string) (added bool, err error) {
	// A second try covers the row being deleted between the insert and
	// the look-up of its owner.
	for range 2 {
		res, err := s.db.ExecContext(ctx,
			`INSERT INTO cert_fingerprints (fingerprint, user_id, created_at) VALUES ($1, $2, $3)
			 ON CONFLICT (fingerprint) DO NOTHING`,
			fingerprint, string(userID), s.now().UnixMilli())
		if err != nil {
			return false, fmt.Errorf("store: add certificate of %s: %w", userID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return false, fmt.Errorf("store: add certificate of %s: %w", userID, err)
		} else if n == 1 {
			return true, nil
		}
		owner, err := s.CertFPAccount(ctx, fingerprint)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return false, err
		case owner != userID:
			return false, fmt.Errorf("store: add certificate of %s: %w", userID, ErrCertTaken)
		}
		return false, nil
	}
	return false, fmt.Errorf("store: add certificate of %s: %w", userID, ErrStale)
}

func (s *SQLStore) CertFPs(ctx context.Context, userID id.UserID) ([]CertFP, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT fingerprint, created_at FROM cert_fingerprints WHERE user_id = $1 ORDER BY created_at, fingerprint`, string(userID))
	if err != nil {
		return nil, fmt.Errorf("store: certificates of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []CertFP
	for rows.Next() {
		var c CertFP
		var created int64
		if err := rows.Scan(&c.Fingerprint, &created); err != nil {
			return nil, fmt.Errorf("store: certificates of %s: %w", userID, err)
		}
		c.CreatedAt = fromMillis(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: certificates of %s: %w", userID, err)
	}
	return out, nil
}

func (s *SQLStore) DeleteCertFP(ctx context.Context, userID id.UserID, fingerprint string) error {
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM cert_fingerprints WHERE user_id = $1 AND fingerprint = $2`, string(userID), fingerprint)
	if err != nil {
		return fmt.Errorf("store: delete certificate of %s: %w", userID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: delete certificate of %s: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("store: delete certificate of %s: %w", userID, ErrNotFound)
	}
	return nil
}

func (s *SQLStore) CertFPAccount(ctx context.Context, fingerprint string) (id.UserID, error) {
	var user string
	err := s.db.QueryRowContext(ctx,
		`SELECT user_id FROM cert_fingerprints WHERE fingerprint = $1`, fingerprint).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: certificate %s: %w", fingerprint, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: certificate %s: %w", fingerprint, err)
	}
	return id.UserID(user), nil
}
