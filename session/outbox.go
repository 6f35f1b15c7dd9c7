package session

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// A message typed on IRC is written to the store's outbox when the owner
// accepts it, before anything else happens to it: the outbox writer
// commits what has arrived meanwhile in one transaction, the request
// worker sends it only once it is saved, and the typing client is shown
// nothing after the line until it is saved (a Checkpoint on its writer).
// A line that cannot be saved is not sent, and the client is told. Once
// the homeserver has the message its row is removed. A send that fails
// for a passing reason (no answer, 5xx, 429) is retried with the same
// transaction ID; after a crash the next start sends what is left in the
// outbox, in order, again with the same IDs (see resend for why that
// alone does not make it once).
//
// The store keeps no plaintext of an encrypted room: a message to a room
// that is encrypted when it is accepted is written sealed with the
// gateway's outbox key (derived from the pickle key, kept outside the
// database) until the request worker has encrypted it for the room; then
// the row holds the Megolm ciphertext, so a resend repeats the same
// ciphertext under the same transaction ID. Without encryption configured
// no outbox key exists; such a message is refused by the worker anyway.

// sendRetryWindow bounds how long one send is retried before the client
// is told it failed.
const sendRetryWindow = 45 * time.Second

// outboxSealedType marks an outbox row whose content is sealed with the
// outbox key (sealedRow): a message to an encrypted room not yet encrypted
// for the room.
const outboxSealedType = "org.mxircd.outbox.sealed"

// sealedRow is the content of an outbox row of type outboxSealedType.
type sealedRow struct {
	Type   string `json:"type"`
	Sealed []byte `json:"sealed"` // nonce, then AES-256-GCM of the JSON content
}

// OutboxKeyFrom derives the key that seals outbox rows at rest from the
// pickle key, so that it differs from the key of the crypto store.
func OutboxKeyFrom(pickleKey []byte) []byte {
	sum := sha256.Sum256(append([]byte("mxircd outbox at rest\x00"), pickleKey...))
	return sum[:]
}

func outboxAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealRow seals content for the outbox; the row's user and transaction ID
// are bound to it, so a sealed content cannot be moved to another row.
func sealRow(key []byte, user, txnID string, evType event.Type, content []byte) ([]byte, error) {
	aead, err := outboxAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(content)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return json.Marshal(sealedRow{Type: evType.Type, Sealed: aead.Seal(nonce, nonce, content, []byte(user+"\x00"+txnID))})
}

// openRow undoes sealRow.
func openRow(key []byte, user, txnID string, row []byte) (event.Type, []byte, error) {
	var sr sealedRow
	if err := json.Unmarshal(row, &sr); err != nil {
		return event.Type{}, nil, err
	}
	aead, err := outboxAEAD(key)
	if err != nil {
		return event.Type{}, nil, err
	}
	if len(sr.Sealed) < aead.NonceSize() {
		return event.Type{}, nil, errors.New("sealed outbox row too short")
	}
	nonce, ct := sr.Sealed[:aead.NonceSize()], sr.Sealed[aead.NonceSize():]
	content, err := aead.Open(nil, nonce, ct, []byte(user+"\x00"+txnID))
	if err != nil {
		return event.Type{}, nil, fmt.Errorf("opening a sealed outbox row: %w", err)
	}
	return event.Type{Type: sr.Type, Class: event.MessageEventType}, content, nil
}

// pendingSend is one message accepted from IRC: what to send, and its
// outbox row on its way to the store.
type pendingSend struct {
	roomID  id.RoomID
	evType  event.Type
	content any
	txnID   string
	// row is written when the message is accepted; nil for a message to
	// an encrypted room when there is no outbox key (the worker refuses
	// it) or one that could not be encoded (the worker reports it).
	row   *store.OutboxEntry
	saved chan struct{} // closed once row is committed, or could not be
	err   error         // why row could not be saved; set before saved closes
}

// errNotSaved says that a message was not sent because it could not be
// written to the outbox first.
type errNotSaved struct{ err error }

func (e errNotSaved) Error() string {
	return "the gateway could not save it to send (" + e.err.Error() + "), so it was not sent; try again"
}
func (e errNotSaved) Unwrap() error { return e.err }

