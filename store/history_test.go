package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
	"maunium.net/go/mautrix/id"
)

// ev makes an event whose JSON names it, so round trips can be checked.
func ev(room id.RoomID, eventID id.EventID, ts int64) store.StoredEvent {
	return store.StoredEvent{
		RoomID: room, EventID: eventID, Sender: "@s:x", Type: "m.room.message", TS: ts,
		JSON: []byte(fmt.Sprintf(`{"event_id":%q,"room_id":%q,"origin_server_ts":%d}`, eventID, room, ts)),
	}
}

func typed(e store.StoredEvent, typ string) store.StoredEvent {
	e.Type = typ
	return e
}

func saveSync(t testing.TB, s store.Store, user id.UserID, token string, events ...store.StoredEvent) []int64 {
	t.Helper()
	pos, err := s.SaveSync(context.Background(), &store.SyncBatch{UserID: user, NextBatch: token, Events: events})
	if err != nil {
		t.Fatalf("SaveSync: %v", err)
	}
	return pos
}

func countRows(t *testing.T, s *store.SQLStore, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func wantSyncState(t *testing.T, s store.Store, user id.UserID, token string, head int64) {
	t.Helper()
	gotToken, gotHead, err := s.SyncState(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if gotToken != token || gotHead != head {
		t.Errorf("SyncState(%s) = %q, %d; want %q, %d", user, gotToken, gotHead, token, head)
	}
}

// ids lists the event IDs of events, in order.
func ids(events []store.StoredEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventID.String()
	}
	return out
}

func TestSaveSyncPositionsAndDedup(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		wantSyncState(t, s, "@a:x", "", 0)

		pos := saveSync(t, s, "@a:x", "t1", ev("!r:x", "$1", 100), ev("!r:x", "$2", 200), ev("!q:x", "$3", 300))
		if want := []int64{1, 2, 3}; !slices.Equal(pos, want) {
			t.Errorf("positions %v, want %v", pos, want)
		}
		wantSyncState(t, s, "@a:x", "t1", 3)

		// Duplicates, in the stream already or twice in one batch, get 0.
		pos = saveSync(t, s, "@a:x", "t2", ev("!r:x", "$2", 200), ev("!r:x", "$4", 400), ev("!r:x", "$4", 400), ev("!q:x", "$5", 500))
		if want := []int64{0, 4, 0, 5}; !slices.Equal(pos, want) {
			t.Errorf("positions %v, want %v", pos, want)
		}
		wantSyncState(t, s, "@a:x", "t2", 5)

		// Another account storing the same event shares its row, keeps
		// the first stored version, and has a stream of its own.
		changed := ev("!r:x", "$1", 100)
		changed.JSON = []byte(`{"changed":true}`)
		pos = saveSync(t, s, "@b:x", "b1", changed, ev("!r:x", "$6", 600))
		if want := []int64{1, 2}; !slices.Equal(pos, want) {
			t.Errorf("positions of @b:x %v, want %v", pos, want)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM events WHERE event_id = $1`, "$1"); n != 1 {
			t.Errorf("%d event rows for $1, want 1", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM account_events WHERE event_id = $1`, "$1"); n != 2 {
			t.Errorf("%d stream rows for $1, want 2", n)
		}
		got, err := s.FindEvent(ctx, "!r:x", "$1")
		if err != nil {
			t.Fatal(err)
		}
		if want := ev("!r:x", "$1", 100); string(got.JSON) != string(want.JSON) {
			t.Errorf("stored JSON %s, want the first account's %s", got.JSON, want.JSON)
		}
		wantSyncState(t, s, "@a:x", "t2", 5)
		wantSyncState(t, s, "@b:x", "b1", 2)

		// Room positions increase in insertion order.
		hist, err := s.RoomHistory(ctx, store.HistoryQuery{RoomID: "!r:x"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$1", "$2", "$4", "$6"}; !slices.Equal(ids(hist), want) {
			t.Errorf("room history %v, want %v", ids(hist), want)
		}
		for i := 1; i < len(hist); i++ {
			if hist[i].Seq <= hist[i-1].Seq {
				t.Errorf("room positions not increasing: %d after %d", hist[i].Seq, hist[i-1].Seq)
			}
		}

		// An empty batch saves the token alone.
		if pos := saveSync(t, s, "@a:x", "t3"); len(pos) != 0 {
			t.Errorf("positions %v for an empty batch", pos)
		}
		wantSyncState(t, s, "@a:x", "t3", 5)
		saveSync(t, s, "@new:x", "n1")
		wantSyncState(t, s, "@new:x", "n1", 0)
	})
}

func TestSaveSyncHistoryOnly(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		old := ev("!r:x", "$old", 100)
		old.HistoryOnly = true
		pos := saveSync(t, s, "@a:x", "t1", old, ev("!r:x", "$new", 200))
		if want := []int64{0, 2}; !slices.Equal(pos, want) {
			t.Errorf("positions %v, want %v", pos, want)
		}
		wantSyncState(t, s, "@a:x", "t1", 2)
		hist, err := s.RoomHistory(ctx, store.HistoryQuery{RoomID: "!r:x"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$old", "$new"}; !slices.Equal(ids(hist), want) || hist[0].HistoryOnly {
			t.Errorf("room history %v (%+v), want %v", ids(hist), hist, want)
		}
		got, _, err := s.StreamRange(ctx, "@a:x", 0, 10, 0)
		if err != nil || !slices.Equal(ids(got), []string{"$new"}) {
			t.Errorf("stream %v, %v; want [$new]", ids(got), err)
		}
		// Another account may have the same event in its stream.
		if pos := saveSync(t, s, "@b:x", "t1", ev("!r:x", "$old", 100)); !slices.Equal(pos, []int64{1}) {
			t.Errorf("positions of @b:x %v, want [1]", pos)
		}
		// Seen as history, it is not new to the account when it comes
		// again (Dendrite sends a room just joined twice).
		if pos := saveSync(t, s, "@a:x", "t2", ev("!r:x", "$old", 100)); !slices.Equal(pos, []int64{0}) {
			t.Errorf("positions of $old again %v, want [0]", pos)
		}
	})
}

