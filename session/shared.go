package session

import (
	"bytes"
	"encoding/json"
	"sync"
	"weak"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
)

// Room state is shared between sessions. A conference gateway has
// thousands of accounts in the same rooms; holding each room's member list
// once per account would cost far more than the accounts themselves.
//
// A roomState, once shared, never changes: a session that applies a state
// event to a shared state makes a changed copy, and leaves a note on the
// old state saying which event led to which new state, so the next session
// applying the same event to the same state takes the same copy instead of
// making its own. Each session so sees exactly the states it would have
// built alone, in its own order, while sessions that are in step share
// every one of them. A room built from scratch (the first sync, a new
// join) is built privately and then swapped for an equal state another
// session already holds, if there is one (stateRegistry).

// roomState is what Matrix says about a room.
type roomState struct {
	alias    id.RoomAlias
	name     string // m.room.name
	topic    string
	topicBy  id.UserID
	topicAt  int64 // unix milliseconds
	created  int64 // unix milliseconds
	space    bool  // m.room.create says it is a space (spaces.go)
	joinRule event.JoinRule
	// history is m.room.history_visibility: world_readable rooms may be
	// read by lurkers (lurk.go).
	history  event.HistoryVisibility
	power    *event.PowerLevelsEventContent
	powerRaw json.RawMessage // as the homeserver sent it, to edit without losing fields
	members  map[id.UserID]*member
	// partial says members holds only those a sync with lazy-loaded
	// members showed, not the room's full list (members.go); it then
	// keeps who left too, so an older full list does not bring them back.
	partial bool

	mu     sync.Mutex // guards the notes below
	nextID id.EventID // the last event a session applied to this state...
	next   *roomState // ...and the state it led to
	// mergedList is the last full member list merged into this state, and
	// merged the complete state it made (withMembers).
	mergedList *memberList
	merged     *roomState
}

type member struct {
	membership  event.Membership
	displayName string
	since       int64 // timestamp of the member event, to find the newest display name
}

func newRoomState() *roomState {
	return &roomState{members: map[id.UserID]*member{}}
}

// apply changes the state in place; only for a state no one else sees.
func (st *roomState) apply(ev *event.Event) {
	switch ev.Type {
	case event.StateMember:
		user := id.UserID(*ev.StateKey)
		c := ev.Content.AsMember()
		if c.Membership == event.MembershipLeave && !st.partial {
			delete(st.members, user)
			return
		}
		st.members[user] = &member{membership: c.Membership, displayName: c.Displayname, since: ev.Timestamp}
	case event.StateTopic:
		st.topic = ev.Content.AsTopic().Topic
		st.topicBy = ev.Sender
		st.topicAt = ev.Timestamp
	case event.StateCanonicalAlias:
		st.alias = ev.Content.AsCanonicalAlias().Alias
	case event.StateRoomName:
		st.name = ev.Content.AsRoomName().Name
	case event.StatePowerLevels:
		st.power = ev.Content.AsPowerLevels()
		st.powerRaw = ev.Content.VeryRaw
	case event.StateJoinRules:
		st.joinRule = ev.Content.AsJoinRules().JoinRule
	case event.StateHistoryVisibility:
		st.history = ev.Content.AsHistoryVisibility().HistoryVisibility
	case event.StateCreate:
		st.created = ev.Timestamp
		st.space = ev.Content.AsCreate().Type == event.RoomTypeSpace
	}
}

// matters says whether an event changes anything a roomState keeps.
func matters(ev *event.Event) bool {
	switch ev.Type {
	case event.StateMember, event.StateTopic, event.StateCanonicalAlias, event.StateRoomName,
		event.StatePowerLevels, event.StateJoinRules, event.StateCreate, event.StateHistoryVisibility:
		return true
	}
	return false
}

// after is the shared state that ev leads to from st, made once for all
// the sessions that apply ev to st. Any owner goroutine.
func (st *roomState) after(ev *event.Event) *roomState {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.next != nil && st.nextID == ev.ID && ev.ID != "" {
		return st.next
	}
	next := &roomState{
		alias: st.alias, name: st.name, topic: st.topic, topicBy: st.topicBy, topicAt: st.topicAt,
		created: st.created, space: st.space, joinRule: st.joinRule, history: st.history, power: st.power, powerRaw: st.powerRaw, members: st.members,
		partial: st.partial,
	}
	if ev.Type == event.StateMember {
		// Only a membership change copies the member list.
		next.members = make(map[id.UserID]*member, len(st.members)+1)
		for u, m := range st.members {
			next.members[u] = m
		}
	}
	next.apply(ev)
	st.nextID, st.next = ev.ID, next
	return next
}

