package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store"
)

// 10: what the outbox holds when the gateway starts is what a run that
// died had accepted from IRC and not seen through: the next start sends
// it once, and not at all when the homeserver has it already; a message
// that cannot be sent is told to the client when it comes back, never
// dropped in silence. (e2e_restart_test.go kills a real run mid-send; this
// test puts each case in the outbox itself, so that each one is certain to
// be there.)
func TestOutboxAfterRestart(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "outbox")
		closed := createRoom(t, bob, uniq("closed"), "")

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, channel)
		waitNames(t, laptop, channel, bob.Localpart)
		laptop.Send("PRIVMSG %s :sent before the stop", channel)
		sent := bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
			return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "sent before the stop"
		})
		waitStored(t, b.g, alice.UserID, sent.ID)
		sentTxn := ""
		evs, _, err := b.g.store.StreamRange(ctxFor(t), alice.UserID, 0, 1<<40, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.EventID == sent.ID {
				sentTxn = e.TxnID
			}
		}
		if !strings.HasSuffix(sentTxn, "~laptop") {
			t.Fatalf("the message the laptop sent is stored with transaction ID %q", sentTxn)
		}
		quit(t, laptop)
		b.stop(t)

		// As a run that died would have left them: one message the
		// homeserver took before the crash (sent, not yet cleared), one it
		// never got, one it will refuse (alice is not in that room).
		st, err := store.Open(context.Background(), store.Config{Driver: b.cfg.Store.Driver, Path: b.cfg.Store.Path, DSN: b.cfg.Store.DSN})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []store.OutboxEntry{
			{TxnID: sentTxn, RoomID: room, Content: text("sent before the stop")},
			{TxnID: "mxircd.1.1~laptop", RoomID: room, Content: text("left in the outbox")},
			{TxnID: "mxircd.1.2~laptop", RoomID: closed, Content: text("to a room alice is not in")},
		} {
			e.UserID, e.Type = alice.UserID, event.EventMessage.Type
			if err := st.PutOutbox(ctxFor(t), &e); err != nil {
				t.Fatal(err)
			}
		}
		st.Close()

		b.start(t)
		bodies := waitInRoom(t, bob, room, "left in the outbox")
		for _, body := range []string{"sent before the stop", "left in the outbox"} {
			if n := count(bodies, body); n != 1 {
				t.Errorf("%q is in the room %d times, want once", body, n)
			}
		}

		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		var shown []*irc.Message
		laptop.ExpectMatch(t, func(m *irc.Message) bool {
			shown = append(shown, m)
			return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "could not be sent") && strings.Contains(m.Trailing(), "to a room alice is not in")
		}, "NOTICE that the message to the closed room could not be sent")
		s := sentinel(t, bob, room)
		rest, _ := untilText(t, laptop, s.text)
		for _, m := range append(shown, rest...) {
			if m.Command == "PRIVMSG" && m.Trailing() == "left in the outbox" {
				t.Errorf("the laptop was shown its own message: %s", m)
			}
		}
		waitOutbox(t, b.g, alice, "emptied", func(out []store.OutboxEntry) bool { return len(out) == 0 })
	})
}

func text(body string) []byte {
	raw, _ := json.Marshal(event.MessageEventContent{MsgType: event.MsgText, Body: body})
	return raw
}

// waitOutbox waits until acct's outbox at the gateway is as done wants.
func waitOutbox(t *testing.T, g *gateway, acct *testenv.Account, what string, done func([]store.OutboxEntry) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := g.store.Outbox(ctxFor(t), acct.UserID)
		if err == nil && done(out) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox never %s; it holds %+v (%v)", what, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutboxHolds waits until the gateway has taken a message with body on
// and not sent it yet.
func waitOutboxHolds(t *testing.T, g *gateway, acct *testenv.Account, body string) {
	t.Helper()
	waitOutbox(t, g, acct, "held "+body, func(out []store.OutboxEntry) bool {
		return slices.ContainsFunc(out, func(e store.OutboxEntry) bool { return strings.Contains(string(e.Content), body) })
	})
}
