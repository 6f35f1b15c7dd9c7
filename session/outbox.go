package session

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// Outgoing messages are written to the store's outbox with their
// transaction ID before they are sent, and removed once the homeserver has
// them. A send that fails for a passing reason (no answer, 5xx, 429) is
// retried with the same ID, which the homeserver deduplicates; after a
// crash the next start sends what is left in the outbox, again with the
// same IDs. So a message accepted from IRC is posted once.

// sendRetryWindow bounds how long one send is retried before the client
// is told it failed.
const sendRetryWindow = 45 * time.Second

// sendEvent posts one message event with transaction ID txnID through the
// outbox. Request worker only.
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
	err = s.sendWithRetry(ctx, roomID, evType, json.RawMessage(raw), txnID)
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

// resend queues a message left in the outbox by an earlier run, unless
// the homeserver took it before the crash: a homeserver may store an event
// whose request was cut off without remembering its transaction ID, so
// the ID alone does not prevent a second copy. Owner goroutine, after the
// first sync is stored.
func (s *Session) resend(e store.OutboxEntry) {
	s.enqueue(func(ctx context.Context) func() {
		if _, err := s.mgr.store.FindByTxn(ctx, e.RoomID, e.UserID, e.TxnID); err == nil {
			s.log.Info("a message left unsent by the last run had reached the homeserver", "room", e.RoomID, "txn", e.TxnID)
			s.clearOutbox(ctx, e.TxnID)
			return nil
		}
		// Written before the room turned encrypted: encrypted now.
		evType, content, err := s.seal(ctx, id.RoomID(e.RoomID), event.Type{Type: e.Type, Class: event.MessageEventType}, json.RawMessage(e.Content))
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
	_ = json.Unmarshal(e.Content, &content)
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
