package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// Delivery to IRC clients (the bouncer side). Each client name has a
// cursor: the stream position of the last event written to its socket.
// A client that attaches gets its connect burst at once, then, while it
// "catches up", the events between its cursor and the head are read from
// the store and replayed; live timeline events skip it meanwhile, as the
// catch-up brings them. Once it has caught up to the head, it takes live
// events like every other client.

// advance moves the head to seq and the cursors of the clients that take
// live events with it. It comes before the event's lines: each client's
// writer saves the cursor just before it writes what follows. Owner
// goroutine.
func (s *Session) advance(seq int64) {
	if seq <= s.head {
		return
	}
	s.head = seq
	for a, burst := range s.clients {
		if burst && !a.catchingUp {
			a.mark(seq)
		}
	}
}

// cursorCheckpoint is the key of cursor checkpoints, which fold.
const cursorCheckpoint = "cursor"

// mark records that the client is given the stream up to seq by the lines
// that follow: its writer saves the cursor before writing them, and puts
// it back if the write fails. Owner goroutine.
func (a *Attachment) mark(seq int64) {
	if seq <= a.cursor {
		return
	}
	prev := a.cursor
	a.cursor = seq
	mgr, user, name := a.sess.mgr, a.sess.user, a.name
	// Cursors only move forward, so the writer commits only the last of
	// the marks it takes at once (a replay of N events is one commit, not
	// N), and a failed write puts back the first one's prev.
	a.client.Checkpoint(cursorCheckpoint, func() { mgr.commitCursor(user, name, seq) }, func() { mgr.resetCursor(user, name, prev) })
}

// startAttach gives a newly attached client its connect burst, then what it
// missed. Owner goroutine.
func (s *Session) startAttach(a *Attachment) {
	s.sendConnectBurst(a, a.client)
	a.burstMark = a.holdSeq
	for _, text := range s.undelivered {
		a.client.SendNotice(text)
	}
	s.undelivered = nil
	s.tellPending(a)
	if s.mgr.cfg.ReplayLimit == 0 || a.client.HasCap("draft/chathistory") {
		// Nothing to replay: the client asks for history itself, and
		// takes live events from here.
		a.mark(s.head)
		return
	}
	a.catchingUp = true
	a.burstHead = s.head
	s.catchUp(a, -1, s.head)
}

// catchUp reads the client's missed events after position after (-1: from
// its stored cursor) up to upTo, off the owner goroutine, and replays them.
func (s *Session) catchUp(a *Attachment, after, upTo int64) {
	st, user, limit := s.mgr.store, s.user, s.mgr.cfg.ReplayLimit
	s.goSafe("catch-up", func() {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer cancel()
		from, err := after, error(nil)
		if from < 0 {
			from, err = startCursor(ctx, st, user, a.name, upTo)
			if err == nil {
				// A client seen for the first time gets a cursor now, so
				// that it gets what comes after it leaves even if it was
				// shown nothing.
				err = s.mgr.saveCursor(ctx, user, a.name, from)
			}
		}
		var events []store.StoredEvent
		var skipped map[id.RoomID]int
		if err == nil && from < upTo {
			events, skipped, err = st.StreamRange(ctx, user, from, upTo, limit)
			s.decryptStored(ctx, events)
		}
		s.post(resultEvent{apply: func() { s.finishCatchUp(a, upTo, events, skipped, err) }})
	})
}

// startCursor is where a client's replay starts: its own cursor, or for a
// client name never seen, the newest cursor of the account's other
// clients, so that it gets what no client has seen.
func startCursor(ctx context.Context, st store.Store, user id.UserID, client string, head int64) (int64, error) {
	seq, ok, err := st.Cursor(ctx, user, client)
	if err != nil || ok {
		return seq, err
	}
	seq, ok, err = st.MaxCursor(ctx, user)
	if err != nil || ok {
		return seq, err
	}
	return head, nil
}

func (s *Session) finishCatchUp(a *Attachment, upTo int64, events []store.StoredEvent, skipped map[id.RoomID]int, err error) {
	if _, ok := s.clients[a]; !ok {
		return
	}
	if a.burstOpen() {
		// The burst's NAMES of a room whose member list is being fetched
		// (members.go) come first.
		a.afterBurst = func() { s.finishCatchUp(a, upTo, events, skipped, err) }
		return
	}
	if err != nil {
		s.log.Warn("could not load missed events", "client", a.name, "err", err)
		a.client.SendNotice("Could not load the messages you missed (" + err.Error() + "); CHATHISTORY may still reach them.")
		a.catchingUp = false
		return
	}
	s.replayEvents(a, a.client, events, skipped)
	a.mark(upTo)
	if s.head > upTo {
		s.catchUp(a, upTo, s.head)
		return
	}
	a.catchingUp = false
}

