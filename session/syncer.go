package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// syncer is the session's sync loop and everything it remembers between
// responses. Its methods run only on the sync goroutine (Session.run
// starts it); nothing else reads its fields. It hands the owner what it
// stored through Session.post.
type syncer struct {
	s *Session
	// since is the token of the last response stored ("" before the
	// account's first sync).
	since string
	// first says the next sync is this run's first: an initial sync, or a
	// full-state one when resuming from a stored token.
	first   bool
	backoff time.Duration // the wait before retrying a failed sync
	tr      *streamTracker
	// slot says the syncer holds one of the manager's start slots.
	slot bool
	// resumed is what a session resuming from a token loaded of its
	// rooms, so that it need not sync with full state (resume.go); loaded
	// once, kept across retries, handed to the owner with the first sync.
	resumed     *resumeState
	triedResume bool
}

func newSyncer(s *Session, since string) *syncer {
	return &syncer{s: s, since: since, first: true, tr: newStreamTracker(), triedResume: since == ""}
}

// The sync filters keep sync to what the gateway uses: presence, m.direct,
// typing. The first sync takes a short timeline, as history before the
// client came is not replayed; later ones take more, and a gap the
// homeserver still leaves (a "limited" timeline) is filled by syncing the
// same range again with a longer timeline, so no message is lost between
// two syncs.
const (
	syncFilterCommon = `{"presence":{"types":["m.presence"]},"account_data":{"types":["m.direct","m.ignored_user_list"]},` +
		`"room":{"ephemeral":{"types":["m.typing","m.receipt"]},"account_data":{"types":["m.fully_read"]},"timeline":{"limit":`
	initialSyncFilter = syncFilterCommon + `10}}}`
	// maxGapEvents bounds how far back one gap is filled.
	maxGapEvents = 1000
)

// The first sync (an initial sync, or a full-state one when resuming) is
// the big one, and when the gateway starts every session makes it at
// once: each waits for a start slot, holds it until its response is
// stored and handed over, and does not long-poll, so that what is parsed
// and held at a time stays bounded however many sessions there are.

// takeStartSlot waits for a start slot; false when the session ended
// first. A session a client is attaching to goes before those nobody
// waits for.
func (y *syncer) takeStartSlot() bool {
	if !y.s.mgr.startSlots.acquire(y.s.ctx, y.s.urgent) {
		return false
	}
	y.slot = true
	return true
}

// releaseStartSlot gives back the start slot, if held.
func (y *syncer) releaseStartSlot() {
	if y.slot {
		y.s.mgr.startSlots.release()
		y.slot = false
	}
}

// fail reports a failed sync and waits before the retry, without the
// start slot; false when the session ended meanwhile.
func (y *syncer) fail(err error) bool {
	s := y.s
	y.releaseStartSlot() // not held while waiting
	y.backoff = retryDelay(err, y.backoff)
	s.log.Warn("sync failed, retrying", "err", err, "retry_in", y.backoff)
	s.post(syncFailedEvent{err: err})
	select {
	case <-time.After(y.backoff):
		return true
	case <-s.ctx.Done():
		return false
	}
}

// run long-polls /sync, stores what each response brought together
// with its token, and hands it to the owner. Only the owner applies
// responses, so state never changes under it.
func (y *syncer) run() {
	s := y.s
	defer y.releaseStartSlot()
	for s.ctx.Err() == nil {
		timeout := s.mgr.cfg.SyncTimeout
		if y.first {
			if !y.takeStartSlot() {
				return
			}
			timeout = 0
			// In the start slot, so that a restart does not load or make
			// every account's keys at once.
			if err := s.ensureCrypto(); err != nil {
				if !y.fail(err) {
					return
				}
				continue
			}
			if s.mgr.cfg.LazyMembers {
				// Recorded before anything this sync brings is stored.
				if _, err := s.mgr.lazilyStored(s.ctx); err != nil {
					if !y.fail(err) {
						return
					}
					continue
				}
			}
			if !y.triedResume {
				if err := y.loadResume(); err != nil {
					if !y.fail(fmt.Errorf("loading the rooms' state: %w", err)) {
						return
					}
					continue
				}
			}
		}
		// A session resuming from a stored token without its rooms' state
		// stored (first run after an upgrade) asks for the whole state.
		fullState := y.first && y.since != "" && y.resumed == nil
		if fullState {
			s.mgr.stats.fullStateSyncs.Add(1)
		}
		resp, err := s.cli.FullSyncRequest(s.ctx, mautrix.ReqSync{
			Timeout:     int(timeout / time.Millisecond),
			Since:       y.since,
			FilterID:    y.filter(y.since == ""),
			FullState:   fullState,
			SetPresence: s.presenceToSet(),
		})
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if errors.Is(err, mautrix.MUnknownToken) {
				rerr := s.renewToken()
				if rerr == nil {
					continue
				}
				if !errors.Is(rerr, errGrantRevoked) {
					if !y.fail(rerr) {
						return
					}
					continue
				}
				s.post(loggedOutEvent{err: err, revoked: s.grant.active.Load()})
				return
			}
			if !y.fail(err) {
				return
			}
			continue
		}
		if y.since != "" {
			y.fillGaps(resp)
			if y.first {
				s.addDirect(resp)
				s.addIgnoredList(resp)
			}
		}
		s.mgr.encrypted.markFrom(resp)
		mach := s.olm.Load()
		if mach != nil {
			// Keys first: the room events of this response may need them.
			s.joinedEncrypted.update(resp, s.mgr.encrypted)
			mach.ProcessSyncResponse(s.ctx, resp, y.since)
			s.dispatchVerification(s.ctx, resp)
			s.lateWithheld(resp)
			s.trackMembers(s.ctx, mach, resp)
		}
		seqs, err := y.persistSync(resp, y.first && (y.since == "" || fullState))
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			// Not stored means not received: ask for the same again.
			if !y.fail(fmt.Errorf("saving the sync: %w", err)) {
				return
			}
			continue
		}
		y.backoff = 0
		if mach != nil {
			s.decryptTimeline(s.ctx, mach, resp)
		}
		y.tr.record(resp)
		ev := syncEvent{resp: resp, initial: y.first, seqs: seqs}
		if y.first {
			ev.resumed, y.resumed = y.resumed, nil
		}
		if !s.post(ev) {
			return
		}
		if mach != nil {
			s.deliverLate(s.ctx, mach)
			s.askAgain(s.ctx, mach)
			if s.backupDue.Swap(false) {
				if err := s.backUpKeys(s.ctx, mach); err != nil {
					s.backupDue.Store(true) // again after the next sync
					s.log.Info("could not back up room keys", "err", err)
				}
			}
		}
		y.releaseStartSlot()
		y.first = false
		y.since = resp.NextBatch
	}
}

