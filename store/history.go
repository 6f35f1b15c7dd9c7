package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// The event store keeps Matrix timeline events for always-on sessions and
// chat history. Events live once in the shared events table; each account
// has its own stream (account_events) of the events it received, numbered
// 1, 2, ... without reuse, and a sync token (sync_state). Each IRC client of
// an account has a cursor into that stream.
//
// Everything that writes events or account streams (SaveSync, Prune,
// DeleteAccount) first locks the 'events' row of the counters table, so
// those writers run one at a time on PostgreSQL as they do on SQLite. That
// keeps them free of deadlocks and unique-key races, and it hands out room
// positions in commit order: a reader that has seen position n will never
// later see a new event below n.

// StoredEvent is one Matrix timeline event in the event store.
type StoredEvent struct {
	Seq     int64 // position in the account's stream (StreamRange) or in the room (RoomHistory); 0 on input
	RoomID  id.RoomID
	EventID id.EventID
	Sender  id.UserID
	Type    string // Matrix event type
	TS      int64  // origin_server_ts, Unix milliseconds
	JSON    []byte // the whole event as JSON, stored and returned verbatim
	// TxnID is the transaction ID the account itself sent the event with,
	// in the account's stream only (SaveSync, StreamRange); "" otherwise.
	// The shared JSON must not carry it: another account may have stored
	// the event first, without one.
	TxnID string
	// HistoryOnly, on input to SaveSync, records the event as seen by the
	// account (its history may show it) without putting it in the stream
	// that clients are given (its position is 0), for events from before
	// the account could have missed them. It is always false on output.
	HistoryOnly bool
}

// SyncBatch is what one /sync response brought an account.
type SyncBatch struct {
	UserID    id.UserID
	NextBatch string        // the sync token that covers Events
	Events    []StoredEvent // in the order the account received them
	// State is the room state events the response brought (state
	// sections and state events of timelines), stored once per room for
	// all accounts (RoomState).
	State []StateEvent
	// Joined and Left change the account's stored rooms (AccountRooms);
	// AllRooms says Joined is the whole list (a full-state or initial
	// sync), which replaces what was stored.
	Joined, Left []id.RoomID
	AllRooms     bool
	// Summaries is what the response's room summaries said, by joined
	// room (AccountRooms gives it back); a field left nil is unchanged.
	Summaries map[id.RoomID]RoomSummary
}

// RoomSummary is the homeserver's summary of a room's members as one
// account saw it in sync (m.joined_member_count, m.invited_member_count,
// m.heroes). Nil fields are not known (or, on input, unchanged).
type RoomSummary struct {
	Joined, Invited *int
	Heroes          []id.UserID
}

// AccountRoom is one room an account is in, with its summary.
type AccountRoom struct {
	RoomID  id.RoomID
	Summary RoomSummary
}

// StateEvent is one Matrix state event of a room.
type StateEvent struct {
	RoomID         id.RoomID
	EventID        id.EventID
	Type, StateKey string
	JSON           []byte // the whole event, returned verbatim
}

// HistoryQuery selects events of one room, newest-limited.
type HistoryQuery struct {
	RoomID id.RoomID
	// Bounds, all optional (zero = unbounded), exclusive:
	AfterSeq, BeforeSeq int64 // room positions (StoredEvent.Seq from RoomHistory/FindEvent)
	AfterTS, BeforeTS   int64 // Unix ms
	Limit               int   // at most this many events; <= 0 means no limit
	// Newest: with Limit, take the newest Limit events in the range (as for
	// CHATHISTORY LATEST/BEFORE); otherwise the oldest Limit (AFTER).
	Newest bool
	// Types, when not empty, keeps only events of these Matrix types.
	Types []string
	// Viewer, when not empty, keeps only the events that account received
	// itself: the shared table also holds what others saw, perhaps before
	// Viewer joined a room whose history it may not read.
	Viewer id.UserID
}

// Target is a room with activity in a time range (CHATHISTORY TARGETS).
type Target struct {
	RoomID id.RoomID
	LastTS int64 // newest event's TS in the range
}

// OutboxEntry is a message accepted from IRC and not yet confirmed sent.
type OutboxEntry struct {
	UserID id.UserID
	TxnID  string
	RoomID id.RoomID // "" until the room is known (see Peer)
	// Peer is the Matrix user a direct message is for while its room
	// does not exist yet (RoomID ""). With neither RoomID nor Peer the
	// entry is an IRC line accepted before the session's first sync,
	// its target not resolved yet.
	Peer    id.UserID
	Type    string // event type, e.g. m.room.message
	Content []byte // JSON content
	Created time.Time
}

