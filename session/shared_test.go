package session

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func memberEvent(t testing.TB, eventID, user, membership, name string) *event.Event {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"membership": membership, "displayname": name})
	key := user
	ev := &event.Event{ID: id.EventID(eventID), Type: event.StateMember, StateKey: &key, Sender: id.UserID(user), Timestamp: 1}
	if err := json.Unmarshal(raw, &ev.Content); err != nil {
		t.Fatal(err)
	}
	return ev
}

// Two sessions that see a room in the same states share them; each sees
// exactly the states it applied, never another's changes in place.
func TestRoomStateShared(t *testing.T) {
	reg := newStateRegistry()
	build := func() *room {
		r := &room{id: "!r:x", roomState: newRoomState(), reg: reg, recent: reg.recentOf("!r:x")}
		r.applyState(memberEvent(t, "$a", "@a:x", "join", "A"))
		r.applyState(memberEvent(t, "$b", "@b:x", "join", "B"))
		return r
	}
	r1 := build()
	r1.shared, r1.roomState = true, reg.share(r1.id, r1.roomState)
	r2 := build()
	if r2.roomState == r1.roomState {
		t.Fatal("a privately built state was shared before it was offered")
	}
	r2.shared, r2.roomState = true, reg.share(r2.id, r2.roomState)
	if r2.roomState != r1.roomState {
		t.Fatal("two sessions with equal state for a room hold two copies")
	}

	before := r1.roomState
	leave := memberEvent(t, "$c", "@b:x", "leave", "")
	if prev := r1.applyState(leave); prev != event.MembershipJoin {
		t.Fatalf("prev membership = %q", prev)
	}
	if _, ok := before.members["@b:x"]; !ok || r2.members["@b:x"] == nil {
		t.Fatal("a change by one session altered a state another holds")
	}
	if r1.members["@b:x"] != nil {
		t.Fatal("the change is missing from the session that made it")
	}
	r2.applyState(leave)
	if r2.roomState != r1.roomState {
		t.Fatal("the same event on the same state made a second copy")
	}

	// A session that joins later, from a fresh sync, finds the newest state.
	r3 := &room{id: "!r:x", roomState: newRoomState(), reg: reg}
	r3.applyState(memberEvent(t, "$a", "@a:x", "join", "A"))
	if got := reg.share(r3.id, r3.roomState); got != r1.roomState {
		t.Fatal("a fresh build equal to the newest state was not swapped for it")
	}
	// A different state is not.
	r4 := &room{id: "!r:x", roomState: newRoomState(), reg: reg}
	r4.applyState(memberEvent(t, "$z", "@z:x", "join", "Z"))
	if got := reg.share(r4.id, r4.roomState); got != r4.roomState {
		t.Fatal("a different state was swapped for the registered one")
	}
}

func TestRecentMessagesShared(t *testing.T) {
	reg := newStateRegistry()
	a, b := reg.recentOf("!r:x"), reg.recentOf("!r:x")
	if a != b {
		t.Fatal("two sessions in a room keep separate recent messages")
	}
	ev := &event.Event{ID: "$1", Sender: "@a:x"}
	a.add(ev, "hello")
	b.add(ev, "hello") // the second session sees the same message
	if len(a.msgs) != 1 {
		t.Fatalf("a message remembered by two sessions is stored %d times", len(a.msgs))
	}
	b.edit("$1", "hello, edited")
	if m := a.find("$1"); m == nil || m.text != "hello, edited" {
		t.Fatalf("find after edit = %+v", m)
	}
}
