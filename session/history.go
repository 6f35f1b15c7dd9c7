package session

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// draft/chathistory, served from the event store and, further back than
// it reaches, from the homeserver's /messages.

// messageTypes are the events that count as messages in history; with
// draft/event-playback, every event does.
var messageTypes = []string{
	event.EventMessage.Type, event.EventSticker.Type, event.EventReaction.Type,
	event.EventRedaction.Type, event.EventEncrypted.Type,
}

func (s *Session) cmdChathistory(a *Attachment, m *irc.Message) {
	req, err := mapping.ParseHistoryRequest(m.Params)
	if err != nil {
		var he *mapping.HistoryError
		errors.As(err, &he)
		s.standardReply(a, "FAIL", "CHATHISTORY", he.Code, strings.Join(he.Context, " "), he.Text)
		return
	}
	if req.Sub == "TARGETS" {
		s.historyTargets(a, req)
		return
	}
	r := s.historyRoom(a, req.Target)
	if r == nil {
		s.standardReply(a, "FAIL", "CHATHISTORY", "INVALID_TARGET", req.Sub+" "+req.Target, "No such channel or query: "+req.Target)
		return
	}
	var types []string
	if !a.client.HasCap("draft/event-playback") {
		types = messageTypes
	}
	roomID := r.id
	s.request(a, "CHATHISTORY", func(ctx context.Context) func() {
		events, err := s.queryHistory(ctx, roomID, req, types)
		return func() {
			if err != nil {
				s.standardReply(a, "FAIL", "CHATHISTORY", "MESSAGE_ERROR", req.Sub+" "+req.Target, "Could not load the history: "+err.Error())
				return
			}
			r := s.rooms[roomID]
			if r == nil {
				s.standardReply(a, "FAIL", "CHATHISTORY", "INVALID_TARGET", req.Sub+" "+req.Target, "You left "+req.Target)
				return
			}
			s.sendHistoryBatch(a, r, req.Target, events)
		}
	})
}

// anchor is a resolved history reference: a room position when the event
// is in the store, else a time.
type anchor struct {
	seq int64
	ts  int64
}

// resolve finds a reference's place. A message ID the store does not know
// is looked up on the homeserver for its time. Request worker only.
func (s *Session) resolve(ctx context.Context, roomID id.RoomID, ref mapping.HistoryRef) (anchor, error) {
	if ref.MsgID == "" {
		return anchor{ts: ref.TS}, nil
	}
	se, err := s.mgr.store.FindEvent(ctx, roomID.String(), ref.MsgID)
	if err == nil {
		return anchor{seq: se.Seq, ts: se.TS}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return anchor{}, err
	}
	ev, err := s.cli.GetEvent(ctx, roomID, id.EventID(ref.MsgID))
	if err != nil {
		return anchor{}, errors.New("unknown message ID " + ref.MsgID)
	}
	return anchor{ts: ev.Timestamp}, nil
}

// after and before turn an anchor into exclusive bounds of a query.
func (an anchor) after(q *store.HistoryQuery) {
	if an.seq > 0 {
		q.AfterSeq = an.seq
	} else {
		q.AfterTS = an.ts
	}
}

func (an anchor) before(q *store.HistoryQuery) {
	if an.seq > 0 {
		q.BeforeSeq = an.seq
	} else {
		q.BeforeTS = an.ts
	}
}

// queryHistory runs one CHATHISTORY query and returns its events oldest
// first. Request worker only.
func (s *Session) queryHistory(ctx context.Context, roomID id.RoomID, req *mapping.HistoryRequest, types []string) ([]store.StoredEvent, error) {
	st := s.mgr.store
	q := store.HistoryQuery{RoomID: roomID.String(), Limit: req.Limit, Types: types}
	from, err := s.resolve(ctx, roomID, req.From)
	if err != nil && !req.From.Star {
		return nil, err
	}
	backward := true
	switch req.Sub {
	case "LATEST":
		if !req.From.Star {
			from.after(&q)
		}
		q.Newest = true
	case "BEFORE":
		from.before(&q)
		q.Newest = true
	case "AFTER":
		from.after(&q)
		backward = false
	case "AROUND":
		q.Limit = max(req.Limit/2, 1)
		from.before(&q)
		q.Newest = true
		older, err := st.RoomHistory(ctx, q)
		if err != nil {
			return nil, err
		}
		newer := store.HistoryQuery{RoomID: q.RoomID, Limit: req.Limit - len(older), Types: types}
		if from.seq > 0 {
			newer.AfterSeq = from.seq - 1 // the anchor itself is around it
		} else {
			newer.AfterTS = from.ts - 1
		}
		later, err := st.RoomHistory(ctx, newer)
		if err != nil {
			return nil, err
		}
		return append(older, later...), nil
	case "BETWEEN":
		to, err := s.resolve(ctx, roomID, req.To)
		if err != nil {
			return nil, err
		}
		if from.ts <= to.ts {
			from.after(&q)
			to.before(&q)
			backward = false
		} else {
			to.after(&q)
			from.before(&q)
			q.Newest = true
		}
	}
	events, err := st.RoomHistory(ctx, q)
	if err != nil || !backward || len(events) >= req.Limit {
		return events, err
	}
	// The store holds a window of each room: reach further back on the
	// homeserver, from before the oldest event found (or the anchor).
	older, err := s.fetchOlder(ctx, roomID, events, req, q, types)
	if err != nil {
		s.log.Info("could not fetch older history from the homeserver", "room", roomID, "err", err)
		return events, nil
	}
	return append(older, events...), nil
}

