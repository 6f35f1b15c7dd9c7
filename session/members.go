package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Full member lists, fetched on demand. A sync with lazy-loaded members
// shows of a room only the members whose events it carries, so a room of
// 10,000 members costs its accounts' syncs almost nothing; a room state
// built that way is partial. NAMES, WHO and the join burst need every
// member: they ask the gateway's memberFetcher, which asks the homeserver
// (GET /rooms/{roomId}/members) at most once at a time per room for all
// accounts, off the owner goroutines, a bounded number of rooms at once,
// and hands every session that asked the same list. Each session merges it
// into its own state (roomState.withMembers): a member event the session
// holds wins over an older one in the list, so a membership change sync
// brought after the fetch began is neither lost nor undone.

// memberList is a room's member events as the homeserver listed them at
// one moment. Never changed once made: sessions share it.
type memberList struct {
	begun   time.Time // when the request was sent: the list covers what happened before
	members map[id.UserID]*member
}

// newMemberList keeps of the homeserver's member events what a roomState
// keeps, so that a held list costs no more than a state.
func newMemberList(begun time.Time, events []*event.Event) *memberList {
	l := &memberList{begun: begun, members: make(map[id.UserID]*member, len(events))}
	for _, ev := range events {
		if ev.Type != event.StateMember || ev.StateKey == nil || !parseContent(ev) {
			continue
		}
		user := id.UserID(*ev.StateKey)
		if cur := l.members[user]; cur != nil && cur.since > ev.Timestamp {
			continue
		}
		c := ev.Content.AsMember()
		l.members[user] = &member{membership: c.Membership, displayName: c.Displayname, since: ev.Timestamp}
	}
	return l
}

// memberFetcher is the gateway's fetcher of full member lists. Any
// goroutine except an owner goroutine may call fetch (it waits on the
// network).
type memberFetcher struct {
	slots chan struct{} // bounds the rooms fetched at once, gateway-wide
	count atomic.Uint64 // requests sent to the homeserver

	mu    sync.Mutex
	rooms map[id.RoomID]*memberFetch
}

type memberFetch struct {
	begun time.Time
	done  chan struct{} // closed when list and err are set
	list  *memberList
	err   error
}

func newMemberFetcher(parallel int) *memberFetcher {
	if parallel < 1 {
		parallel = 1
	}
	return &memberFetcher{slots: make(chan struct{}, parallel), rooms: map[id.RoomID]*memberFetch{}}
}

// fetch returns the room's member list as the homeserver had it at some
// moment after notBefore (the caller knows what happened before that
// from its own sync). It joins a request in flight, or reuses a finished
// one, that began after notBefore; else it waits for the one in flight,
// then sends its own, so that a room is never fetched twice at once. do
// makes the request (with the caller's account).
func (f *memberFetcher) fetch(ctx context.Context, roomID id.RoomID, notBefore time.Time, do func(context.Context) ([]*event.Event, error)) (*memberList, error) {
	var e *memberFetch
	for {
		f.mu.Lock()
		e = f.rooms[roomID]
		if e == nil {
			break
		}
		fresh := !e.begun.Before(notBefore)
		finished := false
		select {
		case <-e.done:
			finished = true
		default:
		}
		if finished {
			if fresh {
				f.mu.Unlock()
				return e.list, nil // a failed one is no longer listed
			}
			break // too old: replace it
		}
		f.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if fresh {
			if e.err != nil && ctx.Err() == nil && (errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded)) {
				continue // the one who asked gave up, not the homeserver
			}
			return e.list, e.err
		}
		// It began too early for the caller; ask again, one at a time.
	}
	// f.mu is held here. begun is taken before the request is sent (it may
	// wait for a slot), so a list is never thought newer than it is.
	e = &memberFetch{begun: time.Now(), done: make(chan struct{})}
	f.rooms[roomID] = e
	f.mu.Unlock()

	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		f.finish(roomID, e, nil, ctx.Err())
		return nil, ctx.Err()
	}
	f.count.Add(1)
	events, err := do(ctx)
	<-f.slots
	var list *memberList
	if err == nil {
		list = newMemberList(e.begun, events)
	}
	f.finish(roomID, e, list, err)
	return list, err
}

// finish publishes a request's outcome; a failed one is forgotten, so
// the next caller tries again.
func (f *memberFetcher) finish(roomID id.RoomID, e *memberFetch, list *memberList, err error) {
	f.mu.Lock()
	e.list, e.err = list, err
	if err != nil && f.rooms[roomID] == e {
		delete(f.rooms, roomID)
	}
	close(e.done)
	f.mu.Unlock()
}