// prepareSend makes the pending send of one message, its outbox row ready
// to write: sealed at rest when the room is encrypted. Owner goroutine.
func (s *Session) prepareSend(roomID id.RoomID, evType event.Type, content any, txnID string) *pendingSend {
	p := &pendingSend{roomID: roomID, evType: evType, content: content, txnID: txnID, saved: make(chan struct{})}
	raw, err := json.Marshal(content)
	if err != nil {
		return p
	}
	row := &store.OutboxEntry{UserID: s.user.String(), TxnID: txnID, RoomID: roomID.String(), Type: evType.Type, Content: raw}
	if s.mgr.encrypted.has(roomID) {
		if s.mgr.cfg.OutboxKey == nil {
			return p
		}
		if row.Content, err = sealRow(s.mgr.cfg.OutboxKey, row.UserID, txnID, evType, raw); err != nil {
			s.log.Warn("could not seal an outgoing message for the outbox", "err", err)
			return p
		}
		row.Type = outboxSealedType
	}
	p.row = row
	return p
}

// accept hands a prepared send, whose request is queued, to the outbox
// writer, and holds back what client a is shown after the line until the
// row is saved. Owner goroutine.
func (s *Session) accept(a *Attachment, p *pendingSend) {
	if p.row == nil {
		close(p.saved)
		return
	}
	if s.saves.push(p) {
		go s.guard("outbox writer", s.writeOutbox)
	}
	a.client.Checkpoint("", func() { <-p.saved }, nil)
}

// outboxWriter holds the accepted messages whose outbox rows are not
// saved yet. Its lock is its own: everyone goes through its methods.
type outboxWriter struct {
	mu      sync.Mutex
	q       []*pendingSend
	running bool // a writer goroutine is saving q
}

// push adds a row to save; start says the caller must start a writer.
// Any goroutine.
func (w *outboxWriter) push(p *pendingSend) (start bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.q = append(w.q, p)
	start = !w.running
	w.running = true
	return start
}

// take hands the writer every row waiting, or nil (and the writer ends)
// when none is. Writer goroutine.
func (w *outboxWriter) take() []*pendingSend {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.q
	w.q = nil
	if len(q) == 0 {
		w.running = false
	}
	return q
}

// outboxSaveTimeout bounds one commit of accepted messages.
const outboxSaveTimeout = 10 * time.Second

// writeOutbox saves accepted messages until none is waiting: all that
// arrived while the last commit ran go in the next one. Not tied to the
// session's context, so that what was accepted before a stop is saved
// and sent. Outbox writer goroutine.
func (s *Session) writeOutbox() {
	for {
		batch := s.saves.take()
		if len(batch) == 0 {
			return
		}
		rows := make([]*store.OutboxEntry, len(batch))
		for i, p := range batch {
			rows[i] = p.row
		}
		ctx, cancel := context.WithTimeout(context.Background(), outboxSaveTimeout)
		err := s.mgr.store.PutOutbox(ctx, rows...)
		cancel()
		if err != nil {
			s.log.Error("could not save accepted messages; they are not sent", "messages", len(batch), "err", err)
		}
		for _, p := range batch {
			p.err = err
			close(p.saved)
		}
		s.outboxCommits.Add(1)
	}
}

// sendAccepted sends a message once its outbox row is saved. Request
// worker only.
func (s *Session) sendAccepted(ctx context.Context, p *pendingSend) error {
	if p.row == nil {
		return s.sendEvent(ctx, p.roomID, p.evType, p.content, p.txnID)
	}
	select {
	case <-p.saved:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.err != nil {
		return errNotSaved{p.err}
	}
	raw, err := json.Marshal(p.content)
	if err != nil {
		return err
	}
	evType, sealed, err := s.seal(ctx, p.roomID, p.evType, raw)
	if err != nil {
		if !isTransient(err) || ctx.Err() == nil {
			s.clearOutbox(ctx, p.txnID)
		}
		return err
	}
	if evType == event.EventEncrypted {
		// From now the row holds what is sent, so that a resend after a
		// crash repeats this ciphertext.
		row := *p.row
		row.Type, row.Content = evType.Type, sealed
		if err := s.mgr.store.PutOutbox(ctx, &row); err != nil {
			s.log.Warn("could not save an encrypted message before sending it", "err", err)
		}
	}
	return s.sendSaved(ctx, p.roomID, evType, sealed, p.txnID)
}

// sendEvent posts one message event with transaction ID txnID, writing it
// to the outbox just before, for messages not written when they were
// accepted. Request worker only.
func (s *Session) sendEvent(ctx context.Context, roomID id.RoomID, evType event.Type, content any, txnID string) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return err
	}
	// Encrypted before it is written down, so the outbox keeps no
	// plaintext of an encrypted room and a resend repeats the same
	// ciphertext under the same transaction ID.
	if evType, raw, err = s.seal(ctx, roomID, evType, raw); err != nil {
		return err
	}
	entry := &store.OutboxEntry{UserID: s.user.String(), TxnID: txnID, RoomID: roomID.String(), Type: evType.Type, Content: raw}
	if err := s.mgr.store.PutOutbox(ctx, entry); err != nil {
		// Still send it: losing crash safety is better than losing the message.
		s.log.Warn("could not save an outgoing message before sending it", "err", err)
	}
	return s.sendSaved(ctx, roomID, evType, raw, txnID)
}

