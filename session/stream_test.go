package session

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store/storetest"
)

// A message alice typed on her laptop reaches the gateway twice: through
// carol's sync, which stores the shared event first and knows no
// transaction ID, and through alice's, which does. Replay must still know
// it as the laptop's own, and a resend after a crash must still find it;
// the shared event carries no account's transaction ID.
func TestOwnTransactionIDBelongsToTheAccount(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			st := storetest.Open(t, driver)
			m := NewManager(Config{}, st)
			defer m.Close(context.Background())
			ctx := context.Background()
			alice, carol := id.UserID("@alice:x"), id.UserID("@carol:x")
			room := id.RoomID("!r:x")
			const txn = "mxircd.1.7~laptop"

			syncWith := func(user id.UserID, txnID string) {
				t.Helper()
				ev := &event.Event{
					ID: "$typed", Sender: alice, Type: event.EventMessage, Timestamp: 1000,
					Content:  event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)},
					Unsigned: event.Unsigned{TransactionID: txnID},
				}
				resp := &mautrix.RespSync{NextBatch: "s1"}
				resp.Rooms.Join = map[id.RoomID]*mautrix.SyncJoinedRoom{room: {Timeline: mautrix.SyncTimeline{SyncEventsList: mautrix.SyncEventsList{Events: []*event.Event{ev}}}}}
				s := &Session{mgr: m, user: user, log: m.log, ctx: ctx}
				if _, err := newSyncer(s, "").persistSync(resp, false); err != nil {
					t.Fatal(err)
				}
				if ev.Unsigned.TransactionID != txnID {
					t.Errorf("persistSync changed the live event's transaction ID to %q", ev.Unsigned.TransactionID)
				}
			}
			syncWith(carol, "")
			syncWith(alice, txn)

			for _, tc := range []struct {
				user   id.UserID
				client string
				own    bool
			}{{alice, "laptop", true}, {alice, "phone", false}, {carol, "laptop", false}} {
				events, _, err := st.StreamRange(ctx, tc.user, 0, 10, 0)
				if err != nil || len(events) != 1 {
					t.Fatalf("stream of %s: %v, %v", tc.user, events, err)
				}
				if strings.Contains(string(events[0].JSON), "transaction_id") {
					t.Errorf("the shared event carries a transaction ID: %s", events[0].JSON)
				}
				ev, ok := decodeStored(events[0])
				if !ok {
					t.Fatalf("cannot decode %s", events[0].JSON)
				}
				if got := typedBy(ev, tc.user, tc.client); got != tc.own {
					t.Errorf("typedBy(%s@%s) = %v, want %v", tc.user, tc.client, got, tc.own)
				}
			}
			if e, err := st.FindByTxn(ctx, room, alice, txn); err != nil || e.EventID != "$typed" {
				t.Errorf("FindByTxn = %+v, %v", e, err)
			}
		})
	}
}