// loadResume loads what a session resuming from a token needs of its
// rooms (resume.go), in the start slot, so that it need not sync with
// full state.
func (y *syncer) loadResume() error {
	s := y.s
	rs, err := s.loadResume(s.ctx)
	if err != nil {
		return err
	}
	y.triedResume, y.resumed = true, rs
	if rs != nil {
		for roomID := range rs.rooms {
			y.tr.known[roomID] = true
			if s.mgr.encrypted.has(roomID) {
				s.joinedEncrypted.add(roomID)
			}
		}
	}
	return nil
}

func (y *syncer) filter(initial bool) string {
	f := syncFilterCommon + strconv.Itoa(y.s.mgr.cfg.TimelineLimit) + `}}}`
	if initial {
		f = initialSyncFilter
	}
	if y.s.mgr.cfg.LazyMembers {
		f = lazyMembersFilter(f)
	}
	return f
}

// lazyMembersFilter asks for lazy-loaded members (Dendrite reads the
// state filter's flag; the spec puts it on both).
func lazyMembersFilter(f string) string {
	f = strings.Replace(f, `"room":{`, `"room":{"state":{"lazy_load_members":true},`, 1)
	return strings.Replace(f, `"timeline":{`, `"timeline":{"lazy_load_members":true,`, 1)
}

// fillGaps fetches the events a limited timeline left out since the last
// sync. It syncs again from the same position, for the limited rooms
// alone, with a timeline of up to maxGapEvents, and takes what that brings
// in place of the limited timeline, less what the room already delivered.
// /messages is no substitute: it orders by the room graph, and Dendrite
// leaves out of a range bounded by a sync token the events at the bound's
// depth, which concurrent senders produce. The second sync may reach past
// the first one's end; the events it brings early are stored now, so the
// next sync's copies are duplicates and are not shown again. A room new to
// this sync is shown without its history.
func (y *syncer) fillGaps(resp *mautrix.RespSync) {
	s, tr := y.s, y.tr
	var rooms []id.RoomID
	for roomID, joined := range resp.Rooms.Join {
		// (After a restart every room is new to the tracker, but not to
		// the store.)
		if joined.Timeline.Limited && (tr.known[roomID] || tr.responses == 0) {
			rooms = append(rooms, roomID)
		}
	}
	if len(rooms) == 0 {
		return
	}
	ids, _ := json.Marshal(rooms)
	filter := `{"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]},"room":{"rooms":` + string(ids) +
		`,"state":{"not_types":["*"]},"ephemeral":{"not_types":["*"]},"account_data":{"not_types":["*"]},"timeline":{"limit":` +
		strconv.Itoa(maxGapEvents) + `}}}`
	again, err := s.cli.FullSyncRequest(s.ctx, mautrix.ReqSync{Since: y.since, FilterID: filter, SetPresence: s.presenceToSet()})
	if err != nil {
		s.log.Warn("could not fill a gap in the timeline; some events are missing", "rooms", len(rooms), "err", err)
		return
	}
	for _, roomID := range rooms {
		seen := y.deliveredIDs(roomID)
		j := again.Rooms.Join[roomID]
		if seen == nil || j == nil {
			continue // nothing delivered yet: a room new to the account
		}
		if j.Timeline.Limited {
			s.log.Warn("more events since the last sync than a gap is filled with; the oldest are only in the history", "room", roomID, "kept", len(j.Timeline.Events))
		}
		filled := make([]*event.Event, 0, len(j.Timeline.Events))
		for _, ev := range j.Timeline.Events {
			if !seen[ev.ID] {
				filled = append(filled, ev)
			}
		}
		resp.Rooms.Join[roomID].Timeline.Events = filled
		if !j.Summary.IsZero() {
			// The membership changes the short timeline left out are
			// counted in this summary, not in the first response's.
			resp.Rooms.Join[roomID].Summary = j.Summary
		}
		s.gapsFilled.Add(1)
	}
}