// An account's history shows what it received, stream or history, not
// what other accounts stored before it was in the room.
func TestRoomHistoryViewer(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		saveSync(t, s, "@b:x", "b1", ev("!r:x", "$before", 100), ev("!r:x", "$shown", 200))
		shown := ev("!r:x", "$shown", 200)
		shown.HistoryOnly = true
		saveSync(t, s, "@a:x", "a1", shown, ev("!r:x", "$after", 300), ev("!q:x", "$elsewhere", 400))
		for viewer, want := range map[id.UserID][]string{
			"":     {"$before", "$shown", "$after"},
			"@a:x": {"$shown", "$after"},
			"@b:x": {"$before", "$shown"},
			"@c:x": nil,
		} {
			hist, err := s.RoomHistory(ctx, store.HistoryQuery{RoomID: "!r:x", Viewer: viewer})
			if err != nil || !slices.Equal(ids(hist), want) {
				t.Errorf("RoomHistory for %q = %v, %v; want %v", viewer, ids(hist), err, want)
			}
		}
	})
}

func TestSaveSyncRejectsBadInput(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		for name, b := range map[string]*store.SyncBatch{
			"nil":         nil,
			"no user":     {NextBatch: "t"},
			"no event ID": {UserID: "@a:x", Events: []store.StoredEvent{ev("!r:x", "", 1)}},
			"no room ID":  {UserID: "@a:x", Events: []store.StoredEvent{ev("", "$1", 1)}},
		} {
			if _, err := s.SaveSync(ctx, b); err == nil {
				t.Errorf("%s: SaveSync succeeded", name)
			}
		}
		wantSyncState(t, s, "@a:x", "", 0)
	})
}

func TestSaveSyncIsAtomic(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		saveSync(t, s, "@a:x", "t1", ev("!r:x", "$1", 100))

		// A cancelled context fails before anything is written.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.SaveSync(cancelled, &store.SyncBatch{UserID: "@a:x", NextBatch: "t2", Events: []store.StoredEvent{ev("!r:x", "$2", 200)}}); err == nil {
			t.Error("SaveSync with a cancelled context succeeded")
		}
		wantSyncState(t, s, "@a:x", "t1", 1)

		// A failure in the middle of a batch: a stray stream row at the
		// position the second event would get makes its insert fail
		// after the first event's was written in the same transaction.
		if _, err := s.DB().Exec(`INSERT INTO account_events (user_id, seq, room_id, event_id, ts) VALUES ($1, 3, '!stray:x', '$stray', 0)`, "@a:x"); err != nil {
			t.Fatal(err)
		}
		_, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@a:x", NextBatch: "t2", Events: []store.StoredEvent{
			ev("!r:x", "$2", 200), ev("!r:x", "$3", 300), ev("!r:x", "$4", 400),
		}})
		if err == nil {
			t.Fatal("SaveSync over a conflicting stream row succeeded")
		}
		// The account received nothing: token, head and stream as before.
		// (The shared events may stay: they are a cache of the rooms, not
		// something an account has received.)
		wantSyncState(t, s, "@a:x", "t1", 1)
		if n := countRows(t, s, `SELECT COUNT(*) FROM account_events WHERE user_id = $1`, "@a:x"); n != 2 {
			t.Errorf("%d stream rows after the failed batch, want 2 (one saved, one stray)", n)
		}

		// Saved again, the batch gets the positions the failure did not use,
		// and its events keep one room position each.
		if _, err := s.DB().Exec(`DELETE FROM account_events WHERE event_id = '$stray'`); err != nil {
			t.Fatal(err)
		}
		pos := saveSync(t, s, "@a:x", "t2", ev("!r:x", "$2", 200), ev("!r:x", "$3", 300), ev("!r:x", "$4", 400))
		if len(pos) != 3 || pos[0] != 2 || pos[1] != 3 || pos[2] != 4 {
			t.Errorf("positions after the retry %v, want [2 3 4]", pos)
		}
		wantSyncState(t, s, "@a:x", "t2", 4)
		e1, _ := s.FindEvent(ctx, "!r:x", "$1")
		e2, err := s.FindEvent(ctx, "!r:x", "$2")
		if err != nil {
			t.Fatal(err)
		}
		if e2.Seq != e1.Seq+1 {
			t.Errorf("room position %d after %d: an event was given two positions", e2.Seq, e1.Seq)
		}
	})
}

func TestPositionsNeverReused(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		saveSync(t, s, "@a:x", "t1", ev("!r:x", "$1", 1), ev("!r:x", "$2", 2), ev("!r:x", "$3", 3))
		last, err := s.FindEvent(ctx, "!r:x", "$3")
		if err != nil {
			t.Fatal(err)
		}

		// Pruning everything, stream rows included, keeps the heads.
		if err := s.Prune(ctx, "!r:x", 0); err != nil {
			t.Fatal(err)
		}
		if err := s.ClearSyncState(ctx, "@a:x"); err != nil {
			t.Fatal(err)
		}
		wantSyncState(t, s, "@a:x", "", 3)
		if err := s.ClearSyncState(ctx, "@nobody:x"); err != nil {
			t.Errorf("ClearSyncState of an account without state: %v", err)
		}

		// The same events arriving again are new to the stream.
		pos := saveSync(t, s, "@a:x", "t2", ev("!r:x", "$3", 3), ev("!r:x", "$4", 4))
		if want := []int64{4, 5}; !slices.Equal(pos, want) {
			t.Errorf("positions after prune and clear %v, want %v", pos, want)
		}
		again, err := s.FindEvent(ctx, "!r:x", "$3")
		if err != nil {
			t.Fatal(err)
		}
		if again.Seq <= last.Seq {
			t.Errorf("room position %d reused (was %d before pruning)", again.Seq, last.Seq)
		}
		wantSyncState(t, s, "@a:x", "t2", 5)
	})
}