// equal says whether two states hold the same facts.
func (st *roomState) equal(o *roomState) bool {
	if st.alias != o.alias || st.name != o.name || st.topic != o.topic || st.topicBy != o.topicBy ||
		st.topicAt != o.topicAt || st.created != o.created || st.space != o.space || st.joinRule != o.joinRule || st.history != o.history || st.partial != o.partial ||
		!bytes.Equal(st.powerRaw, o.powerRaw) || len(st.members) != len(o.members) {
		return false
	}
	for u, m := range st.members {
		om := o.members[u]
		if om == nil || *om != *m {
			return false
		}
	}
	return true
}

// stateRegistry knows the newest state each room was seen in, without
// keeping it alive: a state no session holds any more is collected.
type stateRegistry struct {
	mu     sync.Mutex
	rooms  map[id.RoomID]weak.Pointer[roomState]
	recent map[id.RoomID]weak.Pointer[recentMessages]
	// listed is the rooms' directory visibility as a session here last
	// learned it (directory.go): a property of the room, which the
	// homeserver tells anyone who asks, so one session's answer or change
	// holds for all.
	listed map[id.RoomID]bool
}

func newStateRegistry() *stateRegistry {
	return &stateRegistry{rooms: map[id.RoomID]weak.Pointer[roomState]{}, recent: map[id.RoomID]weak.Pointer[recentMessages]{}, listed: map[id.RoomID]bool{}}
}

// listedOf is the room's directory visibility as last learned here.
func (reg *stateRegistry) listedOf(roomID id.RoomID) (listed, known bool) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	listed, known = reg.listed[roomID]
	return listed, known
}

// setListed records the room's directory visibility.
func (reg *stateRegistry) setListed(roomID id.RoomID, listed bool) {
	reg.mu.Lock()
	reg.listed[roomID] = listed
	reg.mu.Unlock()
}

// share returns a state equal to st that other sessions may already hold
// (st itself if there is none), and records it as the room's newest.
func (reg *stateRegistry) share(roomID id.RoomID, st *roomState) *roomState {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if known := reg.rooms[roomID].Value(); known != nil && known != st && known.equal(st) {
		return known
	}
	reg.rooms[roomID] = weak.Make(st)
	return st
}

// moved records a room's newest state after a transition.
func (reg *stateRegistry) moved(roomID id.RoomID, st *roomState) {
	reg.mu.Lock()
	reg.rooms[roomID] = weak.Make(st)
	reg.mu.Unlock()
}

// recentOf is the room's shared list of recent messages.
func (reg *stateRegistry) recentOf(roomID id.RoomID) *recentMessages {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if r := reg.recent[roomID].Value(); r != nil {
		return r
	}
	r := &recentMessages{}
	reg.recent[roomID] = weak.Make(r)
	return r
}

// forget drops a room's entries once no session holds its state, so the
// registry does not grow with every room ever seen. Called when a session
// leaves a room; cheap when others still hold it.
func (reg *stateRegistry) forget(roomID id.RoomID) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.rooms[roomID].Value() == nil {
		delete(reg.rooms, roomID)
	}
	if reg.recent[roomID].Value() == nil {
		delete(reg.recent, roomID)
	}
	if reg.rooms[roomID].Value() == nil {
		delete(reg.listed, roomID)
	}
}

// recentMessages is a room's last messages, shared by the sessions in it,
// for context in replies and reactions. Any owner goroutine.
type recentMessages struct {
	mu   sync.Mutex
	msgs []recentMessage
}

func (rm *recentMessages) add(ev *event.Event, text string) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	for i := len(rm.msgs) - 1; i >= 0; i-- {
		if rm.msgs[i].id == ev.ID {
			return // another session in the room remembered it already
		}
	}
	if len(rm.msgs) == recentLimit {
		copy(rm.msgs, rm.msgs[1:])
		rm.msgs = rm.msgs[:recentLimit-1]
	}
	rm.msgs = append(rm.msgs, recentMessage{id: ev.ID, sender: ev.Sender, text: mapping.Snippet(text), thread: threadRootOf(ev)})
}

// edit replaces a remembered message's text with its edited version.
func (rm *recentMessages) edit(eventID id.EventID, text string) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	for i := len(rm.msgs) - 1; i >= 0; i-- {
		if rm.msgs[i].id == eventID {
			rm.msgs[i].text = mapping.Snippet(text)
			return
		}
	}
}

// find returns a copy of a remembered message, or nil.
func (rm *recentMessages) find(eventID id.EventID) *recentMessage {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	for i := len(rm.msgs) - 1; i >= 0; i-- {
		if rm.msgs[i].id == eventID {
			m := rm.msgs[i]
			return &m
		}
	}
	return nil
}