// inTx runs f in a transaction and commits when f succeeds.
func (s *SQLStore) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// lockEvents takes the lock that serializes writers of events and account
// streams until tx ends, and returns the last room position given out.
func lockEvents(ctx context.Context, tx *sql.Tx) (int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx,
		`UPDATE counters SET value = value WHERE name = 'events' RETURNING value`).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("lock events: %w", err)
	}
	return last, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// SaveSync stores b.Events in the shared event table (one row per room and
// event ID, whichever account stored it first; an existing row is kept as
// is), records each event the account has not seen yet as seen, with
// consecutive positions after the current head (in its stream unless it is
// HistoryOnly), and sets the account's sync token to b.NextBatch: the
// account's events and the token in one transaction, after the shared
// events (which a failure may leave). It returns the stream position given
// to each event, in b.Events order, 0 for an event the account had seen
// already (a duplicate, also within b) and for a HistoryOnly event. Empty
// Events still saves the token.
func (s *SQLStore) SaveSync(ctx context.Context, b *SyncBatch) ([]int64, error) {
	if b == nil || b.UserID == "" {
		return nil, errors.New("store: save sync: empty user ID")
	}
	for i, e := range b.Events {
		if e.RoomID == "" || e.EventID == "" {
			return nil, fmt.Errorf("store: save sync of %s: event %d has an empty room or event ID", b.UserID, i)
		}
	}
	positions := make([]int64, len(b.Events))
	// First the shared events, in a short transaction of their own, and
	// only if some are new: the lock that hands out room positions is held
	// for their inserts alone, not for the account's stream. A shared event
	// without a stream pointing at it is harmless (a later save finds it).
	if len(b.Events) > 0 || len(b.State) > 0 {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if err := insertEvents(ctx, tx, b.Events); err != nil {
				return err
			}
			return insertState(ctx, tx, b.State)
		})
		if err != nil {
			return nil, fmt.Errorf("store: save sync of %s: %w", b.UserID, err)
		}
	}
	// Then what the account received and its token, together.
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var head int64
		err := tx.QueryRowContext(ctx, `SELECT head FROM sync_state WHERE user_id = $1`, string(b.UserID)).Scan(&head)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read head: %w", err)
		}
		for i, e := range b.Events {
			res, err := tx.ExecContext(ctx,
				`INSERT INTO account_events (user_id, seq, room_id, event_id, ts, txn_id, history_only)
				 VALUES ($1, $2, $3, $4, $5, $6, $7)
				 ON CONFLICT (user_id, room_id, event_id) DO NOTHING`,
				string(b.UserID), head+1, string(e.RoomID), string(e.EventID), e.TS, e.TxnID, boolInt(e.HistoryOnly))
			if err != nil {
				return fmt.Errorf("stream event %s: %w", e.EventID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("stream event %s: %w", e.EventID, err)
			} else if n > 0 {
				head++
				if !e.HistoryOnly {
					positions[i] = head
				}
			}
		}
		if err := saveRooms(ctx, tx, b); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO sync_state (user_id, next_batch, head, rooms_stored) VALUES ($1, $2, $3, $4)
			 ON CONFLICT (user_id) DO UPDATE SET next_batch = excluded.next_batch, head = excluded.head,
			 rooms_stored = CASE WHEN excluded.rooms_stored = 1 THEN 1 ELSE sync_state.rooms_stored END`,
			string(b.UserID), b.NextBatch, head, boolInt(b.AllRooms))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: save sync of %s: %w", b.UserID, err)
	}
	return positions, nil
}

// insertEvents adds the events the store does not hold yet, with room
// positions. An event another account stored already needs no position,
// so a batch of known events takes no lock: the accounts in a busy room do
// not queue behind each other.
func insertEvents(ctx context.Context, tx *sql.Tx, events []StoredEvent) error {
	var missing []StoredEvent
	for _, e := range events {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM events WHERE room_id = $1 AND event_id = $2`, string(e.RoomID), string(e.EventID)).Scan(&one)
		switch {
		case err == nil:
		case errors.Is(err, sql.ErrNoRows):
			missing = append(missing, e)
		default:
			return fmt.Errorf("event %s: %w", e.EventID, err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	roomSeq, err := lockEvents(ctx, tx)
	if err != nil {
		return err
	}
	startSeq := roomSeq
	for _, e := range missing {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO events (seq, room_id, event_id, sender, type, ts, json)
			 VALUES ($1, $2, $3, $4, $5, $6, $7)
			 ON CONFLICT (room_id, event_id) DO NOTHING`,
			roomSeq+1, string(e.RoomID), string(e.EventID), string(e.Sender), e.Type, e.TS, string(e.JSON))
		if err != nil {
			return fmt.Errorf("event %s: %w", e.EventID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("event %s: %w", e.EventID, err)
		} else if n > 0 {
			roomSeq++
		}
	}
	if roomSeq != startSeq {
		if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = $1 WHERE name = 'events'`, roomSeq); err != nil {
			return fmt.Errorf("advance room position: %w", err)
		}
	}
	return nil
}