// replayEvents shows a client stored events it missed, in order, each with
// its time and ID. Owner goroutine.
func (s *Session) replayEvents(a *Attachment, out output, events []store.StoredEvent, skipped map[id.RoomID]int) {
	noted := map[id.RoomID]bool{}
	for _, se := range events {
		r := s.rooms[se.RoomID]
		if r == nil {
			continue // left since
		}
		if n := skipped[se.RoomID]; n > 0 && !noted[se.RoomID] {
			noted[se.RoomID] = true
			target := r.channel
			if r.dm != "" {
				target = a.client.Nick()
			}
			out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "NOTICE",
				Params: []string{target, fmt.Sprintf("%d older messages were not replayed; use your client's history (CHATHISTORY) to see them", n)}})
		}
		a.mark(se.Seq)
		ev, ok := decodeStored(se)
		if !ok || typedBy(ev, s.user, a.name) {
			continue
		}
		if ev.StateKey != nil {
			// Changes from before the burst are already in it.
			if se.Seq > a.burstHead {
				s.renderHistory(a, out, r, ev, true, "")
			}
		} else {
			s.renderHistory(a, out, r, ev, false, "")
		}
	}
}

// decodeStored turns a stored event back into a Matrix event, with the
// account's own transaction ID if it has one (the stream's, not the
// shared JSON's).
func decodeStored(se store.StoredEvent) (*event.Event, bool) {
	var ev event.Event
	if err := json.Unmarshal(se.JSON, &ev); err != nil {
		return nil, false
	}
	ev.RoomID = se.RoomID
	ev.Unsigned.TransactionID = se.TxnID
	return &ev, true
}

// renderHistory shows one past event to client a alone, in out, its lines
// tagged with the event's time and ID (and batch, if not ""): messages and
// other room events as live, and with withState also joins, parts, kicks
// and topic changes, from the event itself. Owner goroutine.
func (s *Session) renderHistory(a *Attachment, out output, r *room, ev *event.Event, withState bool, batch string) {
	if ev.StateKey != nil && (!withState || r.dm != "") {
		return
	}
	tagged := &eventOutput{out: out, conn: a.client, tags: s.eventTags(ev), batch: batch}
	switch {
	case ev.StateKey != nil:
		s.renderStateHistory(a, tagged, r, ev)
	case ev.Type == event.EventMessage:
		s.showMessageTo(r, ev, only(a, tagged))
	default:
		s.showOther(r, ev, only(a, tagged))
	}
}

// renderStateHistory shows a past membership or topic change.
func (s *Session) renderStateHistory(a *Attachment, out output, r *room, ev *event.Event) {
	if !parseContent(ev) {
		return
	}
	switch ev.Type {
	case event.StateMember:
		user := id.UserID(ev.GetStateKey())
		c := ev.Content.AsMember()
		var prev event.Membership
		if ev.Unsigned.PrevContent != nil {
			var p event.MemberEventContent
			if json.Unmarshal(ev.Unsigned.PrevContent.VeryRaw, &p) == nil {
				prev = p.Membership
			}
		}
		switch {
		case c.Membership == event.MembershipJoin && prev != event.MembershipJoin:
			s.sendJoin(a, out, r, user)
		case (c.Membership == event.MembershipLeave || c.Membership == event.MembershipBan) && prev == event.MembershipJoin:
			if ev.Sender == user {
				s.sendPart(a, out, r, user, c.Reason)
			} else {
				s.sendKick(a, out, r, ev.Sender, user, c.Reason)
			}
		}
	case event.StateTopic:
		out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, ev.Sender), Command: "TOPIC",
			Params: []string{r.channel, topicLine(ev.Content.AsTopic().Topic)}})
	}
}

// eventOutput passes the lines of a past event to out: every line gets
// the event's time and ID unless it has its own, and, inside a history
// batch, the batch's tag.
type eventOutput struct {
	out   output
	conn  Client // for the client's nick and the server name
	tags  irc.Tags
	batch string
}

func (e *eventOutput) SendMessage(m *irc.Message) {
	tags := make(irc.Tags, len(m.Tags)+4)
	if m.Tags["time"] == "" {
		// A line the event's renderer did not tag itself (JOIN, TOPIC).
		for k, v := range e.tags {
			tags[k] = v
		}
	}
	for k, v := range m.Tags {
		tags[k] = v
	}
	if e.batch != "" && m.Tags["batch"] == "" {
		tags["batch"] = e.batch
	}
	m.Tags = tags
	e.out.SendMessage(m)
}