func TestStreamRange(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		// Stream: 1 r/a1, 2 q/b1, 3 r/a2, 4 r/a3, 5 q/b2, 6 r/a4, 7 p/c1
		saveSync(t, s, "@a:x", "t1",
			ev("!r:x", "$a1", 1), ev("!q:x", "$b1", 2), ev("!r:x", "$a2", 3), ev("!r:x", "$a3", 4),
			ev("!q:x", "$b2", 5), ev("!r:x", "$a4", 6), ev("!p:x", "$c1", 7))
		saveSync(t, s, "@other:x", "o1", ev("!r:x", "$z", 8))

		got, skipped, err := s.StreamRange(ctx, "@a:x", 0, 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$a1", "$b1", "$a2", "$a3", "$b2", "$a4", "$c1"}; !slices.Equal(ids(got), want) || len(skipped) != 0 {
			t.Errorf("unlimited: %v, skipped %v; want %v and none", ids(got), skipped, want)
		}
		for i, e := range got {
			want := ev(e.RoomID, e.EventID, e.TS)
			if e.Seq != int64(i+1) || string(e.JSON) != string(want.JSON) || e.Sender != want.Sender || e.Type != want.Type {
				t.Errorf("event %d: %+v", i, e)
			}
		}

		got, skipped, err = s.StreamRange(ctx, "@a:x", 0, 7, 2)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$b1", "$a3", "$b2", "$a4", "$c1"}; !slices.Equal(ids(got), want) {
			t.Errorf("perRoom 2: %v, want %v", ids(got), want)
		}
		if want := map[id.RoomID]int{"!r:x": 2}; !reflect.DeepEqual(skipped, want) {
			t.Errorf("perRoom 2: skipped %v, want %v", skipped, want)
		}

		// after is exclusive, upTo inclusive.
		got, skipped, err = s.StreamRange(ctx, "@a:x", 2, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$a3", "$b2"}; !slices.Equal(ids(got), want) {
			t.Errorf("(2,5] perRoom 1: %v, want %v", ids(got), want)
		}
		if want := map[id.RoomID]int{"!r:x": 1}; !reflect.DeepEqual(skipped, want) {
			t.Errorf("(2,5] perRoom 1: skipped %v, want %v", skipped, want)
		}
		if got[0].Seq != 4 || got[1].Seq != 5 {
			t.Errorf("stream positions %d, %d; want 4, 5", got[0].Seq, got[1].Seq)
		}

		// Pruned events are left out silently.
		if err := s.Prune(ctx, "!r:x", 2); err != nil { // keeps $a4 and @other's $z
			t.Fatal(err)
		}
		got, skipped, err = s.StreamRange(ctx, "@a:x", 0, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$b1", "$b2", "$a4", "$c1"}; !slices.Equal(ids(got), want) || len(skipped) != 0 {
			t.Errorf("after prune: %v, skipped %v; want %v and none", ids(got), skipped, want)
		}

		got, skipped, err = s.StreamRange(ctx, "@nobody:x", 0, 100, 5)
		if err != nil || len(got) != 0 || skipped == nil || len(skipped) != 0 {
			t.Errorf("empty stream: %v, %v, %v", got, skipped, err)
		}
	})
}

func TestCursors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		if _, ok, err := s.Cursor(ctx, "@a:x", "laptop"); ok || err != nil {
			t.Fatalf("Cursor before any: ok=%v err=%v", ok, err)
		}
		if _, ok, err := s.MaxCursor(ctx, "@a:x"); ok || err != nil {
			t.Fatalf("MaxCursor before any: ok=%v err=%v", ok, err)
		}
		for _, put := range []struct {
			client string
			seq    int64
		}{{"laptop", 5}, {"laptop", 3}, {"phone", 2}, {"phone", 9}, {"laptop", 7}, {"phone", 8}} {
			if err := s.PutCursor(ctx, "@a:x", put.client, put.seq); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutCursor(ctx, "@b:x", "laptop", 100); err != nil {
			t.Fatal(err)
		}
		for client, want := range map[string]int64{"laptop": 7, "phone": 9} {
			seq, ok, err := s.Cursor(ctx, "@a:x", client)
			if err != nil || !ok || seq != want {
				t.Errorf("Cursor(%s) = %d, %v, %v; want %d", client, seq, ok, err, want)
			}
		}
		if seq, ok, err := s.MaxCursor(ctx, "@a:x"); err != nil || !ok || seq != 9 {
			t.Errorf("MaxCursor = %d, %v, %v; want 9", seq, ok, err)
		}
	})
}

func TestRoomHistory(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		var events []store.StoredEvent
		for i := 1; i <= 6; i++ {
			events = append(events, ev("!r:x", id.EventID(fmt.Sprintf("$%d", i)), int64(i*100)))
		}
		// Interleaved events of another room must never show up.
		saveSync(t, s, "@a:x", "t1", events[0], events[1], ev("!q:x", "$q1", 250), events[2])
		saveSync(t, s, "@a:x", "t2", events[3:]...)
		seq := map[id.EventID]int64{}
		for _, e := range events {
			found, err := s.FindEvent(ctx, "!r:x", e.EventID)
			if err != nil {
				t.Fatal(err)
			}
			seq[e.EventID] = found.Seq
		}

		for _, tc := range []struct {
			name string
			q    store.HistoryQuery
			want []string
		}{
			{"all", store.HistoryQuery{}, []string{"$1", "$2", "$3", "$4", "$5", "$6"}},
			{"oldest 2", store.HistoryQuery{Limit: 2}, []string{"$1", "$2"}},
			{"newest 2", store.HistoryQuery{Limit: 2, Newest: true}, []string{"$5", "$6"}},
			{"newest unlimited", store.HistoryQuery{Newest: true}, []string{"$1", "$2", "$3", "$4", "$5", "$6"}},
			{"after seq", store.HistoryQuery{AfterSeq: seq["$2"], Limit: 2}, []string{"$3", "$4"}},
			{"after seq newest", store.HistoryQuery{AfterSeq: seq["$2"], Limit: 2, Newest: true}, []string{"$5", "$6"}},
			{"before seq", store.HistoryQuery{BeforeSeq: seq["$5"], Limit: 2, Newest: true}, []string{"$3", "$4"}},
			{"before seq oldest", store.HistoryQuery{BeforeSeq: seq["$5"], Limit: 2}, []string{"$1", "$2"}},
			{"between seqs", store.HistoryQuery{AfterSeq: seq["$1"], BeforeSeq: seq["$4"]}, []string{"$2", "$3"}},
			{"after ts", store.HistoryQuery{AfterTS: 300}, []string{"$4", "$5", "$6"}},
			{"before ts", store.HistoryQuery{BeforeTS: 300, Limit: 1, Newest: true}, []string{"$2"}},
			{"between ts", store.HistoryQuery{AfterTS: 100, BeforeTS: 600, Limit: 10, Newest: true}, []string{"$2", "$3", "$4", "$5"}},
			{"all bounds", store.HistoryQuery{AfterSeq: seq["$1"], BeforeSeq: seq["$6"], AfterTS: 200, BeforeTS: 500}, []string{"$3", "$4"}},
			{"empty range", store.HistoryQuery{AfterTS: 600}, nil},
			{"other types only", store.HistoryQuery{Types: []string{"m.room.member"}}, nil},
			{"types", store.HistoryQuery{Types: []string{"m.reaction", "m.room.message"}, Limit: 2, Newest: true}, []string{"$5", "$6"}},
		} {
			q := tc.q
			q.RoomID = "!r:x"
			got, err := s.RoomHistory(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, ids(got), tc.want)
			}
			for _, e := range got {
				if e.Seq != seq[e.EventID] || string(e.JSON) != string(ev("!r:x", e.EventID, e.TS).JSON) {
					t.Errorf("%s: event %+v", tc.name, e)
				}
			}
		}
	})
}