// saveRooms records the account's joined rooms as b changes them.
func saveRooms(ctx context.Context, tx *sql.Tx, b *SyncBatch) error {
	if b.AllRooms {
		if _, err := tx.ExecContext(ctx, `DELETE FROM account_rooms WHERE user_id = $1`, string(b.UserID)); err != nil {
			return fmt.Errorf("clear rooms: %w", err)
		}
	}
	for _, roomID := range b.Left {
		if _, err := tx.ExecContext(ctx, `DELETE FROM account_rooms WHERE user_id = $1 AND room_id = $2`, string(b.UserID), string(roomID)); err != nil {
			return fmt.Errorf("leave room %s: %w", roomID, err)
		}
	}
	for _, roomID := range b.Joined {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO account_rooms (user_id, room_id) VALUES ($1, $2) ON CONFLICT (user_id, room_id) DO NOTHING`,
			string(b.UserID), string(roomID)); err != nil {
			return fmt.Errorf("join room %s: %w", roomID, err)
		}
	}
	for _, roomID := range slices.Sorted(maps.Keys(b.Summaries)) {
		sum := b.Summaries[roomID]
		var joined, invited, heroes any
		if sum.Joined != nil {
			joined = int64(*sum.Joined)
		}
		if sum.Invited != nil {
			invited = int64(*sum.Invited)
		}
		if sum.Heroes != nil {
			raw, err := json.Marshal(sum.Heroes)
			if err != nil {
				return fmt.Errorf("summary of room %s: %w", roomID, err)
			}
			heroes = string(raw)
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE account_rooms SET joined_count = COALESCE($3, joined_count), invited_count = COALESCE($4, invited_count),
			 heroes = COALESCE($5, heroes) WHERE user_id = $1 AND room_id = $2`,
			string(b.UserID), string(roomID), joined, invited, heroes); err != nil {
			return fmt.Errorf("summary of room %s: %w", roomID, err)
		}
	}
	return nil
}

// insertState adds the state events the store does not hold yet, each
// with the next position of the 'state' counter. Like insertEvents, a
// batch of known events takes no lock.
func insertState(ctx context.Context, tx *sql.Tx, events []StateEvent) error {
	var missing []StateEvent
	seen := map[[2]string]bool{}
	for _, e := range events {
		key := [2]string{string(e.RoomID), string(e.EventID)}
		if seen[key] {
			continue
		}
		seen[key] = true
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM room_state WHERE room_id = $1 AND event_id = $2`, string(e.RoomID), string(e.EventID)).Scan(&one)
		switch {
		case err == nil:
		case errors.Is(err, sql.ErrNoRows):
			missing = append(missing, e)
		default:
			return fmt.Errorf("state event %s: %w", e.EventID, err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// The events lock, which serializes all writers of shared rows, then
	// the state counter.
	if _, err := lockEvents(ctx, tx); err != nil {
		return err
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'state'`).Scan(&seq); err != nil {
		return fmt.Errorf("read state position: %w", err)
	}
	start := seq
	for _, e := range missing {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO room_state (seq, room_id, event_id, type, state_key, json) VALUES ($1, $2, $3, $4, $5, $6)
			 ON CONFLICT (room_id, event_id) DO NOTHING`,
			seq+1, string(e.RoomID), string(e.EventID), e.Type, e.StateKey, string(e.JSON))
		if err != nil {
			return fmt.Errorf("state event %s: %w", e.EventID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("state event %s: %w", e.EventID, err)
		} else if n > 0 {
			seq++
		}
	}
	if seq != start {
		if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = $1 WHERE name = 'state'`, seq); err != nil {
			return fmt.Errorf("advance state position: %w", err)
		}
	}
	return nil
}

