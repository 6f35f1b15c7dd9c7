package session

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	_ "github.com/mxircd/mxircd/internal/goolm" // refuses a build without the goolm tag
	"github.com/mxircd/mxircd/store"
)

// End-to-end encryption: each account has one OlmMachine
// (mautrix crypto on goolm), its keys in the gateway's database. The sync
// loop creates it before the first sync, hands it every response's
// to-device events, device-list changes and one-time-key counts before
// the response is stored (a response handled twice after a crash changes
// nothing), and decrypts the timeline after it is stored, so the store
// keeps ciphertext only and plaintext exists only on its way to clients.
// Stored events are decrypted where catch-up and history read them, off
// the owner goroutine, with the account's own keys. Messages are
// encrypted by the request worker (seal). The owner never touches the
// machine.

// CryptoStoreOpener opens the crypto store of one account and device. It
// must be safe to call from any goroutine.
type CryptoStoreOpener func(ctx context.Context, user id.UserID, device id.DeviceID) (crypto.Store, error)

// ensureCrypto starts the account's encryption before its first sync: a
// sync handled without the machine would drop the room keys it brought.
// It returns an error when the homeserver did not answer and starting is
// worth retrying; an account whose keys cannot be loaded runs without
// encryption, and says so in the log. Sync loop.
func (s *Session) ensureCrypto() error {
	if s.mgr.cfg.CryptoStore == nil || s.olm.Load() != nil || s.noCrypto {
		return nil
	}
	mach, err := s.startCrypto(s.ctx)
	var httpErr mautrix.HTTPError
	switch {
	case err == nil:
		s.olm.Store(mach)
		s.startVerifier(s.ctx, mach)
		s.backupDue.Store(true) // keys a crash kept from the backup
	case errors.As(err, &httpErr) && isTransient(err):
		return err
	default:
		s.log.Error("end-to-end encryption is off for this session", "err", err)
	}
	return nil
}

// startCrypto loads (or creates) the account's Olm account and uploads its
// device keys when the homeserver does not have them yet. Sync loop, once.
func (s *Session) startCrypto(ctx context.Context) (*crypto.OlmMachine, error) {
	cs, err := s.mgr.cfg.CryptoStore(ctx, s.user, s.cli.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("opening the crypto store: %w", err)
	}
	log := zerolog.New(slogWriter{s.log}).Level(zerolog.WarnLevel)
	mach := crypto.NewOlmMachine(s.cli, &log, cs, cryptoState{s})
	if s.mgr.cfg.SendToVerifiedOnly {
		// Verified here (emoji) or cross-signed by an owner whose
		// identity the account verified: what Element calls verified.
		// Cross-signed by an owner trusted on first use is not enough.
		mach.SendKeysMinTrust = id.TrustStateCrossSignedVerified
	}
	// Ratchet tracking (mautrix's record, rewritten after every message
	// decrypted, of which indices of each inbound session were seen)
	// serves only ratcheting keys forward or deleting used ones on
	// decryption, which the gateway does not do: without it a decryption
	// is one store write fewer (BenchmarkCryptoMessagePath in store). The
	// replay check (a message index seen with another event is refused)
	// is separate and stays.
	mach.DisableRatchetTracking = true
	mach.SessionReceived = func(_ context.Context, _ id.RoomID, sessionID id.SessionID, _ uint32) {
		s.waiting.arrived(sessionID)
		s.backupDue.Store(true)
	}
	if err := mach.Load(ctx); err != nil {
		return nil, fmt.Errorf("loading the Olm account: %w", err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		return nil, fmt.Errorf("uploading the device keys: %w", err)
	}
	return mach, nil
}

// decryptTimeline replaces each encrypted timeline event of a stored
// response with its plaintext, where the account has the key. One that
// cannot be decrypted stays as it is and is shown as such. Sync loop.
func (s *Session) decryptTimeline(ctx context.Context, mach *crypto.OlmMachine, resp *mautrix.RespSync) {
	for roomID, joined := range resp.Rooms.Join {
		for i, ev := range joined.Timeline.Events {
			if ev.Type != event.EventEncrypted {
				continue
			}
			ev.RoomID = roomID
			dec, err := decryptEvent(ctx, mach, ev)
			if err == nil {
				joined.Timeline.Events[i] = dec
				continue
			}
			s.log.Info("could not decrypt an event", "room", roomID, "event", ev.ID, "err", err)
			if errors.Is(err, crypto.ErrNoSessionFound) || errors.Is(err, crypto.ErrGroupSessionWithheld) {
				s.awaitKey(ctx, mach, ev)
			}
			// Before the owner shows the note, which then says why.
			if content := ev.Content.AsEncrypted(); content.SessionID != "" {
				if w := keyWithheld(ctx, mach, err, roomID, content.SessionID); w != nil {
					s.waiting.withhold(content.SessionID, withheldWhy(w))
				}
			}
		}
	}
}

// decryptStored replaces, in memory, each encrypted stored event with its
// plaintext where the account has the key. Catch-up and history helpers.
func (s *Session) decryptStored(ctx context.Context, events []store.StoredEvent) {
	mach := s.olm.Load()
	if mach == nil {
		return
	}
	for i, se := range events {
		ev, ok := decodeStored(se)
		if !ok || ev.Type != event.EventEncrypted {
			continue
		}
		dec, err := decryptEvent(ctx, mach, ev)
		if err != nil {
			continue
		}
		raw, err := json.Marshal(dec)
		if err != nil {
			continue
		}
		events[i].JSON = raw
	}
}

func decryptEvent(ctx context.Context, mach *crypto.OlmMachine, ev *event.Event) (*event.Event, error) {
	if ev.Content.Parsed == nil {
		if err := ev.Content.ParseRaw(ev.Type); err != nil {
			return nil, err
		}
	}
	dec, err := mach.DecryptMegolmEvent(ctx, ev)
	if err != nil {
		return nil, err
	}
	if dec.Content.Parsed == nil {
		_ = dec.Content.ParseRaw(dec.Type)
	}
	return dec, nil
}

// slogWriter puts mautrix's crypto warnings (zerolog JSON lines) into the
// session's log, with its user.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn("crypto", "detail", string(bytes.TrimSpace(p)))
	return len(p), nil
}