func TestFindEventAndLastEventBefore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		saveSync(t, s, "@a:x", "t1",
			typed(ev("!r:x", "$m1", 100), "m.room.member"),
			ev("!r:x", "$msg1", 200),
			typed(ev("!r:x", "$topic", 300), "m.room.topic"),
			typed(ev("!r:x", "$m2", 300), "m.room.member"),
			ev("!r:x", "$msg2", 400),
			typed(ev("!q:x", "$qm", 150), "m.room.member"))

		got, err := s.FindEvent(ctx, "!r:x", "$topic")
		if err != nil {
			t.Fatal(err)
		}
		want := typed(ev("!r:x", "$topic", 300), "m.room.topic")
		if got.RoomID != want.RoomID || got.EventID != want.EventID || got.Sender != want.Sender ||
			got.Type != want.Type || got.TS != want.TS || string(got.JSON) != string(want.JSON) || got.Seq == 0 {
			t.Errorf("FindEvent = %+v, want %+v with a room position", got, want)
		}
		if _, err := s.FindEvent(ctx, "!q:x", "$topic"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FindEvent in the wrong room: err = %v, want ErrNotFound", err)
		}

		for _, tc := range []struct {
			ts    int64
			types []string
			want  id.EventID // "" for ErrNotFound
		}{
			{400, []string{"m.room.member"}, "$m2"},
			{299, []string{"m.room.member"}, "$m1"},
			{99, []string{"m.room.member"}, ""},
			{300, []string{"m.room.member", "m.room.topic"}, "$m2"}, // same TS: the later one stored
			{300, []string{"m.room.message"}, "$msg1"},
			{1000, []string{"m.room.message"}, "$msg2"},
			{1000, []string{"m.room.name"}, ""},
			{350, nil, "$m2"},
		} {
			got, err := s.LastEventBefore(ctx, "!r:x", "@a:x", tc.ts, tc.types)
			if tc.want == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("LastEventBefore(%d, %v): %v, %v; want ErrNotFound", tc.ts, tc.types, got, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("LastEventBefore(%d, %v): %v", tc.ts, tc.types, err)
			} else if got.EventID != tc.want {
				t.Errorf("LastEventBefore(%d, %v) = %s, want %s", tc.ts, tc.types, got.EventID, tc.want)
			}
		}
		// Only what the viewer received counts.
		saveSync(t, s, "@b:x", "b1", ev("!r:x", "$later", 500))
		if got, err := s.LastEventBefore(ctx, "!r:x", "@a:x", 1000, nil); err != nil || got.EventID != "$msg2" {
			t.Errorf("LastEventBefore for @a:x = %+v, %v; want $msg2, not @b:x's $later", got, err)
		}
		if got, err := s.LastEventBefore(ctx, "!r:x", "", 1000, nil); err != nil || got.EventID != "$later" {
			t.Errorf("LastEventBefore for anyone = %+v, %v; want $later", got, err)
		}
		if _, err := s.LastEventBefore(ctx, "!r:x", "@c:x", 1000, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LastEventBefore for an account that saw nothing: %v, want ErrNotFound", err)
		}
	})
}

func TestTargets(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		saveSync(t, s, "@a:x", "t1",
			ev("!r1:x", "$1", 100), ev("!r2:x", "$2", 200), ev("!r1:x", "$3", 500),
			ev("!r3:x", "$4", 300), ev("!r4:x", "$5", 900), ev("!r2:x", "$6", 300),
			typed(ev("!r3:x", "$7", 950), "m.reaction"))
		// Rooms only another account received are not this account's targets.
		saveSync(t, s, "@b:x", "t1", ev("!other:x", "$o", 250))

		msgs := []string{"m.room.message"}
		for _, tc := range []struct {
			from, to int64
			limit    int
			types    []string
			want     []store.Target
		}{
			{0, 1000, 0, msgs, []store.Target{{"!r2:x", 300}, {"!r3:x", 300}, {"!r1:x", 500}, {"!r4:x", 900}}},
			{0, 1000, 2, msgs, []store.Target{{"!r2:x", 300}, {"!r3:x", 300}}},
			// r1's latest message (500) is after the window: not listed.
			{100, 300, 0, msgs, []store.Target{{"!r2:x", 300}, {"!r3:x", 300}}},
			{201, 499, 0, msgs, []store.Target{{"!r2:x", 300}, {"!r3:x", 300}}},
			{901, 2000, 0, msgs, nil},
			// Any type: r3's reaction is its latest event.
			{0, 1000, 0, nil, []store.Target{{"!r2:x", 300}, {"!r1:x", 500}, {"!r4:x", 900}, {"!r3:x", 950}}},
			{901, 2000, 0, nil, []store.Target{{"!r3:x", 950}}},
		} {
			got, err := s.Targets(ctx, "@a:x", tc.from, tc.to, tc.limit, tc.types)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Targets(%d, %d, %d, %v) = %v, want %v", tc.from, tc.to, tc.limit, tc.types, got, tc.want)
			}
		}
	})
}