// forget drops what the fetcher keeps of a room, once no session is in it.
func (f *memberFetcher) forget(roomID id.RoomID) {
	f.mu.Lock()
	if e := f.rooms[roomID]; e != nil {
		select {
		case <-e.done:
			delete(f.rooms, roomID)
		default:
		}
	}
	f.mu.Unlock()
}

// withMembers is the complete state made of st and a fetched member list,
// shared by every session that merges the same list into the same state.
// A member event st holds wins over the list's, unless the list's is newer:
// st's came through the session's own sync, perhaps after the list was
// made. Any owner goroutine.
func (st *roomState) withMembers(list *memberList) *roomState {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.mergedList == list && st.merged != nil {
		return st.merged
	}
	next := &roomState{
		alias: st.alias, name: st.name, topic: st.topic, topicBy: st.topicBy, topicAt: st.topicAt,
		created: st.created, space: st.space, joinRule: st.joinRule, history: st.history, power: st.power, powerRaw: st.powerRaw,
		members: make(map[id.UserID]*member, max(len(st.members), len(list.members))),
	}
	for u, m := range st.members {
		next.members[u] = m
	}
	for user, m := range list.members {
		if cur := next.members[user]; cur == nil || cur.since < m.since {
			next.members[user] = m
		}
	}
	// A partial state remembers who left (see apply); a complete one
	// needs not.
	for u, m := range next.members {
		if m.membership == event.MembershipLeave {
			delete(next.members, u)
		}
	}
	st.mergedList, st.merged = list, next
	return next
}

// lazyMembersSetting records in the store that the gateway has synced with
// lazy-loaded members, so stored room states may lack members.
const lazyMembersSetting = "lazy_members_stored"

// lazilyStored says whether the stored room states may lack members: the
// gateway syncs with lazy-loaded members now, or did on an earlier run
// (then "yes" stays stored). With lazy members on, it must have answered
// before a session's first sync is stored, so that a later run with them
// off still knows. Any goroutine.
func (m *Manager) lazilyStored(ctx context.Context) (bool, error) {
	m.lazyMu.Lock()
	defer m.lazyMu.Unlock()
	if m.lazyKnown {
		return m.lazyStored, nil
	}
	if m.cfg.LazyMembers {
		if err := m.store.PutSetting(ctx, lazyMembersSetting, "yes"); err != nil {
			return false, fmt.Errorf("recording lazy-loaded members: %w", err)
		}
		m.lazyKnown, m.lazyStored = true, true
		return true, nil
	}
	v, err := m.store.InitSetting(ctx, lazyMembersSetting, "no")
	if err != nil {
		return false, fmt.Errorf("reading whether members were loaded lazily: %w", err)
	}
	m.lazyKnown, m.lazyStored = true, v == "yes"
	return m.lazyStored, nil
}

// MemberFetches is how many full member lists the gateway has asked the
// homeserver for. Any goroutine.
func (m *Manager) MemberFetches() uint64 { return m.members.count.Load() }

// memberFetchesAtOnce bounds the full member lists fetched at once for the
// whole gateway: a few rooms of 10,000 members parse and hold megabytes
// each while they arrive.
const memberFetchesAtOnce = 4

// withAllMembers runs then with r once r's member list is complete: at
// once when it is, else when the full list has been fetched (off the
// owner goroutine, in the room's own lane, so other rooms' bursts go on)
// and merged. A labeled response, and a PING after the command, wait for
// it. then gets nil when the account left the room meanwhile, and the
// room as it is (partial) when the list could not be fetched. Owner
// goroutine.
func (s *Session) withAllMembers(a *Attachment, out output, command string, r *room, then func(*room)) {
	if !r.partial {
		then(r)
		return
	}
	roomID, notBefore := r.id, r.made
	enqueue := func(j job) bool { return s.enqueueOn(&s.side, roomID, j) }
	ok := s.requestOn(enqueue, a, out, command, func(ctx context.Context) func() {
		list, err := s.mgr.members.fetch(ctx, roomID, notBefore, func(ctx context.Context) ([]*event.Event, error) {
			resp, err := s.cli.Members(ctx, roomID)
			if err != nil {
				return nil, err
			}
			return resp.Chunk, nil
		})
		return func() {
			r := s.rooms[roomID]
			if r == nil {
				then(nil)
				return
			}
			if err != nil {
				s.log.Warn("could not fetch a room's members; showing those sync showed", "room", roomID, "err", err)
			} else {
				s.mergeMembers(r, list)
			}
			then(r)
		}
	})
	if !ok {
		then(r) // refused as too many wait: what is known, now
	}
}

// mergeMembers makes r's state complete with a fetched list. Owner
// goroutine.
func (s *Session) mergeMembers(r *room, list *memberList) {
	if !r.partial {
		return
	}
	r.roomState = r.roomState.withMembers(list)
	if r.shared {
		r.reg.moved(r.id, r.roomState)
	}
}