// AccountRooms returns the rooms the account had joined as of its stored
// sync token, with their summaries; ok is false when the store does not
// hold its whole list (it was never saved by a full-state or initial sync).
func (s *SQLStore) AccountRooms(ctx context.Context, userID id.UserID) (rooms []AccountRoom, ok bool, err error) {
	var stored int64
	err = s.db.QueryRowContext(ctx, `SELECT rooms_stored FROM sync_state WHERE user_id = $1`, string(userID)).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && stored == 0) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: rooms of %s: %w", userID, err)
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT room_id, joined_count, invited_count, heroes FROM account_rooms WHERE user_id = $1 ORDER BY room_id`, string(userID))
	if err != nil {
		return nil, false, fmt.Errorf("store: rooms of %s: %w", userID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var roomID, heroes string
		var joined, invited int64
		if err := rows.Scan(&roomID, &joined, &invited, &heroes); err != nil {
			return nil, false, fmt.Errorf("store: rooms of %s: %w", userID, err)
		}
		room := AccountRoom{RoomID: id.RoomID(roomID)}
		if joined >= 0 {
			n := int(joined)
			room.Summary.Joined = &n
		}
		if invited >= 0 {
			n := int(invited)
			room.Summary.Invited = &n
		}
		if heroes != "" {
			if err := json.Unmarshal([]byte(heroes), &room.Summary.Heroes); err != nil {
				return nil, false, fmt.Errorf("store: heroes of %s in %s: %w", userID, roomID, err)
			}
		}
		rooms = append(rooms, room)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: rooms of %s: %w", userID, err)
	}
	return rooms, true, nil
}

// RoomState returns a room's current state as stored: for each (type,
// state key) the event stored last, oldest first.
func (s *SQLStore) RoomState(ctx context.Context, roomID id.RoomID) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT json FROM room_state s WHERE room_id = $1 AND seq = (
		   SELECT MAX(seq) FROM room_state t WHERE t.room_id = s.room_id AND t.type = s.type AND t.state_key = s.state_key)
		 ORDER BY seq`, string(roomID))
	if err != nil {
		return nil, fmt.Errorf("store: state of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("store: state of %s: %w", roomID, err)
		}
		out = append(out, []byte(raw))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: state of %s: %w", roomID, err)
	}
	return out, nil
}

// SyncState returns the account's stored sync token ("" if none) and its
// stream head (0 if none).
func (s *SQLStore) SyncState(ctx context.Context, userID id.UserID) (token string, head int64, err error) {
	err = s.db.QueryRowContext(ctx,
		`SELECT next_batch, head FROM sync_state WHERE user_id = $1`, string(userID)).Scan(&token, &head)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("store: load sync state of %s: %w", userID, err)
	}
	return token, head, nil
}

// StreamRange returns the account's stream events with after < seq <= upTo,
// oldest first, at most perRoom per room (the newest ones of each room;
// perRoom <= 0 means no limit), and how many older ones were left out, by
// room ID; the map is never nil and holds only rooms with some left out.
// Events pruned from the event table are skipped silently and not counted.
// StoredEvent.Seq is the stream position.
func (s *SQLStore) StreamRange(ctx context.Context, userID id.UserID, after, upTo int64, perRoom int) ([]StoredEvent, map[id.RoomID]int, error) {
	limit := int64(perRoom)
	if perRoom <= 0 {
		limit = math.MaxInt64
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT seq, room_id, event_id, sender, type, ts, json, txn_id, n FROM (
			SELECT a.seq, a.room_id, a.event_id, e.sender, e.type, e.ts, e.json, a.txn_id,
				ROW_NUMBER() OVER (PARTITION BY a.room_id ORDER BY a.seq DESC) AS rn,
				COUNT(*) OVER (PARTITION BY a.room_id) AS n
			FROM account_events a
			JOIN events e ON e.room_id = a.room_id AND e.event_id = a.event_id
			WHERE a.user_id = $1 AND a.seq > $2 AND a.seq <= $3 AND a.history_only = 0
		 ) t
		 WHERE rn <= $4
		 ORDER BY seq`,
		string(userID), after, upTo, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: load stream of %s: %w", userID, err)
	}
	defer rows.Close()
	var events []StoredEvent
	skipped := map[id.RoomID]int{}
	for rows.Next() {
		var e StoredEvent
		var n int64
		if err := rows.Scan(&e.Seq, &e.RoomID, &e.EventID, &e.Sender, &e.Type, &e.TS, &e.JSON, &e.TxnID, &n); err != nil {
			return nil, nil, fmt.Errorf("store: load stream of %s: %w", userID, err)
		}
		if n > limit {
			skipped[e.RoomID] = int(n - limit)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: load stream of %s: %w", userID, err)
	}
	return events, skipped, nil
}

// Cursor returns a client's delivery position; ok is false if the client
// (userID, client name) has none.
func (s *SQLStore) Cursor(ctx context.Context, userID id.UserID, client string) (seq int64, ok bool, err error) {
	err = s.db.QueryRowContext(ctx,
		`SELECT seq FROM client_cursors WHERE user_id = $1 AND client = $2`, string(userID), client).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: load cursor of %s client %s: %w", userID, client, err)
	}
	return seq, true, nil
}

// PutCursor moves a client's cursor forward to seq; a seq at or behind the
// stored cursor changes nothing.
func (s *SQLStore) PutCursor(ctx context.Context, userID id.UserID, client string, seq int64) error {
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO client_cursors (user_id, client, seq) VALUES ($1, $2, $3)
		 ON CONFLICT (user_id, client) DO UPDATE SET seq = excluded.seq
		 WHERE client_cursors.seq < excluded.seq`,
		string(userID), client, seq); err != nil {
		return fmt.Errorf("store: save cursor of %s client %s: %w", userID, client, err)
	}
	return nil
}