func TestPrune(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		saveSync(t, s, "@a:x", "t1", ev("!r:x", "$1", 1), ev("!r:x", "$2", 2), ev("!q:x", "$q1", 3), ev("!r:x", "$3", 4))
		saveSync(t, s, "@b:x", "t1", ev("!r:x", "$2", 2), ev("!r:x", "$4", 5), ev("!q:x", "$q2", 6))

		if err := s.Prune(ctx, "!r:x", 10); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM events`); n != 6 {
			t.Errorf("pruning a room below its limit left %d events, want 6", n)
		}

		if err := s.Prune(ctx, "!r:x", 2); err != nil {
			t.Fatal(err)
		}
		hist, err := s.RoomHistory(ctx, store.HistoryQuery{RoomID: "!r:x"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$3", "$4"}; !slices.Equal(ids(hist), want) {
			t.Errorf("after Prune(2): %v, want %v", ids(hist), want)
		}
		// Stream rows of the pruned events are gone for both accounts;
		// other rooms are untouched.
		for user, want := range map[string][]string{"@a:x": {"$q1", "$3"}, "@b:x": {"$4", "$q2"}} {
			var got []string
			rows, err := s.DB().Query(`SELECT event_id FROM account_events WHERE user_id = $1 ORDER BY seq`, user)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				got = append(got, id)
			}
			rows.Close()
			if !slices.Equal(got, want) {
				t.Errorf("stream rows of %s after prune: %v, want %v", user, got, want)
			}
		}
		if err := s.Prune(ctx, "!r:x", -1); err == nil {
			t.Error("Prune with negative keep succeeded")
		}
		if err := s.Prune(ctx, "!empty:x", 0); err != nil {
			t.Errorf("pruning an empty room: %v", err)
		}
	})
}

func TestOutbox(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		when := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		now, set := fixedClock(when)
		store.SetNow(s, now)

		if out, err := s.Outbox(ctx, "@a:x"); err != nil || len(out) != 0 {
			t.Fatalf("empty outbox: %v, %v", out, err)
		}
		// Same millisecond: insertion order decides.
		e1 := &store.OutboxEntry{UserID: "@a:x", TxnID: "zz", RoomID: "!r:x", Type: "m.room.message", Content: []byte(`{"body":"one"}`)}
		e2 := &store.OutboxEntry{UserID: "@a:x", TxnID: "aa", RoomID: "!q:x", Type: "m.reaction", Content: []byte(`{"body":"two"}`)}
		for _, e := range []*store.OutboxEntry{e1, e2} {
			if err := s.PutOutbox(ctx, e); err != nil {
				t.Fatal(err)
			}
			if !e.Created.Equal(when) {
				t.Errorf("Created set to %v, want %v", e.Created, when)
			}
		}
		// An explicit older Created sorts first.
		e0 := &store.OutboxEntry{UserID: "@a:x", TxnID: "mm", RoomID: "!r:x", Type: "m.room.message", Content: []byte(`{}`), Created: when.Add(-time.Minute)}
		if err := s.PutOutbox(ctx, e0); err != nil {
			t.Fatal(err)
		}
		other := &store.OutboxEntry{UserID: "@b:x", TxnID: "zz", RoomID: "!r:x", Type: "m.room.message", Content: []byte(`{}`)}
		if err := s.PutOutbox(ctx, other); err != nil {
			t.Fatal(err)
		}
		// Putting a transaction again keeps its place and creation time.
		set(when.Add(time.Hour))
		e1again := &store.OutboxEntry{UserID: "@a:x", TxnID: "zz", RoomID: "!r:x", Type: "m.room.message", Content: []byte(`{"body":"one, edited"}`)}
		if err := s.PutOutbox(ctx, e1again); err != nil {
			t.Fatal(err)
		}
		if !e1again.Created.Equal(when) {
			t.Errorf("re-put Created = %v, want the original %v", e1again.Created, when)
		}

		out, err := s.Outbox(ctx, "@a:x")
		if err != nil {
			t.Fatal(err)
		}
		want := []store.OutboxEntry{*e0, *e1again, *e2}
		if !reflect.DeepEqual(out, want) {
			t.Errorf("Outbox:\n got %+v\nwant %+v", out, want)
		}

		if err := s.DeleteOutbox(ctx, "@a:x", "zz"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteOutbox(ctx, "@a:x", "zz"); err != nil {
			t.Errorf("deleting an absent entry: %v", err)
		}
		out, err = s.Outbox(ctx, "@a:x")
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 2 || out[0].TxnID != "mm" || out[1].TxnID != "aa" {
			t.Errorf("after delete: %+v", out)
		}
		if out, _ := s.Outbox(ctx, "@b:x"); len(out) != 1 {
			t.Errorf("other account's outbox: %+v", out)
		}
		if err := s.PutOutbox(ctx, &store.OutboxEntry{UserID: "@a:x"}); err == nil {
			t.Error("PutOutbox without a transaction ID succeeded")
		}

		// A burst is saved in one call, in the order given (all in one
		// millisecond), and all or nothing.
		var burst []*store.OutboxEntry
		for _, txn := range []string{"b3", "b1", "b2"} {
			burst = append(burst, &store.OutboxEntry{UserID: "@c:x", TxnID: txn, RoomID: "!r:x", Type: "m.room.message", Content: []byte(`{}`)})
		}
		if err := s.PutOutbox(ctx, burst...); err != nil {
			t.Fatal(err)
		}
		out, err = s.Outbox(ctx, "@c:x")
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, e := range out {
			order = append(order, e.TxnID)
		}
		if !reflect.DeepEqual(order, []string{"b3", "b1", "b2"}) {
			t.Errorf("burst saved in the order %v, want b3 b1 b2", order)
		}
		bad := []*store.OutboxEntry{{UserID: "@d:x", TxnID: "ok", Content: []byte(`{}`)}, {UserID: "@d:x"}}
		if err := s.PutOutbox(ctx, bad...); err == nil {
			t.Error("a burst with an entry without transaction ID was saved")
		}
		if out, _ := s.Outbox(ctx, "@d:x"); len(out) != 0 {
			t.Errorf("a refused burst left %+v", out)
		}
	})
}

// A direct message waits under the person it is for until its room
// exists; resolving gives every such message of the account that room and
// keeps the order.
func TestOutboxPeer(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		rows := []*store.OutboxEntry{
			{UserID: "@a:x", TxnID: "1", Peer: "@bob:x", Type: "m.room.message", Content: []byte(`{"body":"one"}`)},
			{UserID: "@a:x", TxnID: "2", RoomID: "!r:x", Type: "m.room.message", Content: []byte(`{"body":"two"}`)},
			{UserID: "@a:x", TxnID: "3", Peer: "@bob:x", Type: "m.room.message", Content: []byte(`{"body":"three"}`)},
			{UserID: "@a:x", TxnID: "4", Peer: "@carol:x", Type: "m.room.message", Content: []byte(`{"body":"four"}`)},
			{UserID: "@b:x", TxnID: "5", Peer: "@bob:x", Type: "m.room.message", Content: []byte(`{"body":"five"}`)},
		}
		if err := s.PutOutbox(ctx, rows...); err != nil {
			t.Fatal(err)
		}
		if err := s.ResolveOutboxPeer(ctx, "@a:x", "@bob:x", "!dm:x"); err != nil {
			t.Fatal(err)
		}
		if err := s.ResolveOutboxPeer(ctx, "@a:x", "", "!dm:x"); err == nil {
			t.Error("resolving an empty peer succeeded")
		}
		out, err := s.Outbox(ctx, "@a:x")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range out {
			got = append(got, e.TxnID+" "+e.RoomID.String()+" "+e.Peer.String())
		}
		want := []string{"1 !dm:x ", "2 !r:x ", "3 !dm:x ", "4  @carol:x"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after resolving: %q, want %q", got, want)
		}
		if out, _ := s.Outbox(ctx, "@b:x"); len(out) != 1 || out[0].Peer != "@bob:x" || out[0].RoomID != "" {
			t.Errorf("another account's message changed: %+v", out)
		}
		// Putting a resolved row again clears its peer.
		if err := s.PutOutbox(ctx, &store.OutboxEntry{UserID: "@b:x", TxnID: "5", RoomID: "!dm2:x", Type: "m.room.message", Content: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if out, _ := s.Outbox(ctx, "@b:x"); len(out) != 1 || out[0].Peer != "" || out[0].RoomID != "!dm2:x" {
			t.Errorf("re-put row: %+v", out)
		}
	})
}

// The room-creation budget is kept per account, and only moves later.
func TestRoomCreateFullAt(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		if at, err := s.RoomCreateFullAt(ctx, "@nobody:x"); err != nil || !at.IsZero() {
			t.Fatalf("unknown account: %v, %v", at, err)
		}
		if err := s.PutAccount(ctx, &store.Account{UserID: "@a:x", AccessToken: "t"}); err != nil {
			t.Fatal(err)
		}
		if at, err := s.RoomCreateFullAt(ctx, "@a:x"); err != nil || !at.IsZero() {
			t.Fatalf("new account: %v, %v", at, err)
		}
		when := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
		if err := s.PutRoomCreateFullAt(ctx, "@a:x", when); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRoomCreateFullAt(ctx, "@a:x", when.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if at, err := s.RoomCreateFullAt(ctx, "@a:x"); err != nil || !at.Equal(when) {
			t.Errorf("RoomCreateFullAt = %v, %v; want %v", at, err, when)
		}
		// Writing the account again keeps it.
		if err := s.PutAccount(ctx, &store.Account{UserID: "@a:x", AccessToken: "t2"}); err != nil {
			t.Fatal(err)
		}
		if at, _ := s.RoomCreateFullAt(ctx, "@a:x"); !at.Equal(when) {
			t.Errorf("after PutAccount: %v, want %v", at, when)
		}
	})
}

func TestAlwaysOn(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		on, off := true, false
		for _, a := range []*store.Account{
			{UserID: "@default:x", AccessToken: "t"},
			{UserID: "@on:x", AccessToken: "t", AlwaysOn: &on},
			{UserID: "@off:x", AccessToken: "t", AlwaysOn: &off},
			{UserID: "@on-logged-out:x", AlwaysOn: &on},
			{UserID: "@default-logged-out:x"},
		} {
			if err := s.PutAccount(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		for user, want := range map[id.UserID]*bool{"@default:x": nil, "@on:x": &on, "@off:x": &off} {
			a, err := s.Account(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if (a.AlwaysOn == nil) != (want == nil) || (want != nil && *a.AlwaysOn != *want) {
				t.Errorf("%s: AlwaysOn %v, want %v", user, a.AlwaysOn, want)
			}
		}

		for def, want := range map[bool][]id.UserID{
			true:  {"@default:x", "@on:x"},
			false: {"@on:x"},
		} {
			got, err := s.AlwaysOnAccounts(ctx, def)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("AlwaysOnAccounts(%v) = %v, want %v", def, got, want)
			}
		}

		// PutAccount writes AlwaysOn, nil included.
		if err := s.PutAccount(ctx, &store.Account{UserID: "@on:x", AccessToken: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutAccount(ctx, &store.Account{UserID: "@default:x", AccessToken: "t", AlwaysOn: &off}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.AlwaysOnAccounts(ctx, true); err != nil || !slices.Equal(got, []id.UserID{"@on:x"}) {
			t.Errorf("after update: AlwaysOnAccounts(true) = %v, %v; want [@on:x]", got, err)
		}
		if got, err := s.AlwaysOnAccounts(ctx, false); err != nil || len(got) != 0 {
			t.Errorf("after update: AlwaysOnAccounts(false) = %v, %v; want none", got, err)
		}
	})
}

func TestDeleteAccountRemovesEventStoreRows(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		for _, u := range []id.UserID{"@a:x", "@b:x"} {
			if err := s.PutAccount(ctx, &store.Account{UserID: u, AccessToken: "t"}); err != nil {
				t.Fatal(err)
			}
			saveSync(t, s, u, "tok", ev("!r:x", "$1", 1))
			if err := s.PutCursor(ctx, u, "c", 1); err != nil {
				t.Fatal(err)
			}
			if err := s.PutOutbox(ctx, &store.OutboxEntry{UserID: u, TxnID: "t1", Content: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteAccount(ctx, "@a:x"); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"accounts", "sync_state", "account_events", "client_cursors", "outbox"} {
			for user, want := range map[string]int{"@a:x": 0, "@b:x": 1} {
				if n := countRows(t, s, `SELECT COUNT(*) FROM `+table+` WHERE user_id = $1`, user); n != want {
					t.Errorf("%s: %d rows of %s, want %d", table, n, user, want)
				}
			}
		}
		if _, err := s.FindEvent(ctx, "!r:x", "$1"); err != nil {
			t.Errorf("shared event gone with one account: %v", err)
		}
	})
}

// Several accounts saving the same events at once must end with one row per
// event and each its own gapless stream.
func TestConcurrentSaveSync(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		const accounts, batches, perBatch = 4, 15, 4
		var all []store.StoredEvent
		for i := range batches * perBatch {
			all = append(all, ev(id.RoomID(fmt.Sprintf("!r%d:x", i%3)), id.EventID(fmt.Sprintf("$%d", i)), int64(i)))
		}

		var wg sync.WaitGroup
		errs := make(chan error, accounts)
		for a := range accounts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := id.UserID(fmt.Sprintf("@u%d:x", a))
				var got []int64
				for b := range batches {
					// Overlapping batches: each repeats the last event of
					// the previous one, which must come back as 0.
					// A private event at the end races the other
					// accounts' new events for room positions.
					lo := max(b*perBatch-1, 0)
					batch := append(slices.Clone(all[lo:(b+1)*perBatch]), ev(id.RoomID(fmt.Sprintf("!own%d:x", a)), id.EventID(fmt.Sprintf("$own%d", b)), int64(b)))
					pos, err := s.SaveSync(ctx, &store.SyncBatch{UserID: user, NextBatch: fmt.Sprint(b), Events: batch})
					if err != nil {
						errs <- err
						return
					}
					if b > 0 {
						if pos[0] != 0 {
							errs <- fmt.Errorf("%s: repeated event got position %d", user, pos[0])
							return
						}
						pos = pos[1:]
					}
					got = append(got, pos...)
				}
				for i, p := range got {
					if p != int64(i+1) {
						errs <- fmt.Errorf("%s: positions %v not 1..%d", user, got, len(got))
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		total := len(all) + accounts*batches
		if n := countRows(t, s, `SELECT COUNT(*) FROM events`); n != total {
			t.Errorf("%d event rows, want %d", n, total)
		}
		// Room positions are 1..total: none lost, none given twice.
		if n := countRows(t, s, `SELECT COUNT(DISTINCT seq) FROM events WHERE seq BETWEEN 1 AND $1`, total); n != total {
			t.Errorf("%d distinct room positions in 1..%d, want %d", n, total, total)
		}
		for a := range accounts {
			user := id.UserID(fmt.Sprintf("@u%d:x", a))
			var want []string
			for b := range batches {
				want = append(want, ids(all[b*perBatch:(b+1)*perBatch])...)
				want = append(want, fmt.Sprintf("$own%d", b))
			}
			wantSyncState(t, s, user, fmt.Sprint(batches-1), int64(len(want)))
			got, _, err := s.StreamRange(ctx, user, 0, int64(len(want)), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), want) {
				t.Errorf("%s: stream %v, want %v", user, ids(got), want)
			}
		}
		// Room positions follow the order the events were received in.
		for r := range 3 {
			room := id.RoomID(fmt.Sprintf("!r%d:x", r))
			hist, err := s.RoomHistory(ctx, store.HistoryQuery{RoomID: room})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, e := range all {
				if e.RoomID == room {
					want = append(want, e.EventID.String())
				}
			}
			if !slices.Equal(ids(hist), want) {
				t.Errorf("%s history %v, want %v", room, ids(hist), want)
			}
		}
	})
}

// A database at version 3 (before the event store) keeps its accounts,
// which follow the global always-on setting, and gains the event store.
func TestUpgradeFromVersion3(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.Config(t, driver)
		old := openWith(t, cfg, firstMigrations(t, 3))
		if _, err := old.DB().Exec(`INSERT INTO accounts (user_id, homeserver, device_id, access_token, password_hash, created_at, updated_at)
			VALUES ('@old:x', 'https://hs.x', 'DEV', 'tok', 'hash', 1700000000000, 1700000001000)`); err != nil {
			t.Fatal(err)
		}
		old.Close()

		s := mustOpen(t, cfg)
		defer s.Close()
		if v, latest := schemaVersion(t, s.DB()), len(realMigrations(t)); v != latest {
			t.Errorf("version %d after Open, want %d", v, latest)
		}
		a, err := s.Account(ctx, "@old:x")
		if err != nil {
			t.Fatal(err)
		}
		if a.AlwaysOn != nil || a.AccessToken != "tok" {
			t.Errorf("upgraded account %+v, want AlwaysOn nil and token kept", a)
		}
		if got, err := s.AlwaysOnAccounts(ctx, true); err != nil || !slices.Equal(got, []id.UserID{"@old:x"}) {
			t.Errorf("AlwaysOnAccounts(true) = %v, %v", got, err)
		}
		if pos := saveSync(t, s, "@old:x", "t1", ev("!r:x", "$1", 1)); !slices.Equal(pos, []int64{1}) {
			t.Errorf("positions %v, want [1]", pos)
		}
		if err := s.PutOutbox(ctx, &store.OutboxEntry{UserID: "@old:x", TxnID: "t", Content: []byte(`{}`)}); err != nil {
			t.Error(err)
		}
	})
}

// The event store on SQLite's single-connection in-memory database must not
// deadlock on itself.
func TestEventStoreSQLiteMemory(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{Driver: "sqlite", Path: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	saveSync(t, s, "@a:x", "t1", ev("!r:x", "$1", 1), ev("!r:x", "$2", 2))
	if err := s.Prune(ctx, "!r:x", 1); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.StreamRange(ctx, "@a:x", 0, 10, 0)
	if err != nil || !slices.Equal(ids(got), []string{"$2"}) {
		t.Errorf("StreamRange = %v, %v", ids(got), err)
	}
	if err := s.DeleteAccount(ctx, "@a:x"); err != nil {
		t.Fatal(err)
	}
}

func TestPutCursors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		err := s.PutCursors(ctx, []store.CursorUpdate{
			{UserID: "@a:x", Client: "laptop", Seq: 5},
			{UserID: "@a:x", Client: "laptop", Seq: 3}, // backward: ignored
			{UserID: "@a:x", Client: "phone", Seq: 9},
			{UserID: "@a:x", Client: "phone", Seq: 7, Force: true}, // a failed write undone
		})
		if err != nil {
			t.Fatal(err)
		}
		for client, want := range map[string]int64{"laptop": 5, "phone": 7} {
			if got, ok, err := s.Cursor(ctx, "@a:x", client); err != nil || !ok || got != want {
				t.Errorf("cursor of %s = %d, %v, %v; want %d", client, got, ok, err, want)
			}
		}
	})
}

// The transaction ID of an event belongs to the sender's account: the
// homeserver tells it only to the sending device, so it is found, and
// streamed back, whichever account stored the shared event first.
func TestFindByTxn(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		mine := ev("!r:x", "$mine", 100)
		mine.Sender = "@a:x"
		other := ev("!r:x", "$other", 200)
		other.Sender = "@b:x"
		// @b:x's account stores both first, with its own transaction ID;
		// then @a:x's, with @a:x's.
		otherOwn := other
		otherOwn.TxnID = "mxircd.1.3~laptop"
		saveSync(t, s, "@b:x", "b1", mine, otherOwn)
		mineOwn := mine
		mineOwn.TxnID = "mxircd.1.2~lap_top"
		saveSync(t, s, "@a:x", "t1", mineOwn, other)
		if e, err := s.FindByTxn(ctx, "!r:x", "@a:x", "mxircd.1.2~lap_top"); err != nil || e.EventID != "$mine" || e.TxnID != "mxircd.1.2~lap_top" {
			t.Fatalf("FindByTxn = %+v, %v", e, err)
		}
		for _, tc := range []struct {
			room   id.RoomID
			sender id.UserID
			txn    string
		}{
			{"!r:x", "@a:x", "mxircd.1.2~lapxtop"}, // no pattern matching
			{"!r:x", "@a:x", "mxircd.1.3~laptop"},  // someone else's
			{"!r:x", "@b:x", "mxircd.1.2~lap_top"}, // the same event, another account
			{"!q:x", "@a:x", "mxircd.1.2~lap_top"}, // another room
			{"!r:x", "@a:x", "mxircd.1.2"},         // a prefix
			{"!r:x", "@a:x", ""},                   // none
		} {
			if _, err := s.FindByTxn(ctx, tc.room, tc.sender, tc.txn); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("FindByTxn(%q, %q, %q) = %v, want not found", tc.room, tc.sender, tc.txn, err)
			}
		}
		for user, want := range map[id.UserID][]string{
			"@a:x": {"mxircd.1.2~lap_top", ""},
			"@b:x": {"", "mxircd.1.3~laptop"},
		} {
			got, _, err := s.StreamRange(ctx, user, 0, 10, 0)
			if err != nil || len(got) != 2 || got[0].TxnID != want[0] || got[1].TxnID != want[1] {
				t.Errorf("StreamRange(%s) = %+v, %v; want transaction IDs %q", user, got, err, want)
			}
		}
	})
}

func TestRecentStreamIDs(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		old := ev("!r:x", "$history", 50)
		old.HistoryOnly = true
		saveSync(t, s, "@a:x", "t1", old, ev("!r:x", "$1", 100), ev("!q:x", "$q", 150), ev("!r:x", "$2", 200), ev("!r:x", "$3", 300))
		saveSync(t, s, "@b:x", "t1", ev("!r:x", "$b", 400))
		ids, err := s.RecentStreamIDs(ctx, "@a:x", "!r:x", 2)
		if err != nil || !slices.Equal(ids, []id.EventID{"$3", "$2"}) {
			t.Fatalf("RecentStreamIDs = %v, %v; want [$3 $2]", ids, err)
		}
		ids, err = s.RecentStreamIDs(ctx, "@a:x", "!r:x", 10)
		if err != nil || !slices.Equal(ids, []id.EventID{"$3", "$2", "$1", "$history"}) {
			t.Fatalf("RecentStreamIDs = %v, %v; want [$3 $2 $1 $history]: what it was shown as history too, not another account's", ids, err)
		}
	})
}

func TestRoomsOver(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		saveSync(t, s, "@a:x", "t1", ev("!big:x", "$1", 1), ev("!big:x", "$2", 2), ev("!big:x", "$3", 3), ev("!small:x", "$4", 4))
		rooms, err := s.RoomsOver(ctx, 2)
		if err != nil || len(rooms) != 1 || rooms[0] != "!big:x" {
			t.Fatalf("RoomsOver(2) = %v, %v", rooms, err)
		}
		if err := s.Prune(ctx, "!big:x", 2); err != nil {
			t.Fatal(err)
		}
		if rooms, err := s.RoomsOver(ctx, 2); err != nil || len(rooms) != 0 {
			t.Fatalf("after Prune, RoomsOver(2) = %v, %v", rooms, err)
		}
	})
}
