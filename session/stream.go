package session

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// The account's stream is every timeline event the account received, in
// the order it received them, each stored once (shared between accounts)
// and numbered per account. A sync response is stored with its token in
// one transaction before it is shown, so a crash can neither lose nor
// repeat it. Each IRC client name has a cursor into the stream: what it
// has been given. See bouncer.go for replay.

// streamTracker is what the sync loop remembers between responses; what
// each room delivered is in the store, not here. The syncer's.
type streamTracker struct {
	known     map[id.RoomID]bool      // joined rooms seen in an earlier response
	direct    map[id.RoomID]id.UserID // rooms that are DMs (m.direct, direct invites), with the peer
	responses int                     // responses stored so far
}

func newStreamTracker() *streamTracker {
	return &streamTracker{known: map[id.RoomID]bool{}, direct: map[id.RoomID]id.UserID{}}
}

// record notes the rooms a stored response brought.
func (tr *streamTracker) record(resp *mautrix.RespSync) {
	tr.responses++
	for roomID := range resp.Rooms.Join {
		tr.known[roomID] = true
	}
	for roomID := range resp.Rooms.Leave {
		delete(tr.known, roomID)
	}
}

// noteDirect learns which rooms are DMs before a response is stored: a new
// DM's earlier messages belong in the stream (they are shown), a new
// channel's are only history.
func (tr *streamTracker) noteDirect(resp *mautrix.RespSync, user id.UserID, log *slog.Logger) {
	if direct, ok := directRooms(resp.AccountData.Events, log); ok {
		clear(tr.direct)
		for roomID, peer := range direct {
			tr.direct[roomID] = peer
		}
	}
	for roomID, invited := range resp.Rooms.Invite {
		for _, ev := range invited.State.Events {
			if ev.Type == event.StateMember && ev.GetStateKey() == user.String() {
				var c struct {
					IsDirect bool `json:"is_direct"`
				}
				if json.Unmarshal(ev.Content.VeryRaw, &c) == nil && c.IsDirect {
					tr.direct[roomID] = ev.Sender
				}
			}
		}
	}
}

// sortedRoomIDs gives a response's rooms in one fixed order, so that the
// owner shows events in the order their stream positions were given.
func sortedRoomIDs[T any](rooms map[id.RoomID]T) []id.RoomID {
	ids := make([]id.RoomID, 0, len(rooms))
	for roomID := range rooms {
		ids = append(ids, roomID)
	}
	slices.Sort(ids)
	return ids
}