// cryptoState answers the OlmMachine's questions about rooms from what the
// gateway's syncs have seen. Any goroutine.
type cryptoState struct{ s *Session }

func (c cryptoState) IsEncrypted(_ context.Context, room id.RoomID) (bool, error) {
	return c.s.mgr.encrypted.has(room), nil
}

func (c cryptoState) GetEncryptionEvent(_ context.Context, room id.RoomID) (*event.EncryptionEventContent, error) {
	if content := c.s.mgr.encrypted.content(room); content != nil {
		return content, nil
	}
	return nil, errors.New("not an encrypted room")
}

// GetHistoryVisibility marks the keys the gateway makes. Rooms' history
// visibility is not tracked, so every key is marked as not for sharing
// history with later members: the conservative answer.
func (c cryptoState) GetHistoryVisibility(context.Context, id.RoomID) (*event.HistoryVisibilityEventContent, error) {
	return &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}, nil
}

// FindSharedRooms is asked when a user's devices change, to replace the
// keys of rooms shared with them. It names every encrypted room the
// account is in: replacing a few keys more than needed is safe, missing
// one is not.
func (c cryptoState) FindSharedRooms(context.Context, id.UserID) ([]id.RoomID, error) {
	return c.s.joinedEncrypted.list(), nil
}

// roomSet is a set of rooms safe for any goroutine.
type roomSet struct {
	mu    sync.Mutex
	rooms map[id.RoomID]struct{}
}

func (r *roomSet) update(resp *mautrix.RespSync, encrypted *encryptedRooms) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rooms == nil {
		r.rooms = map[id.RoomID]struct{}{}
	}
	for room := range resp.Rooms.Join {
		if encrypted.has(room) {
			r.rooms[room] = struct{}{}
		}
	}
	for room := range resp.Rooms.Leave {
		delete(r.rooms, room)
	}
}

func (r *roomSet) add(room id.RoomID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rooms == nil {
		r.rooms = map[id.RoomID]struct{}{}
	}
	r.rooms[room] = struct{}{}
}

func (r *roomSet) list() []id.RoomID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]id.RoomID, 0, len(r.rooms))
	for room := range r.rooms {
		out = append(out, room)
	}
	return out
}