// MaxCursor is the largest cursor of any client of the account; ok is false
// if it has none.
func (s *SQLStore) MaxCursor(ctx context.Context, userID id.UserID) (seq int64, ok bool, err error) {
	var m sql.NullInt64
	if err := s.db.QueryRowContext(ctx,
		`SELECT MAX(seq) FROM client_cursors WHERE user_id = $1`, string(userID)).Scan(&m); err != nil {
		return 0, false, fmt.Errorf("store: load cursors of %s: %w", userID, err)
	}
	return m.Int64, m.Valid, nil
}

const eventColumns = `seq, room_id, event_id, sender, type, ts, json`

// seenBy is the condition, on the events table, that viewer's account
// received the event (none when viewer is ""); it appends its argument.
func seenBy(viewer id.UserID, args *[]any) string {
	if viewer == "" {
		return ""
	}
	*args = append(*args, string(viewer))
	return fmt.Sprintf(` AND EXISTS (SELECT 1 FROM account_events a
		WHERE a.user_id = $%d AND a.room_id = events.room_id AND a.event_id = events.event_id)`, len(*args))
}

// typeIn is the condition that the event's type is one of types (none when
// types is empty); it appends its arguments.
func typeIn(types []string, args *[]any) string {
	if len(types) == 0 {
		return ""
	}
	marks := make([]string, len(types))
	for i, t := range types {
		*args = append(*args, t)
		marks[i] = fmt.Sprintf("$%d", len(*args))
	}
	return " AND type IN (" + strings.Join(marks, ", ") + ")"
}

func scanEvent(row interface{ Scan(...any) error }) (StoredEvent, error) {
	var e StoredEvent
	err := row.Scan(&e.Seq, &e.RoomID, &e.EventID, &e.Sender, &e.Type, &e.TS, &e.JSON)
	return e, err
}

// RoomHistory returns events of a room matching q, oldest first.
// StoredEvent.Seq is the room position (global, increasing in insertion
// order).
func (s *SQLStore) RoomHistory(ctx context.Context, q HistoryQuery) ([]StoredEvent, error) {
	query := `SELECT ` + eventColumns + ` FROM events WHERE room_id = $1`
	args := []any{string(q.RoomID)}
	bound := func(cond string, v int64) {
		if v != 0 {
			args = append(args, v)
			query += fmt.Sprintf(" AND %s $%d", cond, len(args))
		}
	}
	query += seenBy(q.Viewer, &args)
	bound("seq >", q.AfterSeq)
	bound("seq <", q.BeforeSeq)
	bound("ts >", q.AfterTS)
	bound("ts <", q.BeforeTS)
	query += typeIn(q.Types, &args)
	newest := q.Newest && q.Limit > 0
	if newest {
		query += ` ORDER BY seq DESC`
	} else {
		query += ` ORDER BY seq`
	}
	if q.Limit > 0 {
		args = append(args, q.Limit)
		query += fmt.Sprintf(" LIMIT $%d", len(args))
	}

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: load history of %s: %w", q.RoomID, err)
	}
	defer rows.Close()
	var events []StoredEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("store: load history of %s: %w", q.RoomID, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load history of %s: %w", q.RoomID, err)
	}
	if newest {
		slices.Reverse(events)
	}
	return events, nil
}

// FindEvent returns one stored event by room and event ID, with its room
// position, or an error satisfying errors.Is(err, ErrNotFound).
func (s *SQLStore) FindEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*StoredEvent, error) {
	e, err := scanEvent(s.db.QueryRowContext(ctx,
		`SELECT `+eventColumns+` FROM events WHERE room_id = $1 AND event_id = $2`, string(roomID), string(eventID)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: load event %s in %s: %w", eventID, roomID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: load event %s in %s: %w", eventID, roomID, err)
	}
	return &e, nil
}

