package session

import (
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// Some homeservers (Dendrite) drop the reason of /leave from the member
// event, so a PART reason typed on IRC would reach no one. The leaver's
// own clients get it from their session (Session.partReasons); the
// gateway's other sessions in the room find it here, kept for a while
// after the PART, when they show the leave.

// leaveReasonTTL is how long a PART's reason is kept for the others.
const leaveReasonTTL = 2 * time.Minute

type leaveKey struct {
	room id.RoomID
	user id.UserID
}

type leaveNote struct {
	reason string
	at     time.Time
}

// leaveReasons holds the reasons of recent PARTs. Its lock is its own;
// any goroutine.
type leaveReasons struct {
	mu    sync.Mutex
	notes map[leaveKey]leaveNote
}

// note keeps user's reason for leaving room ("" forgets it), and drops
// the notes that are too old.
func (l *leaveReasons) note(room id.RoomID, user id.UserID, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for k, n := range l.notes {
		if now.Sub(n.at) > leaveReasonTTL {
			delete(l.notes, k)
		}
	}
	if reason == "" {
		delete(l.notes, leaveKey{room, user})
		return
	}
	if l.notes == nil {
		l.notes = map[leaveKey]leaveNote{}
	}
	l.notes[leaveKey{room, user}] = leaveNote{reason, now}
}

// of is user's reason for leaving room, if one was noted lately.
func (l *leaveReasons) of(room id.RoomID, user id.UserID) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.notes[leaveKey{room, user}]
	if !ok || time.Since(n.at) > leaveReasonTTL {
		return ""
	}
	return n.reason
}
