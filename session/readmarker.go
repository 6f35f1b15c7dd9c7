package session

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// draft/read-marker: a room's read marker is the time of the newest event
// the account has read. Matrix keeps it as the account's m.fully_read
// (room account data) and m.read receipts; IRC clients see and set it with
// MARKREAD, and every client of the account shares it.

// applyReadMarkers picks the account's own m.fully_read and read receipts
// out of a sync response. Owner goroutine.
func (s *Session) applyReadMarkers(resp *mautrix.RespSync) {
	var pending []markerRef
	for roomID, joined := range resp.Rooms.Join {
		for _, ev := range joined.AccountData.Events {
			if ev.Type.Type != event.AccountDataFullyRead.Type {
				continue
			}
			var c struct {
				EventID id.EventID `json:"event_id"`
			}
			if json.Unmarshal(ev.Content.VeryRaw, &c) == nil && c.EventID != "" {
				pending = append(pending, markerRef{roomID, c.EventID})
			}
		}
		for _, ev := range joined.Ephemeral.Events {
			if ev.Type.Type != event.EphemeralEventReceipt.Type {
				continue
			}
			var receipts map[id.EventID]map[string]map[id.UserID]json.RawMessage
			if json.Unmarshal(ev.Content.VeryRaw, &receipts) != nil {
				continue
			}
			for eventID, byType := range receipts {
				for typ, users := range byType {
					if _, own := users[s.user]; own && (typ == "m.read" || typ == "m.read.private") {
						pending = append(pending, markerRef{roomID, eventID})
					}
				}
			}
		}
	}
	if len(pending) > 0 {
		s.resolveMarkers(pending)
	}
}

type markerRef struct {
	room  id.RoomID
	event id.EventID
}

// resolveMarkers finds the time of each marked event (in the store, else
// from the homeserver) off the owner goroutine, then moves the markers.
// One helper at a time (s.markers): markers that come while it runs are
// gathered, and the next helper takes them all. Owner goroutine.
func (s *Session) resolveMarkers(refs []markerRef) {
	for _, ref := range refs {
		if !slices.Contains(s.markerRefs, ref) {
			s.markerRefs = append(s.markerRefs, ref)
		}
	}
	if !s.markers.idle() || len(s.markerRefs) == 0 {
		return // the running helper starts the next when it ends
	}
	refs, s.markerRefs = s.markerRefs, nil
	st := s.mgr.store
	s.markers.start(s, func(ctx context.Context) func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		times := make([]int64, len(refs))
		for i, ref := range refs {
			if se, err := st.FindEvent(ctx, ref.room, ref.event); err == nil {
				times[i] = se.TS
				continue
			}
			if ev, err := s.cli.GetEvent(ctx, ref.room, ref.event); err == nil {
				times[i] = ev.Timestamp
			} else if ctx.Err() == nil {
				s.log.Debug("cannot find a read marker's event", "room", ref.room, "event", ref.event, "err", err)
			}
		}
		return func() {
			for i, ref := range refs {
				if r := s.rooms[ref.room]; r != nil && times[i] > 0 {
					s.setMarker(r, times[i], attached)
				}
			}
			s.resolveMarkers(nil) // those that came meanwhile
		}
	})
}

// markTarget is what a read marker belongs to: a channel's room, or a
// query with a user, whose room may not exist yet.
type markTarget struct {
	r    *room     // nil for a query without a room
	user id.UserID // the query's peer; "" for a channel
}

// key is the target under which the account's store keeps its marker:
// a query's by the peer, so that it outlives a missing or new room.
func (t markTarget) key() string {
	if t.user != "" {
		return string(t.user)
	}
	return string(t.r.id)
}

func roomMark(r *room) markTarget { return markTarget{r: r, user: r.dm} }

// markTargetOf finds what a client means by a MARKREAD target: a joined
// channel, or a nick (or Matrix ID) as a query, with or without a room.
func (s *Session) markTargetOf(a *Attachment, target string) (markTarget, bool) {
	if r := s.roomByChannel(target); r != nil {
		return roomMark(r), true
	}
	if target == "" || strings.ContainsRune("#!", rune(target[0])) {
		return markTarget{}, false
	}
	user, ok := s.userForTarget(a, target)
	if !ok {
		user, ok = s.matrixUserNamed(target)
	}
	if !ok {
		return markTarget{}, false
	}
	return markTarget{r: s.dmRoomWith(user), user: user}, true
}

// markerTS is a target's read marker, 0 when none is known: the later of
// the one Matrix holds (on an event) and the one a client set.
func (s *Session) markerTS(t markTarget) int64 {
	ts := s.readMarks[t.key()]
	if t.r != nil {
		ts = max(ts, t.r.readTS)
	}
	return ts
}

// markerName is the target's name as client a knows it.
func (s *Session) markerName(a *Attachment, t markTarget) string {
	if t.user != "" {
		return s.nickOf(a, t.user)
	}
	return t.r.channel
}

// setMarker moves a room's read marker, as Matrix holds it, forward and
// tells the clients to picks that take read markers. Owner goroutine.
func (s *Session) setMarker(r *room, ts int64, to audience) {
	if ts <= s.markerTS(roomMark(r)) {
		return
	}
	r.readTS = ts
	s.broadcast(to, func(a *Attachment, out output) { s.sendMarker(a, out, r) })
}