// LastEventBefore returns the newest event (by TS, then room position) of
// the room with TS <= ts whose Type is one of types, any type when types is
// empty, among those viewer's account received (any, when viewer is ""),
// or an error satisfying errors.Is(err, ErrNotFound).
func (s *SQLStore) LastEventBefore(ctx context.Context, roomID id.RoomID, viewer id.UserID, ts int64, types []string) (*StoredEvent, error) {
	query := `SELECT ` + eventColumns + ` FROM events WHERE room_id = $1 AND ts <= $2`
	args := []any{string(roomID), ts}
	query += seenBy(viewer, &args) + typeIn(types, &args)
	query += ` ORDER BY ts DESC, seq DESC LIMIT 1`
	e, err := scanEvent(s.db.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: load last event before %d in %s: %w", ts, roomID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: load last event before %d in %s: %w", ts, roomID, err)
	}
	return &e, nil
}

// Targets returns the rooms whose latest event in the account's stream of
// one of types (any when empty) has a TS in [fromTS, toTS], by LastTS
// ascending (then room ID), at most limit (limit <= 0 means no limit).
func (s *SQLStore) Targets(ctx context.Context, userID id.UserID, fromTS, toTS int64, limit int, types []string) ([]Target, error) {
	args := []any{string(userID)}
	join := ""
	if len(types) > 0 {
		join = ` JOIN events ON events.room_id = account_events.room_id AND events.event_id = account_events.event_id`
	}
	// The latest over the whole stream, then the window: a room with a
	// later message is not a target of an earlier window.
	query := `SELECT room_id, last FROM (SELECT account_events.room_id AS room_id, MAX(account_events.ts) AS last
		FROM account_events` + join + `
		WHERE account_events.user_id = $1 AND account_events.history_only = 0` + typeIn(types, &args) + `
		GROUP BY account_events.room_id) latest`
	args = append(args, fromTS, toTS)
	query += fmt.Sprintf(` WHERE last >= $%d AND last <= $%d ORDER BY last, room_id`, len(args)-1, len(args))
	if limit > 0 {
		args = append(args, limit)
		query += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: load targets of %s: %w", userID, err)
	}
	defer rows.Close()
	var targets []Target
	for rows.Next() {
		var t Target
		if err := rows.Scan(&t.RoomID, &t.LastTS); err != nil {
			return nil, fmt.Errorf("store: load targets of %s: %w", userID, err)
		}
		targets = append(targets, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load targets of %s: %w", userID, err)
	}
	return targets, nil
}

// Prune keeps the newest keep events of the room (by room position) and
// deletes older ones, plus the account stream rows that point at them.
// Stream heads are kept, so stream positions are not reused.
func (s *SQLStore) Prune(ctx context.Context, roomID id.RoomID, keep int) error {
	if keep < 0 {
		return fmt.Errorf("store: prune %s: negative keep %d", roomID, keep)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := lockEvents(ctx, tx); err != nil {
			return err
		}
		// The newest event to delete: the one after the keep newest.
		var cutoff int64
		err := tx.QueryRowContext(ctx,
			`SELECT seq FROM events WHERE room_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2`,
			string(roomID), keep).Scan(&cutoff)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // no more than keep events
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM account_events WHERE room_id = $1 AND event_id IN
				(SELECT event_id FROM events WHERE room_id = $1 AND seq <= $2)`,
			string(roomID), cutoff); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE room_id = $1 AND seq <= $2`, string(roomID), cutoff)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: prune %s: %w", roomID, err)
	}
	return nil
}

