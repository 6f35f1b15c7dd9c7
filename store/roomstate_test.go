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
		if err != nil || !ok || !slices.Equal(rooms, []id.RoomID{"!a"}) {
			t.Fatalf("rooms of @u: %v (complete %v, err %v), want [!a]", rooms, ok, err)
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
