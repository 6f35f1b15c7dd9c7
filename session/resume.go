package session

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"sync"
	"time"
	"weak"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// A restart resumes every always-on session from its stored sync token.
// With only the token, a session knows no rooms, so it would have to ask
// for the full state of all of them (a full-state sync, the biggest
// request there is, 10,000 times over). Instead the store keeps what a
// session needs of room state: the rooms each account is in (written with
// its token) and each room's state events (once per room for all
// accounts). A resuming session loads those and syncs incrementally from
// its token; what changed meanwhile comes in that sync and is applied on
// top. A room's stored state may be newer than the account's token (another
// account stored more since), never older: the state events are saved in
// the same save as the token that covers them, and the incremental sync
// repeats every change after the token, so the state ends up current.

// resumeState is what a session loaded to resume from: its rooms, each
// with its state as stored (shared with the other sessions resuming in the
// same room).
type resumeState struct {
	rooms     map[id.RoomID]*roomState
	summaries map[id.RoomID]roomSummary // the account's own (summary.go)
}

// loadedStates shares rooms' stored state between the sessions that resume
// in them, so that a room of thousands of members is read and held once,
// not once per account.
type loadedStates struct {
	mu    sync.Mutex
	rooms map[id.RoomID]*loadedState
}

type loadedState struct {
	done chan struct{} // closed when st and err are set
	at   time.Time     // when the load began
	st   weak.Pointer[roomState]
	err  error
}

// loadResume reads the account's rooms and their state from the store;
// nil when the store does not hold them (the session must sync with full
// state). started is when the session was launched: a stored state loaded
// after that covers its token (saved by an earlier run), one loaded before
// may not. Sync loop.
func (s *Session) loadResume(ctx context.Context) (*resumeState, error) {
	rooms, ok, err := s.mgr.store.AccountRooms(ctx, s.user)
	if err != nil || !ok {
		return nil, err
	}
	rs := &resumeState{rooms: make(map[id.RoomID]*roomState, len(rooms)), summaries: make(map[id.RoomID]roomSummary, len(rooms))}
	started := time.Unix(0, s.started)
	for _, room := range rooms {
		st, err := s.mgr.loaded.get(ctx, s.mgr, room.RoomID, started)
		if err != nil {
			return nil, err
		}
		rs.rooms[room.RoomID] = st
		rs.summaries[room.RoomID] = summaryFromStore(room.Summary)
	}
	return rs, nil
}

// get returns the room's stored state, loading it unless a load that began
// after since has it already.
func (l *loadedStates) get(ctx context.Context, m *Manager, roomID id.RoomID, since time.Time) (*roomState, error) {
	l.mu.Lock()
	if l.rooms == nil {
		l.rooms = map[id.RoomID]*loadedState{}
	}
	e := l.rooms[roomID]
	if e != nil {
		select {
		case <-e.done:
			if st := e.st.Value(); st != nil && e.err == nil && e.at.After(since) {
				l.mu.Unlock()
				return st, nil
			}
			e = nil
		default:
			if !e.at.After(since) {
				e = nil
			}
		}
	}
	if e != nil {
		l.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if st := e.st.Value(); st != nil && e.err == nil {
			return st, nil
		}
		return l.get(ctx, m, roomID, since)
	}
	e = &loadedState{done: make(chan struct{}), at: time.Now()}
	l.rooms[roomID] = e
	l.mu.Unlock()
	st, err := loadRoomState(ctx, m, roomID)
	e.err = err
	if st != nil {
		e.st = weak.Make(st)
	}
	close(e.done)
	if err != nil {
		l.mu.Lock()
		if l.rooms[roomID] == e {
			delete(l.rooms, roomID)
		}
		l.mu.Unlock()
		return nil, err
	}
	m.stats.statesLoaded.Add(1)
	return st, nil
}

// loadRoomState builds a room's state from its stored events, shared with
// any session that holds an equal one.
func loadRoomState(ctx context.Context, m *Manager, roomID id.RoomID) (*roomState, error) {
	raws, err := m.store.RoomState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	st := newRoomState()
	// A sync with lazy-loaded members stores only the members it showed:
	// if this gateway ever synced so, the stored events may not hold
	// every member, and the full list is fetched again when first needed.
	partial, err := m.lazilyStored(ctx)
	if err != nil {
		return nil, err
	}
	st.partial = partial
	for _, raw := range raws {
		var ev event.Event
		if err := json.Unmarshal(raw, &ev); err != nil || ev.StateKey == nil || !parseContent(&ev) {
			continue
		}
		if ev.Type.Type == event.StateEncryption.Type && *ev.StateKey == "" {
			m.encrypted.mark(roomID, ev.Content.AsEncryption())
		}
		if matters(&ev) {
			st.apply(&ev)
		}
	}
	return m.shared.share(roomID, st), nil
}