// PutOutbox records messages to (re)send under (e.UserID, e.TxnID), in the
// order given and in one transaction, so that a burst typed at once costs
// one commit. A zero e.Created is set to the current time. Putting a TxnID
// again replaces room, peer, type and content and keeps its place in the
// order and its creation time, which e.Created is set to.
func (s *SQLStore) PutOutbox(ctx context.Context, entries ...*OutboxEntry) error {
	for _, e := range entries {
		if e == nil || e.UserID == "" || e.TxnID == "" {
			return errors.New("store: save outbox entry: empty user or transaction ID")
		}
	}
	if len(entries) == 0 {
		return nil
	}
	now := s.now()
	stored := make([]int64, len(entries))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, e := range entries {
			created := e.Created
			if created.IsZero() {
				created = now
			}
			var ord int64
			if err := tx.QueryRowContext(ctx,
				`UPDATE counters SET value = value + 1 WHERE name = 'outbox' RETURNING value`).Scan(&ord); err != nil {
				return err
			}
			if err := tx.QueryRowContext(ctx,
				`INSERT INTO outbox (user_id, txn_id, room_id, peer, type, content, created_at, ord)
				 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				 ON CONFLICT (user_id, txn_id) DO UPDATE SET
					room_id = excluded.room_id,
					peer = excluded.peer,
					type = excluded.type,
					content = excluded.content
				 RETURNING created_at`,
				string(e.UserID), e.TxnID, string(e.RoomID), string(e.Peer), e.Type, string(e.Content), created.UnixMilli(), ord).Scan(&stored[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save %d outbox entries of %s (first %s): %w", len(entries), entries[0].UserID, entries[0].TxnID, err)
	}
	for i, e := range entries {
		e.Created = fromMillis(stored[i])
	}
	return nil
}

// ResolveOutboxPeer gives the account's messages waiting for a direct room
// with peer that room.
func (s *SQLStore) ResolveOutboxPeer(ctx context.Context, userID, peer id.UserID, roomID id.RoomID) error {
	if peer == "" || roomID == "" {
		return errors.New("store: resolve outbox peer: empty peer or room")
	}
	if _, err := s.db.ExecContext(ctx,
		`UPDATE outbox SET room_id = $3, peer = '' WHERE user_id = $1 AND peer = $2`, string(userID), string(peer), string(roomID)); err != nil {
		return fmt.Errorf("store: resolve outbox messages of %s to %s: %w", userID, peer, err)
	}
	return nil
}

// DeleteOutbox forgets a message; it succeeds when it is already absent.
func (s *SQLStore) DeleteOutbox(ctx context.Context, userID id.UserID, txnID string) error {
	if _, err := s.db.ExecContext(ctx,
		`DELETE FROM outbox WHERE user_id = $1 AND txn_id = $2`, string(userID), txnID); err != nil {
		return fmt.Errorf("store: delete outbox entry %s of %s: %w", txnID, userID, err)
	}
	return nil
}

// Outbox returns the account's messages to (re)send, oldest first (by
// Created, then insertion order).
func (s *SQLStore) Outbox(ctx context.Context, userID id.UserID) ([]OutboxEntry, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT txn_id, room_id, peer, type, content, created_at FROM outbox
		 WHERE user_id = $1 ORDER BY created_at, ord`, string(userID))
	if err != nil {
		return nil, fmt.Errorf("store: load outbox of %s: %w", userID, err)
	}
	defer rows.Close()
	var entries []OutboxEntry
	for rows.Next() {
		e := OutboxEntry{UserID: userID}
		var created int64
		if err := rows.Scan(&e.TxnID, &e.RoomID, &e.Peer, &e.Type, &e.Content, &created); err != nil {
			return nil, fmt.Errorf("store: load outbox of %s: %w", userID, err)
		}
		e.Created = fromMillis(created)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load outbox of %s: %w", userID, err)
	}
	return entries, nil
}

// RoomCreateFullAt returns when the account's room-creation budget is
// full again; the zero time when it is, or the account is unknown.
func (s *SQLStore) RoomCreateFullAt(ctx context.Context, userID id.UserID) (time.Time, error) {
	var ms int64
	err := s.db.QueryRowContext(ctx, `SELECT room_create_full_at FROM accounts WHERE user_id = $1`, string(userID)).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && ms == 0) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("store: load the room-creation budget of %s: %w", userID, err)
	}
	return fromMillis(ms), nil
}

// PutRoomCreateFullAt records when the account's room-creation budget is
// full again, unless a later time is recorded already.
func (s *SQLStore) PutRoomCreateFullAt(ctx context.Context, userID id.UserID, at time.Time) error {
	if _, err := s.db.ExecContext(ctx,
		`UPDATE accounts SET room_create_full_at = CASE WHEN $2 > room_create_full_at THEN $2 ELSE room_create_full_at END
		 WHERE user_id = $1`, string(userID), at.UnixMilli()); err != nil {
		return fmt.Errorf("store: save the room-creation budget of %s: %w", userID, err)
	}
	return nil
}

// AlwaysOnAccounts lists, by user ID, the accounts with an access token that
// are always on: AlwaysOn true, or AlwaysOn nil when def is true.
func (s *SQLStore) AlwaysOnAccounts(ctx context.Context, def bool) ([]id.UserID, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT user_id FROM accounts
		 WHERE access_token <> '' AND COALESCE(always_on, $1) <> 0
		 ORDER BY user_id`, boolInt(def))
	if err != nil {
		return nil, fmt.Errorf("store: list always-on accounts: %w", err)
	}
	defer rows.Close()
	var ids []id.UserID
	for rows.Next() {
		var userID string
		if err := rows.Scan(&userID); err != nil {
			return nil, fmt.Errorf("store: list always-on accounts: %w", err)
		}
		ids = append(ids, id.UserID(userID))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list always-on accounts: %w", err)
	}
	return ids, nil
}

// CursorUpdate is one client cursor to write. Force sets it even backward
// (a write to the client failed after its cursor had been moved).
type CursorUpdate struct {
	UserID id.UserID
	Client string
	Seq    int64
	Force  bool
}

// PutCursors writes several cursors in one transaction, in order. Cursor
// writes are frequent and small, so on PostgreSQL they do not wait for
// the server's disk: a crash of the gateway cannot lose them, only one
// of the database server, where a cursor going back means a line shown
// twice.
func (s *SQLStore) PutCursors(ctx context.Context, updates []CursorUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: save cursors: %w", err)
	}
	defer tx.Rollback()
	if s.dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return fmt.Errorf("store: save cursors: %w", err)
		}
	}
	for _, u := range updates {
		query := `INSERT INTO client_cursors (user_id, client, seq) VALUES ($1, $2, $3)
			 ON CONFLICT (user_id, client) DO UPDATE SET seq = excluded.seq`
		if !u.Force {
			query += ` WHERE client_cursors.seq < excluded.seq`
		}
		if _, err := tx.ExecContext(ctx, query, string(u.UserID), u.Client, u.Seq); err != nil {
			return fmt.Errorf("store: save cursor of %s client %s: %w", u.UserID, u.Client, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save cursors: %w", err)
	}
	return nil
}

// FindByTxn finds the event that sender's account received in a room
// with a given transaction ID (StoredEvent.TxnID, from the homeserver's
// unsigned.transaction_id); ErrNotFound wrapped when there is none.
func (s *SQLStore) FindByTxn(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string) (*StoredEvent, error) {
	if txnID == "" {
		return nil, fmt.Errorf("store: find transaction in %s: empty ID: %w", roomID, ErrNotFound)
	}
	var e StoredEvent
	err := s.db.QueryRowContext(ctx,
		`SELECT e.seq, e.room_id, e.event_id, e.sender, e.type, e.ts, e.json, a.txn_id
		 FROM account_events a JOIN events e ON e.room_id = a.room_id AND e.event_id = a.event_id
		 WHERE a.user_id = $1 AND a.txn_id = $2 AND a.room_id = $3`,
		string(sender), txnID, string(roomID)).Scan(&e.Seq, &e.RoomID, &e.EventID, &e.Sender, &e.Type, &e.TS, &e.JSON, &e.TxnID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: find transaction %s in %s: %w", txnID, roomID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: find transaction %s in %s: %w", txnID, roomID, err)
	}
	return &e, nil
}

