package session

import (
	"encoding/json"
	"errors"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Nothing typed on IRC may reach a room whose members expect end-to-end
// encryption in the clear: the homeserver would store it so. Every message
// event (text, notice, emote, replies, multiline, reactions) is checked
// against the room's encryption when its request is sent, not when the
// line was accepted, and sealed (crypto.go) or, without the account's
// keys, refused, so a message that waited in the queue or the outbox
// while the room turned encrypted is sealed or refused too. State events,
// redactions, typing and receipts are never encrypted in Matrix and go out
// as before.

// encryptedRooms is the set of rooms whose state has m.room.encryption.
// It is one set for the whole gateway: encryption, once on, stays on (the
// spec tells clients to ignore an attempt to turn it off), so what one
// account's sync showed holds for every account. Sync loops add to it;
// request workers read it.
type encryptedRooms struct {
	mu    sync.RWMutex
	rooms map[id.RoomID]*event.EncryptionEventContent
}

func newEncryptedRooms() *encryptedRooms {
	return &encryptedRooms{rooms: map[id.RoomID]*event.EncryptionEventContent{}}
}

// content is the room's m.room.encryption, nil if it has none. Any
// goroutine.
func (e *encryptedRooms) content(room id.RoomID) *event.EncryptionEventContent {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.rooms[room]
}

// has says whether room is known to be encrypted. Any goroutine.
func (e *encryptedRooms) has(room id.RoomID) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, ok := e.rooms[room]
	return ok
}

// mark records that room is encrypted, with its m.room.encryption
// (settings for key rotation). Any goroutine.
func (e *encryptedRooms) mark(room id.RoomID, content *event.EncryptionEventContent) {
	if content == nil {
		content = &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rooms[room] = content
}

// markFrom records the rooms of a sync response whose state or timeline
// holds m.room.encryption. Sync loop, before the response is stored or
// handed to the owner, so no send can run on older knowledge than the
// owner has.
func (e *encryptedRooms) markFrom(resp *mautrix.RespSync) {
	for roomID, joined := range resp.Rooms.Join {
		for _, events := range [][]*event.Event{joined.State.Events, joined.Timeline.Events} {
			for _, ev := range events {
				if ev.StateKey != nil && *ev.StateKey == "" && ev.Type.Type == event.StateEncryption.Type {
					var content event.EncryptionEventContent
					_ = json.Unmarshal(ev.Content.VeryRaw, &content)
					e.mark(roomID, &content)
				}
			}
		}
	}
}

// errEncryptedRoom refuses a message event into an encrypted room. It is
// final: sending it again would not help.
var errEncryptedRoom = errors.New("it is end-to-end encrypted, and encryption is off for this account on the gateway: nothing was sent")

// refuseUnencrypted says why a message event may not be sent into room
// now, or nil: a plaintext event into an encrypted room. Redactions are
// never encrypted in Matrix; every other event sent with /send is.
func (s *Session) refuseUnencrypted(room id.RoomID, evType event.Type) error {
	if evType.Type != event.EventRedaction.Type && evType.Type != event.EventEncrypted.Type && s.mgr.encrypted.has(room) {
		return errEncryptedRoom
	}
	return nil
}

// tellEncrypted tells client a in out, when err is the refusal of an
// encrypted room, that its message to target was not sent, in one line:
// FAIL for clients with standard replies, a NOTICE for others. It says
// whether it did. Owner goroutine.
func (s *Session) tellEncrypted(a *Attachment, out output, command, target string, err error) bool {
	if !errors.Is(err, errEncryptedRoom) {
		return false
	}
	s.fail(a, out, command, "CANNOT_ENCRYPT", target, target+" is end-to-end encrypted, and encryption is off for your account on this gateway: your message was not sent")
	return true
}