// seal encrypts a message event for an encrypted room, sharing the room
// key with the members' devices first when the room has no current
// session (new, rotated, or a member or device changed). Other rooms'
// events come back as they are. Request worker.
func (s *Session) seal(ctx context.Context, roomID id.RoomID, evType event.Type, content json.RawMessage) (event.Type, json.RawMessage, error) {
	if evType == event.EventEncrypted || evType == event.EventRedaction || !s.mgr.encrypted.has(roomID) {
		return evType, content, nil
	}
	mach := s.olm.Load()
	if mach == nil {
		return evType, nil, errEncryptedRoom
	}
	enc, err := mach.EncryptMegolmEvent(ctx, roomID, evType, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrSessionNotShared) {
		var members []id.UserID
		if members, err = s.keyRecipients(ctx, roomID); err != nil {
			return evType, nil, fmt.Errorf("listing who gets the room key: %w", err)
		}
		if err = mach.ShareGroupSession(ctx, roomID, members); err != nil {
			return evType, nil, fmt.Errorf("sharing the room key: %w", err)
		}
		enc, err = mach.EncryptMegolmEvent(ctx, roomID, evType, content)
	}
	if err != nil {
		return evType, nil, fmt.Errorf("encrypting: %w", err)
	}
	raw, err := json.Marshal(enc)
	if err != nil {
		return evType, nil, err
	}
	return event.EventEncrypted, raw, nil
}

// keyRecipients is who a room key is shared with: the room's joined and
// invited members, read from the homeserver when a key is made, so a
// membership the sync has not shown yet is not missed. Request worker.
func (s *Session) keyRecipients(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	resp, err := s.cli.Members(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var users []id.UserID
	for _, ev := range resp.Chunk {
		var m event.MemberEventContent
		if ev.StateKey == nil || json.Unmarshal(ev.Content.VeryRaw, &m) != nil {
			continue
		}
		if m.Membership == event.MembershipJoin || m.Membership == event.MembershipInvite {
			users = append(users, id.UserID(*ev.StateKey))
		}
	}
	return users, nil
}

// trackMembers tells the machine of membership changes in encrypted
// rooms, so that the room key is replaced when someone leaves and a new
// member gets a key. Sync loop.
func (s *Session) trackMembers(ctx context.Context, mach *crypto.OlmMachine, resp *mautrix.RespSync) {
	for roomID, joined := range resp.Rooms.Join {
		if !s.mgr.encrypted.has(roomID) {
			continue
		}
		for _, events := range [][]*event.Event{joined.State.Events, joined.Timeline.Events} {
			for _, ev := range events {
				if ev.Type.Type != event.StateMember.Type || ev.StateKey == nil {
					continue
				}
				ev.RoomID = roomID
				ev.Type.Class = event.StateEventType
				if ev.Content.Parsed == nil && ev.Content.ParseRaw(event.StateMember) != nil {
					continue
				}
				mach.HandleMemberEvent(ctx, ev)
			}
		}
	}
}

// Late keys: an encrypted event whose room key has not arrived is shown
// at once as a note, kept in memory, and its key asked of the account's
// other devices. When the key comes (a forwarded key, or a late room key),
// the event is decrypted and shown with its original time and ID.

// maxWaiting bounds the events a session keeps for keys that may never
// come; the oldest go first. (Replay and CHATHISTORY still decrypt them
// from the store once the key is there.)
const maxWaiting = 1000

// waitingKeys is the events waiting for a room key, by Megolm session.
// The sync loop adds and takes; the machine's callback marks arrivals.
type waitingKeys struct {
	mu      sync.Mutex
	events  map[id.SessionID][]*event.Event
	order   []id.SessionID // oldest first, for the bound
	n       int
	landed  map[id.SessionID]bool
	pending bool
	asked   map[id.SessionID]keyAsk
	// withheld is why a sender's device refused the key of a session
	// events wait for, in words (withheld.go).
	withheld map[id.SessionID]string
}

// keyAsk is when a missing key is next asked for again: the device that
// has it may get it only after the first request (a sender's keys and our
// request race), and does not remember requests it could not answer.
type keyAsk struct {
	next  time.Time
	tries int
}

// keyRetries are the waits before each repeated request for a key.
var keyRetries = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// due returns one waiting event of each session whose key is to be asked
// for again now.
func (w *waitingKeys) due(now time.Time) []*event.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*event.Event
	for session, ask := range w.asked {
		if ask.tries >= len(keyRetries) || now.Before(ask.next) || len(w.events[session]) == 0 {
			continue
		}
		ask.tries++
		if ask.tries < len(keyRetries) {
			ask.next = now.Add(keyRetries[ask.tries])
		}
		w.asked[session] = ask
		out = append(out, w.events[session][0])
	}
	return out
}

