package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func memberAt(t testing.TB, user, membership, name string, ts int64) *event.Event {
	ev := memberEvent(t, "$"+user+membership+name, user, membership, name)
	ev.Timestamp = ts
	return ev
}

// Sessions asking for the same room's members at once make one request,
// and all get its list.
func TestMemberFetchOneInFlight(t *testing.T) {
	f := newMemberFetcher(4)
	release := make(chan struct{})
	var calls atomic.Int32
	do := func(context.Context) ([]*event.Event, error) {
		calls.Add(1)
		<-release
		return []*event.Event{memberAt(t, "@a:x", "join", "A", 1)}, nil
	}
	const askers = 20
	lists := make([]*memberList, askers)
	var wg sync.WaitGroup
	past := time.Now().Add(-time.Hour)
	for i := range askers {
		wg.Go(func() {
			l, err := f.fetch(context.Background(), "!r:x", past, do)
			if err != nil {
				t.Error(err)
			}
			lists[i] = l
		})
	}
	// Hold the request until it is in flight; askers arriving later either
	// wait for it or reuse its finished list.
	for {
		f.mu.Lock()
		e := f.rooms["!r:x"]
		f.mu.Unlock()
		if e != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d requests for one room, want 1", n)
	}
	for i, l := range lists {
		if l == nil || l != lists[0] || l.members["@a:x"] == nil {
			t.Fatalf("asker %d got %v, not the shared list", i, l)
		}
	}
	if f.count.Load() != 1 {
		t.Fatalf("count %d, want 1", f.count.Load())
	}
	// A finished list that began after what the asker knows is reused.
	if l, _ := f.fetch(context.Background(), "!r:x", past, do); l != lists[0] || calls.Load() != 1 {
		t.Fatal("a fresh finished list was fetched again")
	}
}

// A list that began before what the asker needs is not used for it: the
// asker waits for the request in flight, then sends its own; never two at
// once for a room.
func TestMemberFetchTooOldOneAtATime(t *testing.T) {
	f := newMemberFetcher(4)
	var inFlight, most, calls atomic.Int32
	gate := make(chan struct{})
	do := func(context.Context) ([]*event.Event, error) {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		calls.Add(1)
		<-gate
		inFlight.Add(-1)
		return nil, nil
	}
	first := make(chan *memberList)
	go func() {
		l, _ := f.fetch(context.Background(), "!r:x", time.Time{}, do)
		first <- l
	}()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	later := time.Now().Add(time.Millisecond)
	for !time.Now().After(later) {
		time.Sleep(time.Millisecond)
	}
	second := make(chan *memberList)
	go func() {
		l, _ := f.fetch(context.Background(), "!r:x", later, do)
		second <- l
	}()
	close(gate) // both requests answer at once from now on
	l1, l2 := <-first, <-second
	if calls.Load() != 2 {
		t.Fatalf("%d requests, want 2 (the first began too early for the second asker)", calls.Load())
	}
	if most.Load() != 1 {
		t.Fatalf("%d requests for one room at once", most.Load())
	}
	if l1 == l2 || l2.begun.Before(later) {
		t.Fatal("the second asker got a list older than it asked for")
	}
}

// A failed request is not kept: the next asker tries again.
func TestMemberFetchFailureRetried(t *testing.T) {
	f := newMemberFetcher(1)
	boom := errors.New("boom")
	if _, err := f.fetch(context.Background(), "!r:x", time.Time{}, func(context.Context) ([]*event.Event, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	l, err := f.fetch(context.Background(), "!r:x", time.Time{}, func(context.Context) ([]*event.Event, error) {
		return []*event.Event{memberAt(t, "@a:x", "join", "A", 1)}, nil
	})
	if err != nil || l.members["@a:x"] == nil {
		t.Fatalf("retry: %v %v", l, err)
	}
}

// A list made before membership changes the session's sync brought does
// not undo them; what the list knows and the session did not is added.
func TestMemberListMergeKeepsNewer(t *testing.T) {
	reg := newStateRegistry()
	r := &room{id: "!r:x", roomState: newRoomState(), reg: reg, recent: reg.recentOf("!r:x")}
	r.partial = true
	r.applyState(memberAt(t, "@alice:x", "join", "Alice", 1))
	r.applyState(memberAt(t, "@carol:x", "join", "Carol", 20)) // joined after the list was made
	r.applyState(memberAt(t, "@bob:x", "join", "Bob", 10))
	r.applyState(memberAt(t, "@bob:x", "leave", "", 30)) // left after the list was made
	r.shared, r.roomState = true, reg.share(r.id, r.roomState)
	if !r.partial || r.members["@bob:x"] == nil {
		t.Fatal("a partial state forgot who left")
	}

	list := newMemberList(time.Now(), []*event.Event{
		memberAt(t, "@alice:x", "join", "Alice2", 15), // renamed, newer than the session knew
		memberAt(t, "@bob:x", "join", "Bob", 10),
		memberAt(t, "@dave:x", "join", "Dave", 5), // never spoke: sync did not show him
		memberAt(t, "@eve:x", "leave", "", 7),
	})
	before := r.roomState
	merged := before.withMembers(list)
	if merged.partial {
		t.Fatal("merged state still partial")
	}
	want := map[id.UserID]string{"@alice:x": "Alice2", "@carol:x": "Carol", "@dave:x": "Dave"}
	if len(merged.members) != len(want) {
		t.Fatalf("members %v, want %v", merged.members, want)
	}
	for u, name := range want {
		m := merged.members[u]
		if m == nil || m.membership != event.MembershipJoin || m.displayName != name {
			t.Fatalf("%s: %+v, want joined as %s", u, m, name)
		}
	}
	if len(before.members) != 3 || before.members["@alice:x"].displayName != "Alice" {
		t.Fatal("merging changed the shared state in place")
	}
	// Another session in the same state merging the same list shares
	// the result.
	if before.withMembers(list) != merged {
		t.Fatal("the same merge made twice holds two copies")
	}
	// A leave in a complete state is forgotten again.
	r.roomState = merged
	r.applyState(memberAt(t, "@dave:x", "leave", "", 40))
	if r.members["@dave:x"] != nil {
		t.Fatal("a complete state kept a left member")
	}
}

// However many rooms are asked for at once, at most the fetcher's bound
// are fetched at a time.
func TestMemberFetchBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 2
		f := newMemberFetcher(bound)
		var running atomic.Int32
		release := make(chan struct{})
		do := func(context.Context) ([]*event.Event, error) {
			running.Add(1)
			<-release
			return nil, nil
		}
		var wg sync.WaitGroup
		for i := range 3 * bound {
			wg.Go(func() {
				if _, err := f.fetch(context.Background(), id.RoomID(fmt.Sprintf("!r%d:x", i)), time.Time{}, do); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // every asker runs its request or waits for a slot
		if n := running.Load(); n != bound {
			t.Fatalf("%d rooms fetched at once, want %d", n, bound)
		}
		close(release)
		wg.Wait()
		if c := f.count.Load(); c != 3*bound {
			t.Fatalf("%d requests for %d rooms", c, 3*bound)
		}
	})
}
