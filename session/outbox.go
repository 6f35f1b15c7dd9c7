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
	"strings"
	"sync"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/irctext"
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
func sealRow(key []byte, user id.UserID, txnID string, evType event.Type, content []byte) ([]byte, error) {
	aead, err := outboxAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(content)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return json.Marshal(sealedRow{Type: evType.Type, Sealed: aead.Seal(nonce, nonce, content, []byte(string(user)+"\x00"+txnID))})
}

// openRow undoes sealRow.
func openRow(key []byte, user id.UserID, txnID string, row []byte) (event.Type, []byte, error) {
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
	content, err := aead.Open(nil, nonce, ct, []byte(string(user)+"\x00"+txnID))
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
	p.row = s.outboxRow(roomID, "", evType, content, txnID, s.mgr.encrypted.has(roomID))
	return p
}

// prepareDirect makes the pending send of a message to peer, with whom
// the account has no direct room yet: its row waits under the peer until
// the room exists. Whether that room will be encrypted is not known yet,
// so the row is sealed at rest whenever the gateway has an outbox key.
// Owner goroutine.
func (s *Session) prepareDirect(peer id.UserID, content any, txnID string) *pendingSend {
	p := &pendingSend{evType: event.EventMessage, content: content, txnID: txnID, saved: make(chan struct{})}
	mayEncrypt := s.mgr.cfg.OutboxKey != nil || (s.mgr.cfg.EncryptNewDMs && s.olm.Load() != nil)
	p.row = s.outboxRow("", peer, event.EventMessage, content, txnID, mayEncrypt)
	return p
}

// outboxRow is the row that keeps one message until it is sent, sealed
// with the outbox key when it may go to an encrypted room; nil when it
// cannot be written (see pendingSend.row). Owner goroutine.
func (s *Session) outboxRow(roomID id.RoomID, peer id.UserID, evType event.Type, content any, txnID string, seal bool) *store.OutboxEntry {
	raw, err := json.Marshal(content)
	if err != nil {
		return nil
	}
	row := &store.OutboxEntry{UserID: s.user, TxnID: txnID, RoomID: roomID, Peer: peer, Type: evType.Type, Content: raw}
	if seal {
		if s.mgr.cfg.OutboxKey == nil {
			return nil
		}
		if row.Content, err = sealRow(s.mgr.cfg.OutboxKey, row.UserID, txnID, evType, raw); err != nil {
			s.log.Warn("could not seal an outgoing message for the outbox", "err", err)
			return nil
		}
		row.Type = outboxSealedType
	}
	return row
}

// abandon ends a prepared send that was not accepted (its request could
// not be queued), so that nothing waits for its row. Owner goroutine.
func (p *pendingSend) abandon() {
	p.err = errors.New("not accepted")
	close(p.saved)
}

// accept hands a prepared send, whose request is queued, to the outbox
// writer, and holds back what client a is shown after the line until the
// row is saved. Owner goroutine.
func (s *Session) accept(a *Attachment, p *pendingSend) {
	if p.txnID == s.early.txnID {
		s.early.accepted = true
	}
	s.save(p)
	if p.row != nil {
		a.client.Checkpoint("", func() { <-p.saved }, nil)
	}
}