// add keeps ev until its session's key comes, and says whether it is the
// first event waiting for that session (so the key is asked for once).
func (w *waitingKeys) add(session id.SessionID, ev *event.Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.events == nil {
		w.events, w.landed, w.asked = map[id.SessionID][]*event.Event{}, map[id.SessionID]bool{}, map[id.SessionID]keyAsk{}
	}
	first := len(w.events[session]) == 0
	if first {
		w.order = append(w.order, session)
		w.asked[session] = keyAsk{next: time.Now().Add(keyRetries[0])}
	}
	w.events[session] = append(w.events[session], ev)
	w.n++
	for w.n > maxWaiting && len(w.order) > 0 {
		oldest := w.order[0]
		w.order = w.order[1:]
		w.n -= len(w.events[oldest])
		delete(w.events, oldest)
		delete(w.asked, oldest)
		delete(w.withheld, oldest)
	}
	return first
}

// arrived notes that a session's key is now in the store. Any goroutine.
func (w *waitingKeys) arrived(session id.SessionID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events[session]) > 0 {
		w.landed[session] = true
		w.pending = true
	}
}

// take hands over the events whose keys have arrived.
func (w *waitingKeys) take() []*event.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pending {
		return nil
	}
	var out []*event.Event
	for session := range w.landed {
		out = append(out, w.events[session]...)
		w.n -= len(w.events[session])
		delete(w.events, session)
		delete(w.asked, session)
		delete(w.withheld, session)
		w.order = slices.DeleteFunc(w.order, func(s id.SessionID) bool { return s == session })
	}
	clear(w.landed)
	w.pending = false
	return out
}

// awaitKey keeps an event that could not be decrypted and asks the
// account's other devices for its key. Sync loop.
func (s *Session) awaitKey(ctx context.Context, mach *crypto.OlmMachine, ev *event.Event) {
	content := ev.Content.AsEncrypted()
	if content == nil || content.SessionID == "" {
		return
	}
	if s.waiting.add(content.SessionID, ev) {
		s.requestKey(ctx, mach, ev.RoomID, content)
	}
}

// requestKey asks the account's other devices for a room key. Sync loop.
func (s *Session) requestKey(ctx context.Context, mach *crypto.OlmMachine, room id.RoomID, content *event.EncryptedEventContent) {
	//lint:ignore SA1019 the sender key is still what other clients look keys up by
	err := mach.SendRoomKeyRequest(ctx, room, content.SenderKey, content.SessionID, "", map[id.UserID][]id.DeviceID{s.user: {"*"}})
	if err != nil {
		s.log.Info("could not ask other devices for a room key", "room", room, "err", err)
	}
}

// askAgain repeats the requests for keys still missing, on the schedule
// of keyRetries. Sync loop.
func (s *Session) askAgain(ctx context.Context, mach *crypto.OlmMachine) {
	for _, ev := range s.waiting.due(time.Now()) {
		if content := ev.Content.AsEncrypted(); content != nil {
			s.requestKey(ctx, mach, ev.RoomID, content)
		}
	}
}

// deliverLate decrypts the events whose keys have arrived and has the
// owner show them, with their original time and ID, to the clients that
// are live. Sync loop.
func (s *Session) deliverLate(ctx context.Context, mach *crypto.OlmMachine) {
	var late []*event.Event
	for _, ev := range s.waiting.take() {
		if dec, err := decryptEvent(ctx, mach, ev); err == nil {
			late = append(late, dec)
		}
	}
	if len(late) == 0 {
		return
	}
	slices.SortStableFunc(late, func(a, b *event.Event) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	s.post(resultEvent{apply: func() {
		for _, ev := range late {
			r := s.rooms[ev.RoomID]
			if r == nil {
				continue
			}
			s.broadcastIn(r, ev.ID, live, func(a *Attachment, out output) { s.renderHistory(a, out, r, ev, false, "") })
		}
	}})
}