// stateOf lists the state events of a response for the store: each joined
// room's state section and the state events of its timeline. A state
// section the gateway stored already (the first syncs of the accounts in
// a room bring the same one) is left out; sections lists the others' keys,
// to record with sections.stored once they are saved.
func stateOf(resp *mautrix.RespSync, seen *storedSections, log interface{ Warn(string, ...any) }) (out []store.StateEvent, sections map[id.RoomID]uint64) {
	for _, roomID := range sortedRoomIDs(resp.Rooms.Join) {
		joined := resp.Rooms.Join[roomID]
		state := joined.State.Events
		if len(state) > 1 {
			key := sectionKey(state)
			if seen.has(roomID, key) {
				state = nil
			} else {
				if sections == nil {
					sections = map[id.RoomID]uint64{}
				}
				sections[roomID] = key
			}
		}
		for _, events := range [][]*event.Event{state, joined.Timeline.Events} {
			for _, ev := range events {
				if ev.StateKey == nil || ev.ID == "" {
					continue
				}
				ev.RoomID = roomID
				txnID := ev.Unsigned.TransactionID
				ev.Unsigned.TransactionID = ""
				raw, err := json.Marshal(ev)
				ev.Unsigned.TransactionID = txnID
				if err != nil {
					log.Warn("cannot store a state event", "event", ev.ID, "err", err)
					continue
				}
				out = append(out, store.StateEvent{
					RoomID: roomID, EventID: ev.ID, Type: ev.Type.Type, StateKey: *ev.StateKey, JSON: raw,
				})
			}
		}
	}
	return out, sections
}

// storedSections remembers, per room, the last state section stored whole
// (by a key of its event IDs), so that the thousands of accounts in a
// room do not each write, or look up, the same few thousand state events
// when they start. Any goroutine.
type storedSections struct {
	mu    sync.Mutex
	rooms map[id.RoomID]uint64
}

var sectionSeed = maphash.MakeSeed()

func sectionKey(events []*event.Event) uint64 {
	var h maphash.Hash
	h.SetSeed(sectionSeed)
	for _, ev := range events {
		h.WriteString(string(ev.ID))
		h.WriteByte(0)
	}
	return h.Sum64()
}

func (ss *storedSections) has(roomID id.RoomID, key uint64) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	k, ok := ss.rooms[roomID]
	return ok && k == key
}

func (ss *storedSections) stored(sections map[id.RoomID]uint64) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.rooms == nil {
		ss.rooms = map[id.RoomID]uint64{}
	}
	for roomID, key := range sections {
		ss.rooms[roomID] = key
	}
}

// resumeRooms makes the rooms a resumed session loaded, before its first
// (incremental) sync is applied on top of them. Owner goroutine.
func (s *Session) resumeRooms(rs *resumeState) {
	s.resuming = make(map[id.RoomID]*room, len(rs.rooms))
	for roomID, st := range rs.rooms {
		r := s.newRoom(roomID)
		r.roomState, r.shared = st, true
		r.summary = rs.summaries[roomID]
		s.resuming[roomID] = r
	}
}

// takeResumed hands over a loaded room that the first sync brings news of.
// Owner goroutine.
func (s *Session) takeResumed(roomID id.RoomID) *room {
	r := s.resuming[roomID]
	delete(s.resuming, roomID)
	return r
}

// announceResumed shows the loaded rooms the first sync said nothing
// about (nothing happened in them), except those it says the account left.
// Owner goroutine.
func (s *Session) announceResumed(resp *mautrix.RespSync) {
	for _, roomID := range sortedRoomIDs(s.resuming) {
		r := s.resuming[roomID]
		if _, left := resp.Rooms.Leave[roomID]; !left {
			s.announceRoom(r, nil, nil)
		}
	}
	s.resuming = nil
}

// FullStateSyncs is how many sessions have started with a full-state sync
// (resuming from a token without the rooms' state stored), and
// RoomStatesLoaded how many rooms' state was read from the store instead.
// Any goroutine.
func (m *Manager) FullStateSyncs() uint64   { return m.stats.fullStateSyncs.Load() }
func (m *Manager) RoomStatesLoaded() uint64 { return m.stats.statesLoaded.Load() }