// sendSaved sends a message whose outbox row is written, and removes the
// row unless the message is to be sent again at the next start. Request
// worker only.
func (s *Session) sendSaved(ctx context.Context, roomID id.RoomID, evType event.Type, raw []byte, txnID string) error {
	err := s.sendWithRetry(ctx, roomID, evType, json.RawMessage(raw), txnID)
	if err == nil || !isTransient(err) || ctx.Err() == nil {
		// Sent, refused for good, or given up on and reported to the
		// client: either way it is not to be sent again. Only a send cut
		// off by the session stopping stays for the next start.
		s.clearOutbox(ctx, txnID)
	}
	return err
}

// sendWithRetry sends until the homeserver answers for good, ctx ends or
// the retry window is over.
func (s *Session) sendWithRetry(ctx context.Context, roomID id.RoomID, evType event.Type, content json.RawMessage, txnID string) error {
	deadline := time.Now().Add(sendRetryWindow)
	var delay time.Duration
	for {
		// Checked at every attempt: the room may have turned encrypted
		// while the message waited.
		if err := s.refuseUnencrypted(roomID, evType); err != nil {
			return err
		}
		_, err := s.cli.SendMessageEvent(ctx, roomID, evType, content, mautrix.ReqSendEvent{TransactionID: txnID})
		s.mgr.stats.countSent(err)
		if err == nil || !isTransient(err) || ctx.Err() != nil {
			return err
		}
		delay = retryDelay(err, delay)
		if time.Now().Add(delay).After(deadline) {
			return err
		}
		s.log.Info("send failed, retrying", "room", roomID, "err", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return err
		}
	}
}

// resendUnsent queues the messages an earlier run left in the outbox, in
// the order they were accepted. Owner goroutine, after the first sync is
// stored, before any command that waited for it.
func (s *Session) resendUnsent() {
	first := map[string]bool{}
	for _, e := range s.unsent {
		// A room's requests run one at a time, in order: only its oldest
		// row can have been on its way to the homeserver when the last
		// run ended.
		s.resend(e, !first[e.RoomID])
		first[e.RoomID] = true
	}
	s.unsent = nil
}

// inFlightGrace is how long the oldest message left in the outbox waits
// to show up in sync before it is sent again (see resend).
const inFlightGrace = 5 * time.Second

