package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
	"maunium.net/go/mautrix/id"
)

// The store's work for one message on its way from one IRC client to
// another through the gateway, which is on the path the latency benchmark
// times: the sender's outbox entry written before the request and removed
// after it, the message stored for each of the two accounts that see it
// (the second finds the shared event there already), and the receiving
// client's cursor.
func BenchmarkMessagePath(b *testing.B) {
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			s := storetest.Open(b, driver)
			ctx := context.Background()
			saveSync(b, s, "@a:x", "t0", ev("!r:x", "$0", 1))
			saveSync(b, s, "@b:x", "t0", ev("!r:x", "$0", 1))
			b.Run("outbox", func(b *testing.B) {
				for i := range b.N {
					txn := fmt.Sprintf("mxircd.1.%d~", i)
					if err := s.PutOutbox(ctx, &store.OutboxEntry{UserID: "@a:x", TxnID: txn, RoomID: "!r:x", Type: "m.room.message", Content: []byte(`{"body":"hi"}`)}); err != nil {
						b.Fatal(err)
					}
					if err := s.DeleteOutbox(ctx, "@a:x", txn); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("sync-new", func(b *testing.B) {
				for i := range b.N {
					saveSync(b, s, "@a:x", fmt.Sprintf("a%d", i), ev("!r:x", id.EventID(fmt.Sprintf("$new%d", i)), int64(i)))
				}
			})
			b.Run("sync-shared", func(b *testing.B) {
				// An event another account stored first.
				for i := range b.N {
					e := ev("!r:x", id.EventID(fmt.Sprintf("$shared%d", i)), int64(i))
					b.StopTimer()
					saveSync(b, s, "@c:x", fmt.Sprintf("c%d", i), e)
					b.StartTimer()
					saveSync(b, s, "@b:x", fmt.Sprintf("b%d", i), e)
				}
			})
			b.Run("cursor", func(b *testing.B) {
				for i := range b.N {
					if err := s.PutCursors(ctx, []store.CursorUpdate{{UserID: "@b:x", Client: "laptop", Seq: int64(i + 1)}}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
