package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
	"maunium.net/go/mautrix/id"
)

// The store keeps each account's rooms with its sync token and each
// room's state once: the newest stored event of each (type, state key),
// where an older event stored again later (by an account that lags) does
// not become current again.
func TestRoomStateStore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		topic := func(eventID id.EventID, text string) store.StateEvent {
			return store.StateEvent{RoomID: "!a", EventID: eventID, Type: "m.room.topic", StateKey: "",
				JSON: fmt.Appendf(nil, `{"event_id":%q,"type":"m.room.topic","state_key":"","content":{"topic":%q}}`, eventID, text)}
		}
		member := store.StateEvent{RoomID: "!a", EventID: "$m", Type: "m.room.member", StateKey: "@b:x",
			JSON: []byte(`{"event_id":"$m","type":"m.room.member","state_key":"@b:x","content":{"membership":"join"}}`)}

		if _, ok, err := s.AccountRooms(ctx, "@u:x"); err != nil || ok {
			t.Fatalf("rooms of an account never saved: ok %v, err %v", ok, err)
		}
		// An incremental save does not make the room list complete.
		if _, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@u:x", NextBatch: "s1", Joined: []id.RoomID{"!a"}}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.AccountRooms(ctx, "@u:x"); ok {
			t.Fatal("an incremental save made the room list complete")
		}
		if _, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@u:x", NextBatch: "s2", AllRooms: true,
			Joined: []id.RoomID{"!a", "!b"}, State: []store.StateEvent{topic("$t1", "one"), member}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@v:x", NextBatch: "s1", State: []store.StateEvent{topic("$t2", "two")}}); err != nil {
			t.Fatal(err)
		}
		// @u lags: it stores the first topic again, and leaves !b.
		if _, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@u:x", NextBatch: "s3", Left: []id.RoomID{"!b"}, State: []store.StateEvent{topic("$t1", "one")}}); err != nil {
			t.Fatal(err)
		}
		rooms, ok, err := s.AccountRooms(ctx, "@u:x")
		if err != nil || !ok || len(rooms) != 1 || rooms[0].RoomID != "!a" {
			t.Fatalf("rooms of @u: %v (complete %v, err %v), want [!a]", rooms, ok, err)
		}
		if sum := rooms[0].Summary; sum.Joined != nil || sum.Invited != nil || sum.Heroes != nil {
			t.Errorf("summary of a room no sync summarised: %+v, want none", sum)
		}
		state, err := s.RoomState(ctx, "!a")
		if err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, raw := range state {
			got = append(got, string(raw))
		}
		want := []string{string(member.JSON), string(topic("$t2", "two").JSON)}
		if !slices.Equal(got, want) {
			t.Errorf("state of !a:\n got %q\nwant %q", got, want)
		}

		// Forgetting the token forgets the room list; deleting the account too.
		if err := s.ClearSyncState(ctx, "@u:x"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.AccountRooms(ctx, "@u:x"); ok {
			t.Error("the room list survived ClearSyncState")
		}
	})
}

// Each account's rooms keep the summary its syncs last sent, field by
// field: a field a later summary leaves out stays as it was.
func TestRoomSummaryStore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		n := func(i int) *int { return &i }
		if _, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@u:x", NextBatch: "s1", AllRooms: true, Joined: []id.RoomID{"!a", "!b"},
			Summaries: map[id.RoomID]store.RoomSummary{"!a": {Joined: n(2), Invited: n(1), Heroes: []id.UserID{"@p:x", "@q:x"}}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@u:x", NextBatch: "s2",
			Summaries: map[id.RoomID]store.RoomSummary{"!a": {Joined: n(3)}, "!b": {Joined: n(5000), Invited: n(0)}}}); err != nil {
			t.Fatal(err)
		}
		// Another account's summary of the same room is its own.
		if _, err := s.SaveSync(ctx, &store.SyncBatch{UserID: "@v:x", NextBatch: "s1", AllRooms: true, Joined: []id.RoomID{"!a"},
			Summaries: map[id.RoomID]store.RoomSummary{"!a": {Joined: n(7), Invited: n(0), Heroes: []id.UserID{"@u:x"}}}}); err != nil {
			t.Fatal(err)
		}
		rooms, ok, err := s.AccountRooms(ctx, "@u:x")
		if err != nil || !ok || len(rooms) != 2 {
			t.Fatalf("rooms of @u: %v (complete %v, err %v)", rooms, ok, err)
		}
		a, b := rooms[0].Summary, rooms[1].Summary
		if a.Joined == nil || *a.Joined != 3 || a.Invited == nil || *a.Invited != 1 || !slices.Equal(a.Heroes, []id.UserID{"@p:x", "@q:x"}) {
			t.Errorf("summary of !a: %v %v %v, want 3 joined, 1 invited, heroes @p and @q", a.Joined, a.Invited, a.Heroes)
		}
		if b.Joined == nil || *b.Joined != 5000 || b.Invited == nil || *b.Invited != 0 || b.Heroes != nil {
			t.Errorf("summary of !b: %v %v %v, want 5000 joined, 0 invited, no heroes", b.Joined, b.Invited, b.Heroes)
		}
	})
}