// fetchOlder pages /messages backward from just before the oldest event the
// store gave (or the query's upper bound) for what the limit still allows,
// keeping to the query's bounds. Request worker only.
func (s *Session) fetchOlder(ctx context.Context, roomID id.RoomID, have []store.StoredEvent, req *mapping.HistoryRequest, q store.HistoryQuery, types []string) ([]store.StoredEvent, error) {
	want := req.Limit - len(have)
	var start id.EventID
	switch {
	case len(have) > 0:
		start = id.EventID(have[0].EventID)
	case req.From.MsgID != "" && req.Sub != "LATEST":
		start = id.EventID(req.From.MsgID)
	default:
		oldest, err := s.mgr.store.RoomHistory(ctx, store.HistoryQuery{RoomID: roomID.String(), Limit: 1})
		if err != nil || len(oldest) == 0 {
			return nil, err
		}
		if q.BeforeTS == 0 && q.BeforeSeq == 0 {
			return nil, nil // the store has all there is after its oldest event
		}
		if q.BeforeTS != 0 && q.BeforeTS <= oldest[0].TS || q.BeforeSeq != 0 && q.BeforeSeq <= oldest[0].Seq {
			start = id.EventID(oldest[0].EventID)
		} else {
			return nil, nil
		}
	}
	c, err := s.cli.Context(ctx, roomID, start, nil, 0)
	if err != nil {
		return nil, err
	}
	var found []store.StoredEvent
	from := c.Start
	for len(found) < want && from != "" {
		page, err := s.cli.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, min(100, 2*want))
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Chunk {
			if ev.Timestamp <= q.AfterTS || (len(types) > 0 && !slices.Contains(types, ev.Type.Type)) {
				continue
			}
			if q.BeforeTS != 0 && ev.Timestamp >= q.BeforeTS {
				continue
			}
			ev.RoomID = roomID
			raw, err := ev.MarshalJSON()
			if err != nil {
				continue
			}
			found = append(found, store.StoredEvent{RoomID: roomID.String(), EventID: ev.ID.String(), Sender: ev.Sender.String(), Type: ev.Type.Type, TS: ev.Timestamp, JSON: raw})
			if len(found) == want {
				break
			}
		}
		if q.AfterTS != 0 && len(page.Chunk) > 0 && page.Chunk[len(page.Chunk)-1].Timestamp <= q.AfterTS {
			break // past the lower bound
		}
		if page.End == "" || page.End == from || len(page.Chunk) == 0 {
			break
		}
		from = page.End
	}
	slices.Reverse(found)
	return found, nil
}

// sendHistoryBatch sends events to a client as one chathistory batch.
// Owner goroutine.
func (s *Session) sendHistoryBatch(a *Attachment, r *room, target string, events []store.StoredEvent) {
	s.batchSeq++
	ref := "h" + strconv.FormatUint(s.batchSeq, 36)
	server := &irc.Prefix{Name: a.client.ServerName()}
	a.client.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"+" + ref, "chathistory", target}})
	saved := a.client
	for _, se := range events {
		ev, ok := decodeStored(se)
		if !ok {
			continue
		}
		a.client = &eventClient{Client: saved, tags: eventTags(ev), batch: ref}
		if ev.StateKey != nil {
			s.renderStateHistory(a, r, ev)
		} else {
			s.only, s.replaying = a, true
			if ev.Type == event.EventMessage {
				s.showMessage(r, ev)
			} else {
				s.showOther(r, ev)
			}
			s.only, s.replaying = nil, false
		}
		a.client = saved
	}
	a.client.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"-" + ref}})
}

// historyTargets answers CHATHISTORY TARGETS: the channels and queries with
// messages between two times, oldest activity first.
func (s *Session) historyTargets(a *Attachment, req *mapping.HistoryRequest) {
	from, to := req.From.TS, req.To.TS
	if from > to {
		from, to = to, from
	}
	user := s.user.String()
	s.request(a, "CHATHISTORY", func(ctx context.Context) func() {
		targets, err := s.mgr.store.Targets(ctx, user, from, to, 0)
		return func() {
			if err != nil {
				s.standardReply(a, "FAIL", "CHATHISTORY", "MESSAGE_ERROR", "TARGETS", "Could not load the history: "+err.Error())
				return
			}
			s.batchSeq++
			ref := "t" + strconv.FormatUint(s.batchSeq, 36)
			server := &irc.Prefix{Name: a.client.ServerName()}
			a.client.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"+" + ref, "draft/chathistory-targets"}})
			n := 0
			for _, t := range targets {
				r := s.rooms[id.RoomID(t.RoomID)]
				if r == nil || n == req.Limit {
					continue
				}
				name := r.channel
				if r.dm != "" {
					name = s.nickOf(a, r.dm)
				}
				n++
				a.client.SendMessage(&irc.Message{Tags: irc.Tags{"batch": ref}, Prefix: server, Command: "CHATHISTORY",
					Params: []string{"TARGETS", name, mapping.FormatTime(t.LastTS)}})
			}
			a.client.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"-" + ref}})
		}
	})
}
