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

// setMarker moves a room's read marker forward and tells the clients to
// picks that take read markers. Owner goroutine.
func (s *Session) setMarker(r *room, ts int64, to audience) {
	if ts <= r.readTS {
		return
	}
	r.readTS = ts
	s.broadcast(to, func(a *Attachment, out output) { s.sendMarker(a, out, r) })
}

// sendMarker tells a client a room's read marker, if it takes them.
func (s *Session) sendMarker(a *Attachment, out output, r *room) {
	if !a.client.HasCap("draft/read-marker") {
		return
	}
	value := "*"
	if r.readTS > 0 {
		value = "timestamp=" + mapping.FormatTime(r.readTS)
	}
	target := r.channel
	if r.dm != "" {
		target = s.nickOf(a, r.dm)
	}
	out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "MARKREAD", Params: []string{target, value}})
}

// cmdMarkread answers MARKREAD <target> [timestamp=...]: without a time it
// reports the marker, with one it moves the marker in Matrix.
func (s *Session) cmdMarkread(a *Attachment, out output, m *irc.Message) error {
	target := m.Params[0]
	r := s.historyRoom(a, target)
	if r == nil {
		return ircreply.Fail("MARKREAD", "INVALID_PARAMS", target, "No such channel or query: "+target)
	}
	if len(m.Params) < 2 {
		s.sendMarker(a, out, r)
		return nil
	}
	value, ok := strings.CutPrefix(m.Params[1], "timestamp=")
	ts, valid := mapping.ParseTime(value)
	if !ok || !valid {
		return ircreply.Fail("MARKREAD", "INVALID_PARAMS", target, "Give the marker as timestamp=YYYY-MM-DDThh:mm:ss.sssZ")
	}
	if ts <= r.readTS {
		s.sendMarker(a, out, r) // markers only move forward
		return nil
	}
	roomID, st, user := r.id, s.mgr.store, s.user
	s.sideRequest(a, out, "MARKREAD", func(ctx context.Context) func() {
		// A receipt goes on an event the account has seen.
		se, err := st.LastEventBefore(ctx, roomID, user, ts, nil)
		if err == nil {
			eventID := se.EventID
			err = s.cli.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{Read: eventID, FullyRead: eventID})
		}
		return func() {
			switch {
			case errors.Is(err, store.ErrNotFound):
				s.fail(a, out, "MARKREAD", "INVALID_PARAMS", target, "No message at or before that time is known here")
			case err != nil:
				s.fail(a, out, "MARKREAD", "INTERNAL_ERROR", target, "The homeserver did not take the read marker: "+matrixErrorText(err))
			default:
				if r := s.rooms[roomID]; r != nil {
					s.setMarker(r, ts, answering(attached, a, out))
				}
			}
		}
	})
	return nil
}

// historyRoom finds the room a client means by a channel or a nick (its
// query), for MARKREAD and CHATHISTORY.
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