// RecentStreamIDs returns the event IDs of the newest limit events of a
// room the account has seen (its stream and history), newest first.
func (s *SQLStore) RecentStreamIDs(ctx context.Context, userID id.UserID, roomID id.RoomID, limit int) ([]id.EventID, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT event_id FROM account_events WHERE user_id = $1 AND room_id = $2 ORDER BY seq DESC LIMIT $3`,
		string(userID), string(roomID), limit)
	if err != nil {
		return nil, fmt.Errorf("store: load stream of %s in %s: %w", userID, roomID, err)
	}
	defer rows.Close()
	var ids []id.EventID
	for rows.Next() {
		var eventID string
		if err := rows.Scan(&eventID); err != nil {
			return nil, fmt.Errorf("store: load stream of %s in %s: %w", userID, roomID, err)
		}
		ids = append(ids, id.EventID(eventID))
	}
	return ids, rows.Err()
}

// RoomsOver lists the rooms with more than keep stored events, for Prune.
func (s *SQLStore) RoomsOver(ctx context.Context, keep int) ([]id.RoomID, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT room_id FROM events GROUP BY room_id HAVING COUNT(*) > $1`, keep)
	if err != nil {
		return nil, fmt.Errorf("store: find rooms over %d events: %w", keep, err)
	}
	defer rows.Close()
	var rooms []id.RoomID
	for rows.Next() {
		var r id.RoomID
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("store: find rooms over %d events: %w", keep, err)
		}
		rooms = append(rooms, r)
	}
	return rooms, rows.Err()
}