func (e *eventOutput) SendNumeric(code string, params ...string) {
	e.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: e.conn.ServerName()}, Command: code, Params: append([]string{e.conn.Nick()}, params...)})
}

func (e *eventOutput) SendNotice(text string) {
	e.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: e.conn.ServerName()}, Command: "NOTICE", Params: []string{e.conn.Nick(), text}})
}

// txnClientSep separates a transaction ID from the name of the client that
// sent it, so that replay can leave out what a client typed itself.
const txnClientSep = "~"

// typedBy says whether client name sent ev from this account.
func typedBy(ev *event.Event, user id.UserID, name string) bool {
	if ev.Sender != user || ev.Unsigned.TransactionID == "" {
		return false
	}
	i := strings.LastIndex(ev.Unsigned.TransactionID, txnClientSep)
	return i >= 0 && ev.Unsigned.TransactionID[i+1:] == name
}

// clientsChanged shows the account as away while no client is attached,
// when so configured, and back when one attaches. Owner goroutine.
func (s *Session) clientsChanged() {
	defer s.publishNicks()
	defer s.publishPresence(false)
	if !s.mgr.cfg.AwayWhenDetached {
		return
	}
	detached := len(s.clients) == 0
	if s.detachedAway.Load() == detached {
		return
	}
	s.detachedAway.Store(detached)
	p := s.presenceToSet()
	msg := s.presence[s.user].statusMsg
	ok := s.enqueue(func(ctx context.Context) func() {
		if err := s.putPresence(ctx, p, msg); err != nil {
			s.log.Warn("could not set presence", "presence", p, "err", err)
		}
		return nil
	})
	if !ok {
		// Each /sync still says it (set_presence), a little later.
		s.log.Warn("too many requests queued to set presence now; the next sync sets it", "presence", p)
	}
}

// cmdAlwaysOn shows or changes whether the account's session stays when
// no client is attached.
func (s *Session) cmdAlwaysOn(a *Attachment, out output, m *irc.Message) error {
	s.alwaysOnCommand(a, out, m.Param(0), out.SendNotice, func(arg, text string) {
		s.fail(a, out, "ALWAYSON", "INVALID_PARAMS", arg, text)
	}, func(text string) {
		s.fail(a, out, "ALWAYSON", "CANNOT_CHANGE", "", text)
	})
	return nil
}

// alwaysOnCommand is ALWAYSON [ON|OFF|DEFAULT], as a command or through the
// service: notice answers, invalid and failed report errors. Owner goroutine.
func (s *Session) alwaysOnCommand(a *Attachment, out output, arg string, notice func(string), invalid func(arg, text string), failed func(string)) {
	arg = strings.ToUpper(arg)
	if arg == "" {
		state := "off"
		if s.alwaysOn.Load() {
			state = "on"
		}
		notice("Always-on is " + state + ": " + alwaysOnHelp)
		return
	}
	var setting *bool
	switch arg {
	case "ON", "OFF":
		v := arg == "ON"
		setting = &v
	case "DEFAULT":
	default:
		invalid(arg, "ALWAYSON takes ON, OFF or DEFAULT")
		return
	}
	user, def := s.user, s.mgr.cfg.AlwaysOn
	s.sideRequest(a, out, "ALWAYSON", func(ctx context.Context) func() {
		err := s.mgr.setAlwaysOn(ctx, user, setting)
		return func() {
			if err != nil {
				failed("Could not save the setting: " + err.Error())
				return
			}
			on := def
			if setting != nil {
				on = *setting
			}
			s.alwaysOn.Store(on)
			state := "off"
			if on {
				state = "on"
			}
			notice("Always-on is now " + state + ": " + alwaysOnHelp)
		}
	})
}

const alwaysOnHelp = "with it on, your Matrix session stays synced while no IRC client is connected and you get what you missed when you come back (ALWAYSON ON|OFF|DEFAULT)"

// isTransient says whether a failed request may succeed if sent again: the
// homeserver was unreachable, overloaded or rate-limiting.
func isTransient(err error) bool {
	if errors.Is(err, errEncryptedRoom) {
		return false
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) {
		if httpErr.Response == nil {
			return true // no answer at all
		}
		code := httpErr.Response.StatusCode
		return code == 429 || code >= 500
	}
	return !errors.Is(err, context.Canceled)
}