// save hands a prepared send to the outbox writer. Owner goroutine.
func (s *Session) save(p *pendingSend) {
	if p.row == nil {
		close(p.saved)
		return
	}
	if s.saves.push(p) {
		go s.guard("outbox writer", s.writeOutbox)
	}
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
	entry := &store.OutboxEntry{UserID: s.user, TxnID: txnID, RoomID: roomID, Type: evType.Type, Content: raw}
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
	first := map[id.RoomID]bool{}
	for _, e := range s.unsent {
		switch {
		case e.RoomID != "":
			// A room's requests run one at a time, in order: only its
			// oldest row can have been on its way to the homeserver when
			// the last run ended. A row without a room never was: it is
			// given its room before it is sent.
			s.resend(e, !first[e.RoomID])
			first[e.RoomID] = true
		case e.Peer != "":
			s.resendDirect(e)
		default:
			s.resendLine(e, nil)
		}
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
	ok := s.enqueueIn(e.RoomID, func(ctx context.Context) func() {
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
			evType, content, err = s.seal(ctx, e.RoomID, evType, content)
		}
		if err == nil {
			err = s.sendWithRetry(ctx, e.RoomID, evType, content, e.TxnID)
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
	target, body := s.outboxText(e)
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

// outboxText is whom an outbox row is for, as IRC names them, and the
// text of its message. Owner goroutine.
func (s *Session) outboxText(e store.OutboxEntry) (target, body string) {
	raw := json.RawMessage(e.Content)
	if e.Type == outboxSealedType {
		_, raw, _ = s.openRow(e)
	}
	switch {
	case e.RoomID != "":
		target = e.RoomID.String()
		if r := s.rooms[e.RoomID]; r != nil {
			target = r.channel
			if r.dm != "" {
				target = s.nickFor(r.dm)
			}
		}
	case e.Peer != "":
		target = s.nickFor(e.Peer)
	default:
		var line lineRow
		_ = json.Unmarshal(raw, &line)
		if m, err := irc.ParseMessage(line.Line); err == nil && len(m.Params) >= 2 {
			return m.Params[0], m.Params[1]
		}
		return "?", ""
	}
	var content struct {
		Body string `json:"body"`
	}
	_ = json.Unmarshal(raw, &content)
	return target, content.Body
}

// clearOutbox forgets a message that is not to be sent again, even when
// the request that sent it ran out of time. Request worker only.
func (s *Session) clearOutbox(ctx context.Context, txnID string) {
	if err := s.mgr.store.DeleteOutbox(context.WithoutCancel(ctx), s.user, txnID); err != nil {
		s.log.Warn("could not clear a sent message from the outbox", "err", err)
	}
}

// A PRIVMSG or NOTICE that comes before the session's first sync cannot
// be resolved yet: which room a channel name means, and who a nick is,
// are known only from that sync. It is written to the outbox as typed
// (lineRow) when it is accepted, sealed like any row when the gateway has
// an outbox key, and waits in memory with the other early commands. After
// the sync it runs as it was typed, under the transaction ID it was
// given, so the row it then makes replaces the line's and keeps its place;
// a line that sends nothing has its row removed. A line whose client left
// before the sync, or that an earlier run left in the outbox, is resolved
// the same way without its client (resendLine): it goes where it would
// have gone, or the clients are told why not.

// outboxLineType marks an outbox row holding an IRC line as typed.
const outboxLineType = "org.mxircd.outbox.line"

// lineRow is the content of an outbox row of type outboxLineType.
type lineRow struct {
	Line string `json:"line"` // the IRC line, with its tags
	Nick string `json:"nick"` // the typing client's nick then, for a line that names it
}

// earlyLine is the early line being run after the first sync: newTxnID
// hands out its transaction ID, and accept says whether a send took it.
type earlyLine struct {
	txnID    string
	used     bool
	accepted bool
}

// acceptEarly writes a message line that came before the first sync to
// the outbox; nil when it is not such a line or cannot be written (it
// then waits in memory only). Owner goroutine.
func (s *Session) acceptEarly(a *Attachment, m *irc.Message) *pendingSend {
	if (m.Command != "PRIVMSG" && m.Command != "NOTICE") || len(m.Params) < 2 || s.isServiceNick(m.Params[0]) {
		return nil
	}
	txnID := s.makeTxnID(a)
	p := &pendingSend{txnID: txnID, saved: make(chan struct{})}
	line := lineRow{Line: m.String(), Nick: a.client.Nick()}
	if p.row = s.outboxRow("", "", event.Type{Type: outboxLineType}, line, txnID, s.mgr.cfg.OutboxKey != nil); p.row == nil {
		return nil
	}
	s.accept(a, p)
	return p
}

// runEarly runs an early line of a client still attached, once the first
// sync is applied. Owner goroutine.
func (s *Session) runEarly(ev commandEvent) {
	select {
	case <-ev.line.saved:
		if ev.line.err != nil {
			s.reply(ev.a, ev.a.client, ev.msg.Command, ircreply.Numeric(irc.ERR_CANNOTSENDTOCHAN, ev.msg.Params[0], "Cannot send: "+errNotSaved{ev.line.err}.Error()))
			return
		}
	default: // still being saved: the row that replaces it is written after it
	}
	s.early = earlyLine{txnID: ev.line.txnID}
	defer func() {
		// Also after a panic: no later message may take this ID.
		if !s.early.accepted {
			s.dropRow(ev.line.txnID, ev.line.saved)
		}
		s.early = earlyLine{}
	}()
	s.handleCommand(ev.a, ev.msg)
}

// dropRow removes the outbox row of a line that sends nothing, once it is
// saved. Owner goroutine.
func (s *Session) dropRow(txnID string, saved <-chan struct{}) {
	ok := s.enqueueSide(func(ctx context.Context) func() {
		if saved != nil {
			select {
			case <-saved:
			case <-ctx.Done():
				return nil
			}
		}
		s.clearOutbox(ctx, txnID)
		return nil
	})
	if !ok {
		s.log.Warn("could not queue the removal of a line that sends nothing; it is looked at again at the next start", "txn", txnID)
	}
}

// resendLine sends an outbox line (lineRow) without its client: one an
// earlier run left, or one whose client left before the first sync
// (saved is then its row's, still maybe on its way to the store). Owner
// goroutine, after the first sync.
func (s *Session) resendLine(e store.OutboxEntry, saved <-chan struct{}) {
	refuse := func(err error) {
		s.dropRow(e.TxnID, saved)
		if err != nil {
			s.tellUndelivered(e, err)
		}
	}
	raw := json.RawMessage(e.Content)
	if e.Type == outboxSealedType {
		var err error
		if _, raw, err = s.openRow(e); err != nil {
			refuse(err)
			return
		}
	}
	var line lineRow
	var m *irc.Message
	err := json.Unmarshal(raw, &line)
	if err == nil {
		m, err = irc.ParseMessage(line.Line)
	}
	if err != nil || len(m.Params) < 2 || m.Params[0] == "" {
		refuse(errors.New("the gateway could not read it back"))
		return
	}
	target, text := m.Params[0], m.Params[1]
	nicks := func(nick string) (id.UserID, bool) {
		if folded := irctext.Casefold(nick); folded == irctext.Casefold(line.Nick) {
			return s.user, true
		} else if user, ok := s.byNick[folded]; ok {
			return user, true
		}
		return "", false
	}
	content, ok := mapping.MessageFromIRC(m.Command, text, nicks)
	if !ok {
		refuse(nil) // CTCP other than ACTION has no Matrix meaning
		return
	}
	if reply := replyTarget(m); reply != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(reply)
	}
	var p *pendingSend
	var future *dmFuture
	if r := s.roomByChannel(target); r != nil {
		p = s.prepareSend(r.id, event.EventMessage, content, e.TxnID)
	} else if strings.ContainsRune("#!", rune(target[0])) {
		refuse(errors.New("the account is not in that channel"))
		return
	} else if user, ok := userForName(target, nicks); !ok || user == s.user {
		refuse(errors.New("no such nick"))
		return
	} else if r := s.dmRoomWith(user); r != nil {
		p = s.prepareSend(r.id, event.EventMessage, content, e.TxnID)
	} else {
		p = s.prepareDirect(user, content, e.TxnID)
		if future = s.dmFutures[user]; future == nil {
			if !s.takeRoomToken() {
				refuse(errors.New("it would start a direct message, and the account has created too many rooms lately"))
				return
			}
			if future = s.startDirect(nil, nil, m.Command, target, user, p, s.directCandidates(user)); future == nil {
				s.tellUndelivered(e, errors.New("too many requests were waiting; it is kept and sent at the next start"))
				return
			}
		}
	}
	// Replaces the line's row, in its place.
	s.save(p)
	ok = s.enqueue(func(ctx context.Context) func() {
		var err error
		if future != nil {
			err = s.sendDirectAccepted(ctx, future, p)
		} else {
			err = s.sendAccepted(ctx, p)
		}
		if err == nil || (isTransient(err) && ctx.Err() != nil) {
			return nil
		}
		s.log.Warn("a message typed before the first sync could not be sent", "txn", e.TxnID, "err", err)
		return func() { s.tellUndelivered(e, err) }
	})
	if !ok {
		s.log.Warn("too many requests queued to send a message typed before the first sync; it stays for the next start", "txn", e.TxnID)
		s.tellUndelivered(e, errors.New("too many requests were waiting; it is kept and sent at the next start"))
	}
}

// resendDirect sends a message an earlier run left waiting for a direct
// room with its peer: into the room the account has with the peer now,
// the one the last run created before it could record it, or a new one.
// Owner goroutine, after the first sync.
func (s *Session) resendDirect(e store.OutboxEntry) {
	peer := e.Peer
	evType, content := event.Type{Type: e.Type, Class: event.MessageEventType}, json.RawMessage(e.Content)
	if e.Type == outboxSealedType {
		var err error
		if evType, content, err = s.openRow(e); err != nil {
			s.dropRow(e.TxnID, nil)
			s.tellUndelivered(e, err)
			return
		}
	}
	saved := make(chan struct{})
	close(saved)
	row := e
	p := &pendingSend{evType: evType, content: content, txnID: e.TxnID, row: &row, saved: saved}
	future := s.dmFutures[peer]
	if r := s.dmRoomWith(peer); r != nil {
		future = &dmFuture{roomID: r.id}
	} else if future == nil {
		// Accepted by the last run, which counted the room then.
		if future = s.startDirect(nil, nil, "PRIVMSG", s.nickFor(peer), peer, nil, s.directCandidates(peer)); future == nil {
			s.tellUndelivered(e, errors.New("too many requests were waiting; it is kept and sent at the next start"))
			return
		}
	}
	ok := s.enqueue(func(ctx context.Context) func() {
		err := s.sendDirectAccepted(ctx, future, p)
		if err == nil {
			s.log.Info("sent a direct message left unsent by the last run", "peer", peer, "txn", e.TxnID)
			return nil
		}
		if isTransient(err) && ctx.Err() != nil {
			return nil // stopping: try again next start
		}
		s.log.Warn("a direct message from before the restart could not be sent", "peer", peer, "err", err)
		return func() { s.tellUndelivered(e, err) }
	})
	if !ok {
		s.log.Warn("too many requests queued to resend a message from before the restart; it stays for the next start", "txn", e.TxnID)
		s.tellUndelivered(e, errors.New("too many requests were waiting; it is kept and sent at the next start"))
	}
}