// persistSync stores a response's timeline events, its rooms' state and
// the account's joined rooms with its token, and returns the stream
// position of each event that is new to the account. allRooms says the
// response names every room the account is in (an initial or full-state
// sync).
func (y *syncer) persistSync(resp *mautrix.RespSync, allRooms bool) (map[id.EventID]int64, error) {
	s, tr := y.s, y.tr
	tr.noteDirect(resp, s.user, s.log)
	if s.mgr.cfg.LazyMembers {
		y.fetchHeroes(resp)
	}
	batch := &store.SyncBatch{UserID: s.user, NextBatch: resp.NextBatch, AllRooms: allRooms}
	// The rooms' state, and which rooms the account is in, go with the
	// token, so that a restart can resume from it (resume.go).
	var sections map[id.RoomID]uint64
	batch.State, sections = stateOf(resp, &s.mgr.sections, s.log)
	for _, roomID := range sortedRoomIDs(resp.Rooms.Join) {
		if allRooms || !tr.known[roomID] {
			batch.Joined = append(batch.Joined, roomID)
		}
		if sum, ok := summaryForStore(&resp.Rooms.Join[roomID].Summary); ok {
			if batch.Summaries == nil {
				batch.Summaries = map[id.RoomID]store.RoomSummary{}
			}
			batch.Summaries[roomID] = sum
		}
	}
	for _, roomID := range sortedRoomIDs(resp.Rooms.Leave) {
		if _, rejoined := resp.Rooms.Join[roomID]; !rejoined {
			batch.Left = append(batch.Left, roomID)
		}
	}
	add := func(roomID id.RoomID, events []*event.Event, inStream func(i int) bool) {
		for i, ev := range events {
			ev.RoomID = roomID
			// The transaction ID is this account's, not the shared
			// event's: it goes with the account's stream.
			txnID := ev.Unsigned.TransactionID
			ev.Unsigned.TransactionID = ""
			raw, err := json.Marshal(ev)
			ev.Unsigned.TransactionID = txnID
			if err != nil {
				s.log.Warn("cannot store an event", "event", ev.ID, "err", err)
				continue
			}
			if ev.Sender != s.user {
				txnID = ""
			}
			batch.Events = append(batch.Events, store.StoredEvent{
				RoomID: roomID, EventID: ev.ID, Sender: ev.Sender,
				Type: ev.Type.Type, TS: ev.Timestamp, JSON: raw, HistoryOnly: !inStream(i), TxnID: txnID,
			})
		}
	}
	for _, roomID := range sortedRoomIDs(resp.Rooms.Join) {
		events := resp.Rooms.Join[roomID].Timeline.Events
		from := 0
		if tr.responses > 0 && !tr.known[roomID] && tr.direct[roomID] == "" {
			// A room new to the account: what came before its own join
			// is history, not something it missed.
			for i, ev := range events {
				if isOwnJoin(ev, s.user) {
					from = i
				}
			}
		}
		add(roomID, events, func(i int) bool { return i >= from })
	}
	for _, roomID := range sortedRoomIDs(resp.Rooms.Leave) {
		add(roomID, resp.Rooms.Leave[roomID].Timeline.Events, func(int) bool { return true })
	}
	if len(batch.Events) == 0 && len(batch.State) == 0 && len(batch.Joined) == 0 && len(batch.Left) == 0 && len(batch.Summaries) == 0 && !allRooms {
		// Presence, typing, receipts: nothing to keep. Not storing the
		// token means a restart asks for them again, which changes
		// nothing; storing it would be a write per account every time
		// someone in a big room comes online or types.
		return map[id.EventID]int64{}, nil
	}
	// Saves wait their turn here, not in the store's connection pool:
	// when thousands of sessions start at once, a save that spent its
	// whole timeout waiting for a connection would be retried with a new
	// /sync, more work for the same result, and the start would not
	// converge.
	select {
	case s.mgr.saveSlots <- struct{}{}:
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
	defer func() { <-s.mgr.saveSlots }()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	positions, err := s.mgr.store.SaveSync(ctx, batch)
	if err != nil {
		return nil, err
	}
	s.mgr.sections.stored(sections)
	seqs := make(map[id.EventID]int64, len(positions))
	for i, pos := range positions {
		if pos > 0 {
			seqs[batch.Events[i].EventID] = pos
		}
	}
	return seqs, nil
}

// deliveredIDs is what the account's stream holds of a room's latest
// events, for filling a gap; nil when it holds nothing.
func (y *syncer) deliveredIDs(roomID id.RoomID) map[id.EventID]bool {
	s := y.s
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	ids, err := s.mgr.store.RecentStreamIDs(ctx, s.user, roomID, 500)
	if err != nil || len(ids) == 0 {
		return nil
	}
	set := make(map[id.EventID]bool, len(ids))
	for _, eventID := range ids {
		set[eventID] = true
	}
	return set
}

// isOwnJoin is the user's own m.room.member event that made them a member
// (not a display name change).
func isOwnJoin(ev *event.Event, user id.UserID) bool {
	if ev.Type != event.StateMember || ev.GetStateKey() != user.String() {
		return false
	}
	var c, prev struct {
		Membership string `json:"membership"`
	}
	if json.Unmarshal(ev.Content.VeryRaw, &c) != nil || c.Membership != "join" {
		return false
	}
	if ev.Unsigned.PrevContent != nil {
		_ = json.Unmarshal(ev.Unsigned.PrevContent.VeryRaw, &prev)
	}
	return prev.Membership != "join"
}