// resend queues a message left in the outbox by an earlier run, unless
// the homeserver took it before the crash.
//
// The transaction ID alone does not prevent a second copy of a message
// whose request was cut off by the crash. Dendrite (v0.15) remembers a
// transaction in memory for 30 to 60 minutes, keyed on the access token,
// the transaction ID and the request path, and only once the request has
// completed: a request cut off while the room server works on it (it waits
// on the room server's answer with the request's context) leaves the event
// in the room and nothing in that cache, and a resend makes a second
// event. A new login (a new token, and a new device session, whose syncs
// do not carry the old session's transaction IDs) forgets it too. So the
// message that may have been in flight (mayBeInFlight: the room's oldest row) is
// first looked for among what sync stored, for up to inFlightGrace while
// the homeserver finishes what was queued before the crash. It runs in
// the room's lane, so the room's later messages stay behind it. Owner
// goroutine, after the first sync is stored.
func (s *Session) resend(e store.OutboxEntry, mayBeInFlight bool) {
	ok := s.enqueueIn(id.RoomID(e.RoomID), func(ctx context.Context) func() {
		if s.reachedHomeserver(ctx, e, mayBeInFlight) {
			s.log.Info("a message left unsent by the last run had reached the homeserver", "room", e.RoomID, "txn", e.TxnID)
			s.clearOutbox(ctx, e.TxnID)
			return nil
		}
		evType, content := event.Type{Type: e.Type, Class: event.MessageEventType}, json.RawMessage(e.Content)
		var err error
		if e.Type == outboxSealedType {
			evType, content, err = s.openRow(e)
		}
		if err == nil {
			// Written before the room turned encrypted: encrypted now.
			evType, content, err = s.seal(ctx, id.RoomID(e.RoomID), evType, content)
		}
		if err == nil {
			err = s.sendWithRetry(ctx, id.RoomID(e.RoomID), evType, content, e.TxnID)
		}
		if err != nil && isTransient(err) && ctx.Err() != nil {
			return nil // stopping: try again next start
		}
		s.clearOutbox(ctx, e.TxnID)
		if err == nil {
			s.log.Info("sent a message left unsent by the last run", "room", e.RoomID, "txn", e.TxnID)
			return nil
		}
		s.log.Warn("a message from before the restart could not be sent", "room", e.RoomID, "err", err)
		return func() { s.tellUndelivered(e, err) }
	})
	if !ok {
		// Not dropped in silence: the row stays for the next start, and
		// the clients hear of it now or when they attach.
		s.log.Warn("too many requests queued to resend a message from before the restart; it stays for the next start", "room", e.RoomID, "txn", e.TxnID)
		s.tellUndelivered(e, errors.New("too many requests were waiting; it is kept and sent at the next start"))
	}
}

// reachedHomeserver says whether sync has stored the message e, waiting up
// to inFlightGrace for it when it may have been in flight. Request worker
// only.
func (s *Session) reachedHomeserver(ctx context.Context, e store.OutboxEntry, mayBeInFlight bool) bool {
	deadline := time.Now().Add(inFlightGrace)
	for {
		if _, err := s.mgr.store.FindByTxn(ctx, e.RoomID, e.UserID, e.TxnID); err == nil {
			return true
		}
		if !mayBeInFlight || time.Now().After(deadline) {
			return false
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}

// openRow opens an outbox row sealed at rest.
func (s *Session) openRow(e store.OutboxEntry) (event.Type, json.RawMessage, error) {
	if s.mgr.cfg.OutboxKey == nil {
		return event.Type{}, nil, errors.New("the gateway no longer has the key it was saved with")
	}
	evType, content, err := openRow(s.mgr.cfg.OutboxKey, e.UserID, e.TxnID, e.Content)
	if err != nil {
		return event.Type{}, nil, errors.New("the gateway could not read it back (was the pickle key replaced?)")
	}
	return evType, content, nil
}

// tellUndelivered says that a message from an earlier run could not be
// sent: to the clients attached now, or else to the next one to attach.
// Owner goroutine.
func (s *Session) tellUndelivered(e store.OutboxEntry, err error) {
	target := e.RoomID
	if r := s.rooms[id.RoomID(e.RoomID)]; r != nil {
		target = r.channel
		if r.dm != "" {
			target = s.nickFor(r.dm)
		}
	}
	var content struct {
		Body string `json:"body"`
	}
	raw := json.RawMessage(e.Content)
	if e.Type == outboxSealedType {
		_, raw, _ = s.openRow(e)
	}
	_ = json.Unmarshal(raw, &content)
	body := content.Body
	if parts := mapping.SplitText(body, 80); len(parts) > 1 {
		body = parts[0] + "…"
	}
	text := fmt.Sprintf("Your message to %s from before the gateway restarted could not be sent (%s): %q", target, matrixErrorText(err), body)
	if len(s.clients) == 0 {
		s.undelivered = append(s.undelivered, text)
		return
	}
	s.noticeAll(text)
}

// clearOutbox forgets a message that is not to be sent again, even when
// the request that sent it ran out of time. Request worker only.
func (s *Session) clearOutbox(ctx context.Context, txnID string) {
	if err := s.mgr.store.DeleteOutbox(context.WithoutCancel(ctx), s.user.String(), txnID); err != nil {
		s.log.Warn("could not clear a sent message from the outbox", "err", err)
	}
}
