package session

import (
	"context"
	"fmt"
	"testing"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
	"maunium.net/go/mautrix/id"
)

// The gateway trims each room's stored history to its window, once for
// all the accounts that share the room.
func TestPruneKeepsTheWindow(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			st := storetest.Open(t, driver)
			m := NewManager(Config{HistoryPerRoom: 100}, st)
			defer m.Close(context.Background())
			ctx := context.Background()
			batch := &store.SyncBatch{UserID: "@a:x", NextBatch: "t1"}
			for i := 0; i < 150; i++ {
				batch.Events = append(batch.Events, store.StoredEvent{RoomID: "!r:x", EventID: id.EventID(fmt.Sprintf("$%d", i)),
					Sender: "@b:x", Type: "m.room.message", TS: int64(i), JSON: []byte(`{}`)})
			}
			if _, err := st.SaveSync(ctx, batch); err != nil {
				t.Fatal(err)
			}
			m.prune(ctx)
			events, err := st.RoomHistory(ctx, store.HistoryQuery{RoomID: "!r:x"})
			if err != nil || len(events) != 100 || events[0].EventID != "$50" {
				t.Fatalf("after pruning: %d events, %v; want the newest 100, from $50", len(events), err)
			}
		})
	}
}
