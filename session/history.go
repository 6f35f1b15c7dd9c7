package session

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
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
	mapping.PollStartType, mapping.UnstablePollStartType, mapping.PollEndType, mapping.UnstablePollEndType,
}

func (s *Session) cmdChathistory(a *Attachment, out output, m *irc.Message) error {
	req, err := mapping.ParseHistoryRequest(m.Params)
	if err != nil {
		var he *mapping.HistoryError
		errors.As(err, &he)
		return ircreply.Fail("CHATHISTORY", he.Code, strings.Join(he.Context, " "), he.Text)
	}
	if req.Sub == "TARGETS" {
		s.historyTargets(a, out, req)
		return nil
	}
	r := s.historyRoom(a, req.Target)
	if r == nil {
		return ircreply.Fail("CHATHISTORY", "INVALID_TARGET", req.Sub+" "+req.Target, "No such channel or query: "+req.Target)
	}
	var types []string
	if !a.client.HasCap("draft/event-playback") {
		types = messageTypes
	}
	roomID := r.id
	s.sideRequest(a, out, "CHATHISTORY", func(ctx context.Context) func() {
		events, err := s.queryHistory(ctx, roomID, req, types)
		s.decryptStored(ctx, events)
		return func() {
			if err != nil {
				s.fail(a, out, "CHATHISTORY", "MESSAGE_ERROR", req.Sub+" "+req.Target, "Could not load the history: "+err.Error())
				return
			}
			r := s.rooms[roomID]
			if r == nil {
				s.fail(a, out, "CHATHISTORY", "INVALID_TARGET", req.Sub+" "+req.Target, "You left "+req.Target)
				return
			}
			s.sendHistoryBatch(a, out, r, req.Target, events)
		}
	})
	return nil
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
	se, err := s.mgr.store.FindEvent(ctx, roomID, id.EventID(ref.MsgID))
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
	// Only what the account received: the store also holds what others
	// saw, perhaps before this account joined a room whose history is for
	// members since their join. The homeserver answers for the rest.
	q := store.HistoryQuery{RoomID: roomID, Limit: req.Limit, Types: types, Viewer: s.user}
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
		return s.around(ctx, q, from, req.Limit)
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
	if err != nil {
		return nil, err
	}
	// The store holds a window of each room; the homeserver has the rest.
	var older []store.StoredEvent
	switch {
	case backward && len(events) < req.Limit && q.AfterSeq == 0:
		// Further back than the store reaches (a lower bound that is a
		// stored event ends inside the store).
		older, err = s.fetchOlder(ctx, roomID, events, req, q, types, req.Limit-len(events), true)
	case !backward && from.seq == 0:
		// An anchor before the store's window: the oldest events after it
		// are on the homeserver only.
		older, err = s.fetchOlder(ctx, roomID, nil, req, q, types, req.Limit, false)
		if len(older) > 0 && len(older) < req.Limit {
			// Then the store's, from its start.
			q.AfterTS, q.Limit = 0, req.Limit-len(older)
			rest, rerr := st.RoomHistory(ctx, q)
			if rerr != nil {
				return nil, rerr
			}
			return append(older, rest...), nil
		}
		if len(older) > 0 {
			return older, nil
		}
	}
	if err != nil {
		s.log.Info("could not fetch older history from the homeserver", "room", roomID, "err", err)
		return events, nil
	}
	return append(older, events...), nil
}

// around answers AROUND: at most limit events split around the anchor,
// the older half strictly before it and the rest from it on (a message ID
// anchor is the first of those), oldest first. When one side runs out,
// the other fills the limit. Request worker only.
func (s *Session) around(ctx context.Context, q store.HistoryQuery, from anchor, limit int) ([]store.StoredEvent, error) {
	st := s.mgr.store
	older := func(n int) ([]store.StoredEvent, error) {
		if n <= 0 {
			return nil, nil // a Limit of 0 would mean no limit
		}
		b := q
		b.Limit, b.Newest = n, true
		from.before(&b)
		return st.RoomHistory(ctx, b)
	}
	before, err := older(limit / 2)
	if err != nil {
		return nil, err
	}
	a := q
	a.Limit = limit - len(before)
	if from.seq > 0 {
		a.AfterSeq = from.seq - 1 // the anchor itself
	} else {
		a.AfterTS = from.ts - 1 // events at the anchor's time
	}
	after, err := st.RoomHistory(ctx, a)
	if err != nil {
		return nil, err
	}
	if len(before) == limit/2 && len(after) < a.Limit {
		// Near the newest end: more from before the anchor.
		if before, err = older(limit - len(after)); err != nil {
			return nil, err
		}
	}
	return append(before, after...), nil
}

// maxFetched bounds how many events one history request reads from the
// homeserver looking for its range.
const maxFetched = 1000

