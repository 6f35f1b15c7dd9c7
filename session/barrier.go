package session

import (
	"slices"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"
)

// PING is a barrier: clients and test suites send one after a command and
// take its PONG to mean every reply to that command has arrived. A command
// the session answers may finish later, on a request worker (a JOIN's
// burst, a send's error) or through sync (a message's echo), so ircd
// passes a PING to the session while commands it passed are unsettled, and
// the session holds the PONG back until what the commands before it
// started has been answered.
//
// What a command starts takes a hold (Attachment.hold): a request until
// its result is applied, a message's echo until it comes back from sync
// or its send fails, a JOIN until its room is shown. A PONG waits for the
// holds taken before it. When a client has no hold and no PONG waiting,
// the session tells its connection how many commands it has settled
// (Settle), so a PING after them is answered on the reader at once.

// settler is the connection side of Settle; ircd.Conn implements it.
type settler interface {
	// Settle says the session has answered the first n commands the
	// connection passed it, and all they started. Owner goroutine.
	Settle(n uint64)
}

// pongPatience bounds how long a PONG waits for holds: one that outlives
// it is a bug (a hold nobody releases), and a client must not be dropped
// for a ping timeout because of it.
const pongPatience = time.Minute

// waitingPong is a PONG held back behind earlier commands.
type waitingPong struct {
	mark uint64 // the last hold taken before its PING
	out  output
	msg  *irc.Message
}

// hold marks something a command of a started that its replies wait for;
// release (idempotent) ends it. Owner goroutine.
//
// A hold taken while a request's result is applied (a JOIN waiting for
// its room to be shown) takes the place of the command that started it,
// not a new one, so a PING sent after that command still waits for it.
func (a *Attachment) hold() (release func()) {
	_, release = a.takeHold()
	return release
}

// takeHold is hold that also returns the hold's place.
func (a *Attachment) takeHold() (place uint64, release func()) {
	n := a.applying
	if n == 0 {
		a.holdSeq++
		n = a.holdSeq
	}
	at, _ := slices.BinarySearch(a.open, n)
	a.open = slices.Insert(a.open, at, n)
	released := false
	return n, func() {
		if released {
			return
		}
		released = true
		if i := slices.Index(a.open, n); i >= 0 {
			a.open = slices.Delete(a.open, i, i+1)
		}
		a.flushPongs(0)
	}
}

// flushPongs sends the PONGs no open hold is ahead of, and those with a
// mark up to force (after pongPatience), then settles if nothing is left.
func (a *Attachment) flushPongs(force uint64) {
	if a.afterBurst != nil && !a.burstOpen() {
		f := a.afterBurst
		a.afterBurst = nil
		f()
	}
	a.runBehindJoin()
	for len(a.pongs) > 0 {
		p := a.pongs[0]
		if len(a.open) > 0 && a.open[0] <= p.mark && p.mark > force {
			break
		}
		a.pongs = a.pongs[1:]
		p.out.SendMessage(p.msg)
		if resp := labeledOf(p.out); resp != nil {
			resp.Done()
		}
	}
	a.settle()
}

// burstOpen says a hold the client's connect burst took is still open.
func (a *Attachment) burstOpen() bool {
	return len(a.open) > 0 && a.open[0] <= a.burstMark
}

// settle tells the connection that every command it passed is answered,
// when that is so.
func (a *Attachment) settle() {
	if len(a.open) > 0 || len(a.pongs) > 0 {
		return
	}
	if st, ok := a.client.(settler); ok {
		st.Settle(a.handled)
	}
}

// cmdPing answers a PING the connection passed because commands before it
// were unsettled: at once if nothing they started is open, otherwise after.
func (s *Session) cmdPing(a *Attachment, out output, m *irc.Message) error {
	server := a.client.ServerName()
	pong := &irc.Message{Prefix: &irc.Prefix{Name: server}, Command: "PONG", Params: []string{server, m.Params[0]}}
	if len(a.open) == 0 {
		out.SendMessage(pong)
		return nil
	}
	mark := a.holdSeq
	a.pongs = append(a.pongs, waitingPong{mark: mark, out: out, msg: pong})
	if resp := labeledOf(out); resp != nil {
		resp.Hold()
	}
	time.AfterFunc(pongPatience, func() {
		s.post(resultEvent{apply: func() {
			if len(a.pongs) > 0 && a.pongs[0].mark <= mark {
				// The holds before it will not be released: drop them, or
				// every later PING would wait as long.
				s.log.Warn("a PONG waited too long for earlier commands; sent anyway", "open", len(a.open))
				a.open = slices.DeleteFunc(a.open, func(n uint64) bool { return n <= mark })
				a.flushPongs(mark)
			}
		}})
	})
	return nil
}

// holdEcho keeps a client's PING behind the echo of a message it sent
// (with echo-message, the echo is the reply), until the echo comes or the
// send fails (releaseTxn).
func (s *Session) holdEcho(a *Attachment, txnID string) {
	if a.client.HasCap("echo-message") {
		s.echoHolds[txnID] = a.hold()
	}
}

// releaseTxn ends the echo hold of a transaction, if it has one.
func (s *Session) releaseTxn(txnID string) {
	if release := s.echoHolds[txnID]; release != nil {
		delete(s.echoHolds, txnID)
		release()
	}
}

// holdUntilShown keeps a client's PING behind the burst of a room it
// joined, which sync brings after the join request has answered.
func (s *Session) holdUntilShown(a *Attachment, roomID id.RoomID) {
	if roomID == "" || s.rooms[roomID] != nil && s.leaving[roomID] == 0 {
		return
	}
	place, release := a.takeHold()
	s.roomHolds[roomID] = append(s.roomHolds[roomID], roomHold{a, place, release})
}

// roomHold is a client's hold on a room it joined until the room is shown.
type roomHold struct {
	a       *Attachment
	place   uint64
	release func()
}

// burstInPlace makes the holds the room's burst takes (the NAMES of a
// room whose member list is fetched, members.go) keep the place of the
// JOIN of each client that waits for the room, as a request's result
// does; done puts things back. Owner goroutine.
func (s *Session) burstInPlace(roomID id.RoomID) (done func()) {
	var set []*Attachment
	for _, h := range s.roomHolds[roomID] {
		if h.a.applying == 0 {
			h.a.applying = h.place
			set = append(set, h.a)
		}
	}
	return func() {
		for _, a := range set {
			a.applying = 0
		}
	}
}

// holdUntilGone keeps a client's PING behind the PART of a room it left,
// which sync brings after the leave request has answered.
func (s *Session) holdUntilGone(a *Attachment, roomID id.RoomID) {
	if s.rooms[roomID] == nil {
		return
	}
	s.partHolds[roomID] = append(s.partHolds[roomID], a.hold())
}

// releaseGone ends the holds of the PARTs waiting for a room to be closed.
func (s *Session) releaseGone(roomID id.RoomID) {
	holds := s.partHolds[roomID]
	delete(s.partHolds, roomID)
	for _, release := range holds {
		release()
	}
}

// releaseRoom ends the holds of the JOINs waiting for a room to be shown.
func (s *Session) releaseRoom(roomID id.RoomID) {
	holds := s.roomHolds[roomID]
	delete(s.roomHolds, roomID)
	for _, h := range holds {
		h.release()
	}
}