// sendMarker tells a client a room's read marker, if it takes them.
func (s *Session) sendMarker(a *Attachment, out output, r *room) {
	t := roomMark(r)
	s.sendMarkerLine(a, out, s.markerName(a, t), s.markerTS(t))
}

// sendMarkerLine sends MARKREAD target with the marker ts (* for none),
// if the client takes read markers.
func (s *Session) sendMarkerLine(a *Attachment, out output, target string, ts int64) {
	if !a.client.HasCap("draft/read-marker") {
		return
	}
	value := "*"
	if ts > 0 {
		value = "timestamp=" + mapping.FormatTime(ts)
	}
	out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "MARKREAD", Params: []string{target, value}})
}

// maxMarkerAhead is how far past the gateway's clock a client may set a
// read marker: the times it marks come from the homeserver, whose clock
// may be ahead, but a marker far in the future would stop it moving
// (it never goes back) until that time.
const maxMarkerAhead = 5 * time.Minute

// cmdMarkread answers MARKREAD <target> [timestamp=...]: without a time it
// reports the marker (* for a target with none, or one the account does
// not know); with one it keeps the client's time as the marker, exactly,
// and moves the account's Matrix read marker and receipt to the newest
// event at or before it that is later than Matrix's marker, when the
// target has a room with one.
func (s *Session) cmdMarkread(a *Attachment, out output, m *irc.Message) error {
	if len(m.Params) == 0 || m.Params[0] == "" {
		return ircreply.Fail("MARKREAD", "NEED_MORE_PARAMS", "", "Missing parameters")
	}
	target := m.Params[0]
	t, known := s.markTargetOf(a, target)
	if len(m.Params) < 2 {
		var ts int64
		if known {
			ts = s.markerTS(t)
		}
		s.sendMarkerLine(a, out, target, ts)
		return nil
	}
	value, ok := strings.CutPrefix(m.Params[1], "timestamp=")
	ts, valid := mapping.ParseTime(value)
	switch {
	case !ok || !valid:
		return ircreply.Fail("MARKREAD", "INVALID_PARAMS", target, "Give the marker as timestamp=YYYY-MM-DDThh:mm:ss.sssZ")
	case !known:
		return ircreply.Fail("MARKREAD", "INVALID_PARAMS", target, "No such channel or nick: "+target)
	case ts > time.Now().Add(maxMarkerAhead).UnixMilli():
		return ircreply.Fail("MARKREAD", "INVALID_PARAMS", target, "That time is in the future")
	}
	if cur := s.markerTS(t); ts <= cur {
		s.sendMarkerLine(a, out, target, cur) // markers only move forward
		return nil
	}
	key, st, user := t.key(), s.mgr.store, s.user
	var roomID id.RoomID
	var matrixTS int64
	if t.r != nil {
		roomID, matrixTS = t.r.id, t.r.readTS
	}
	s.sideRequest(a, out, "MARKREAD", func(ctx context.Context) func() {
		err := st.PutReadMarker(ctx, user, key, ts)
		var merr error
		if err == nil && roomID != "" {
			// Matrix's markers go on an event the account has seen.
			se, ferr := st.LastEventBefore(ctx, roomID, user, ts, nil)
			switch {
			case ferr == nil && se.TS > matrixTS:
				merr = s.cli.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{Read: se.EventID, FullyRead: se.EventID})
			case ferr != nil && !errors.Is(ferr, store.ErrNotFound):
				merr = ferr
			}
		}
		return func() {
			if err != nil {
				s.fail(a, out, "MARKREAD", "INTERNAL_ERROR", target, "The read marker could not be saved")
				s.log.Warn("cannot save a read marker", "target", key, "err", err)
				return
			}
			if merr != nil {
				// The gateway's marker moved; Matrix clients of the
				// account do not see it.
				s.log.Warn("the homeserver did not take a read marker", "room", roomID, "err", matrixErrorText(merr))
			}
			s.clientMarked(a, out, target, t.user, roomID, ts)
		}
	})
	return nil
}

// clientMarked records a marker a client set for a query's peer or a
// channel's room and shows it to every client that takes read markers:
// the one that set it by the target as it typed it, the others by the
// name they know. Owner goroutine.
func (s *Session) clientMarked(asker *Attachment, out output, typed string, peer id.UserID, roomID id.RoomID, ts int64) {
	key := string(roomID)
	if peer != "" {
		key = string(peer)
	}
	if s.readMarks == nil {
		s.readMarks = map[string]int64{}
	}
	s.readMarks[key] = max(s.readMarks[key], ts)
	t := markTarget{user: peer}
	if peer != "" {
		t.r = s.dmRoomWith(peer) // its room may be new
	} else if t.r = s.rooms[roomID]; t.r == nil {
		s.sendMarkerLine(asker, out, typed, s.readMarks[key]) // a channel left meanwhile
		return
	}
	s.broadcast(answering(attached, asker, out), func(a *Attachment, out output) {
		name := s.markerName(a, t)
		if a == asker {
			name = typed
		}
		s.sendMarkerLine(a, out, name, s.markerTS(t))
	})
}

// historyRoom finds the room a client means by a channel or a nick (its
// query), for CHATHISTORY.
func (s *Session) historyRoom(a *Attachment, target string) *room {
	if r := s.roomByChannel(target); r != nil {
		return r
	}
	if target == "" || strings.ContainsRune("#!", rune(target[0])) {
		return nil
	}
	if user, ok := s.userForTarget(a, target); ok {
		return s.dmRoomWith(user)
	}
	return nil
}
