package store

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// ReadMarkers returns the read markers the account's clients set, by
// target (read_markers in migrations/0013_read_markers.sql).
func (s *SQLStore) ReadMarkers(ctx context.Context, userID id.UserID) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT target, ts FROM read_markers WHERE user_id = $1`, string(userID))
	if err != nil {
		return nil, fmt.Errorf("store: load read markers of %s: %w", userID, err)
	}
	defer rows.Close()
	marks := map[string]int64{}
	for rows.Next() {
		var target string
		var ts int64
		if err := rows.Scan(&target, &ts); err != nil {
			return nil, fmt.Errorf("store: load read markers of %s: %w", userID, err)
		}
		marks[target] = ts
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load read markers of %s: %w", userID, err)
	}
	return marks, nil
}

// PutReadMarker moves the account's read marker of a target forward to
// ts; a later one stored already stays.
func (s *SQLStore) PutReadMarker(ctx context.Context, userID id.UserID, target string, ts int64) error {
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO read_markers (user_id, target, ts) VALUES ($1, $2, $3)
		 ON CONFLICT (user_id, target) DO UPDATE SET ts = excluded.ts WHERE excluded.ts > read_markers.ts`,
		string(userID), target, ts); err != nil {
		return fmt.Errorf("store: save the read marker of %s in %s: %w", target, userID, err)
	}
	return nil
}
