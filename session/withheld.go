package session

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Withheld keys: a sender's device may refuse the gateway's device a room
// key (m.room_key.withheld: it shares only with verified devices, it has
// blocked this device, it could not reach it). Such a message does not
// wait in silence: its note says why, or, when the refusal comes after
// the note, one more line says it. The message stays waiting, since
// another of the account's devices may still forward the key.

// withheldWhy says in words why a room key was withheld from the gateway.
func withheldWhy(w *event.RoomKeyWithheldEventContent) string {
	switch w.Code {
	case event.RoomKeyWithheldUnverified:
		return "the sender's device shares keys only with verified devices, and has not verified this gateway's device"
	case event.RoomKeyWithheldBlacklisted:
		return "the sender's device has blocked this gateway's device"
	case event.RoomKeyWithheldUnauthorized:
		return "the sender's device did not allow this gateway's device the key"
	case event.RoomKeyWithheldNoOlmSession:
		return "the sender's device could not open an encrypted channel to this gateway's device"
	case event.RoomKeyWithheldUnavailable:
		return "the device asked does not have the key"
	}
	if w.Reason != "" {
		return fmt.Sprintf("%q (%s)", w.Reason, w.Code)
	}
	return string(w.Code)
}

// keyWithheld finds the refusal of a session's key that a decryption
// failed on, if it was one. Sync loop.
func keyWithheld(ctx context.Context, mach *crypto.OlmMachine, err error, room id.RoomID, session id.SessionID) *event.RoomKeyWithheldEventContent {
	if !errors.Is(err, crypto.ErrGroupSessionWithheld) {
		return nil
	}
	var w *event.RoomKeyWithheldEventContent
	if errors.As(err, &w) && w.Code != "" {
		return w
	}
	w, _ = mach.CryptoStore.GetWithheldGroupSession(ctx, room, session)
	if w == nil || w.Code == "" {
		return nil
	}
	return w
}

// withhold records why the key of a session that events wait for was
// withheld, and returns the first of them, unless the reason was known
// already or nothing waits (then it returns nil). A refusal for a
// session nothing waits for is found in the store when its event comes.
func (w *waitingKeys) withhold(session id.SessionID, why string) *event.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	evs := w.events[session]
	if len(evs) == 0 {
		return nil
	}
	if w.withheld == nil {
		w.withheld = map[id.SessionID]string{}
	}
	if _, told := w.withheld[session]; told {
		return nil
	}
	w.withheld[session] = why
	return evs[0]
}

// why is the reason a session's key was withheld, "" if it was not (or
// nothing waits for it any more). Any goroutine.
func (w *waitingKeys) why(session id.SessionID) string {
	if session == "" {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.withheld[session]
}

// lateWithheld tells the clients when a key that messages already shown
// wait for is refused after they were shown. A refusal from one of the
// account's own devices that does not have the key is not final (another
// may have it) and is not shown. Sync loop, after the machine stored the
// refusals.
func (s *Session) lateWithheld(resp *mautrix.RespSync) {
	for _, td := range resp.ToDevice.Events {
		w, ok := td.Content.Parsed.(*event.RoomKeyWithheldEventContent)
		if !ok || w.SessionID == "" || (td.Sender == s.user && w.Code == event.RoomKeyWithheldUnavailable) {
			continue
		}
		ev := s.waiting.withhold(w.SessionID, withheldWhy(w))
		if ev == nil {
			continue
		}
		text := "[the key of this encrypted message was withheld from this gateway: " + withheldWhy(w) + "; it is shown if one of your other devices forwards the key]"
		s.post(resultEvent{apply: func() {
			r := s.rooms[ev.RoomID]
			if r == nil {
				return
			}
			s.broadcast(live, func(a *Attachment, out output) { s.sendNote(a, out, r, ev, text) })
		}})
	}
}