// fetchOlder reads from the homeserver the events before the oldest one
// the store gave (have[0]), or before the store's oldest event of the room,
// within the query's time bounds: with newest, the want newest of them
// (the end nearest the store), else the want oldest. Oldest first.
// Request worker only.
func (s *Session) fetchOlder(ctx context.Context, roomID id.RoomID, have []store.StoredEvent, req *mapping.HistoryRequest, q store.HistoryQuery, types []string, want int, newest bool) ([]store.StoredEvent, error) {
	var start id.EventID
	if len(have) > 0 {
		start = have[0].EventID
	} else {
		oldest, err := s.mgr.store.RoomHistory(ctx, store.HistoryQuery{RoomID: roomID, Limit: 1, Viewer: q.Viewer})
		if err != nil || len(oldest) == 0 {
			return nil, err
		}
		o := oldest[0]
		// Only when the range reaches before the store's window.
		if q.BeforeSeq != 0 && q.BeforeSeq <= o.Seq || q.BeforeTS != 0 && q.BeforeTS <= o.TS ||
			!newest && q.AfterTS != 0 && q.AfterTS < o.TS || newest && q.BeforeSeq == 0 && q.BeforeTS == 0 && req.From.Star {
			start = o.EventID
		} else {
			return nil, nil
		}
	}
	c, err := s.cli.Context(ctx, roomID, start, nil, 0)
	if err != nil {
		return nil, err
	}
	var found []store.StoredEvent // newest first
	from := c.Start
	for seen := 0; from != "" && seen < maxFetched; {
		page, err := s.cli.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			return nil, err
		}
		past := false
		for _, ev := range page.Chunk {
			seen++
			if q.AfterTS != 0 && ev.Timestamp <= q.AfterTS {
				past = true
				break
			}
			if q.BeforeTS != 0 && ev.Timestamp >= q.BeforeTS || len(types) > 0 && !slices.Contains(types, ev.Type.Type) {
				continue
			}
			ev.RoomID = roomID
			raw, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			found = append(found, store.StoredEvent{RoomID: roomID, EventID: ev.ID, Sender: ev.Sender, Type: ev.Type.Type, TS: ev.Timestamp, JSON: raw})
		}
		if past || newest && len(found) >= want || page.End == "" || page.End == from || len(page.Chunk) == 0 {
			break
		}
		from = page.End
	}
	if newest {
		found = found[:min(len(found), want)]
	} else if len(found) > want {
		found = found[len(found)-want:]
	}
	slices.Reverse(found)
	return found, nil
}

// sendHistoryBatch sends events to a client as one chathistory batch.
// Owner goroutine.
func (s *Session) sendHistoryBatch(a *Attachment, out output, r *room, target string, events []store.StoredEvent) {
	s.batchSeq++
	ref := "h" + strconv.FormatUint(s.batchSeq, 36)
	server := &irc.Prefix{Name: a.client.ServerName()}
	out.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"+" + ref, "chathistory", target}})
	for _, se := range events {
		if ev, ok := decodeStored(se); ok {
			s.renderHistory(a, out, r, ev, true, ref)
		}
	}
	out.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"-" + ref}})
}

// targetTypes are the events that make a conversation's latest message
// for CHATHISTORY TARGETS: a reaction or a state change does not.
var targetTypes = []string{event.EventMessage.Type, event.EventSticker.Type, event.EventEncrypted.Type}

// historyTargets answers CHATHISTORY TARGETS: the channels and queries
// whose latest message is between two times, oldest first. With more than
// the limit, those nearest the first time are listed, as BETWEEN does: the
// newest when it is the later one.
func (s *Session) historyTargets(a *Attachment, out output, req *mapping.HistoryRequest) {
	from, to := req.From.TS, req.To.TS
	newest := from > to
	if newest {
		from, to = to, from
	}
	user := s.user
	s.sideRequest(a, out, "CHATHISTORY", func(ctx context.Context) func() {
		// The range is exclusive at both ends.
		targets, err := s.mgr.store.Targets(ctx, user, from+1, to-1, 0, targetTypes)
		return func() {
			if err != nil {
				s.fail(a, out, "CHATHISTORY", "MESSAGE_ERROR", "TARGETS", "Could not load the history: "+err.Error())
				return
			}
			s.batchSeq++
			ref := "t" + strconv.FormatUint(s.batchSeq, 36)
			server := &irc.Prefix{Name: a.client.ServerName()}
			out.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"+" + ref, "draft/chathistory-targets"}})
			// Only rooms the account is still in; the limit counts those.
			targets = slices.DeleteFunc(targets, func(t store.Target) bool { return s.rooms[t.RoomID] == nil })
			if len(targets) > req.Limit {
				if newest {
					targets = targets[len(targets)-req.Limit:]
				} else {
					targets = targets[:req.Limit]
				}
			}
			for _, t := range targets {
				r := s.rooms[t.RoomID]
				name := r.channel
				if r.dm != "" {
					name = s.nickOf(a, r.dm)
				}
				out.SendMessage(&irc.Message{Tags: irc.Tags{"batch": ref}, Prefix: server, Command: "CHATHISTORY",
					Params: []string{"TARGETS", name, mapping.FormatTime(t.LastTS)}})
			}
			out.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"-" + ref}})
		}
	})
}
