package session

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// panicOnceStore panics in the first PutCursors, as a store with a bug
// would.
type panicOnceStore struct {
	store.Store
	panicked atomic.Bool
}

func (p *panicOnceStore) PutCursors(ctx context.Context, ops []store.CursorUpdate) error {
	if p.panicked.CompareAndSwap(false, true) {
		panic("test: the store broke")
	}
	return p.Store.PutCursors(ctx, ops)
}

// A panic in the cursor writer is logged; the client waiting for that
// write hears of a failure instead of waiting forever, and the writer
// goes on with the next write.
func TestCursorWriterSurvivesPanic(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			st := &panicOnceStore{Store: storetest.Open(t, driver)}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			m := NewManager(Config{Homeserver: "http://127.0.0.1:9", Logger: quiet}, st)
			t.Cleanup(func() { m.Close(context.Background()) })
			ctx := context.Background()
			const user, client = "@alice:example.org", "laptop"
			if err := m.saveCursor(ctx, user, client, 5); err == nil {
				t.Fatal("the write that panicked reported success")
			}
			if err := m.saveCursor(ctx, user, client, 6); err != nil {
				t.Fatalf("the cursor writer did not go on after a panic: %v", err)
			}
			seq, ok, err := st.Cursor(ctx, user, client)
			if err != nil || !ok || seq != 6 {
				t.Fatalf("stored cursor = %d, %v, %v; want 6", seq, ok, err)
			}
		})
	}
}
