package session

import (
	"context"
	"net/http"
	"slices"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// A room whose state is partial (lazy-loaded members, members.go) does not
// know all its members, but sync's room summary tells what the gateway
// needs of them without the list: how many are joined and invited (LIST),
// and, for a room with neither name nor alias, its first members, the
// heroes (the name of the channel, and whether an m.direct room has a
// third member). Summaries are kept per account (heroes leave out the
// account itself) with the account's rooms in the store, so a resumed
// session knows them too.

// roomSummary is what the homeserver last said of a room's members in
// sync. Owner goroutine.
type roomSummary struct {
	known           bool // the counts were sent
	joined, invited int
	heroes          []id.UserID
}

// noteSummary takes what one response's summary says; a field it leaves
// out has not changed.
func (r *room) noteSummary(sum *mautrix.LazyLoadSummary) {
	if sum == nil {
		return
	}
	if sum.JoinedMemberCount != nil {
		r.summary.joined, r.summary.known = *sum.JoinedMemberCount, true
	}
	if sum.InvitedMemberCount != nil {
		r.summary.invited = *sum.InvitedMemberCount
	}
	if len(sum.Heroes) > 0 {
		r.summary.heroes = slices.Clone(sum.Heroes)
	}
}

// summaryFromStore is a stored summary, for a resumed room.
func summaryFromStore(sum store.RoomSummary) roomSummary {
	var out roomSummary
	if sum.Joined != nil {
		out.joined, out.known = *sum.Joined, true
	}
	if sum.Invited != nil {
		out.invited = *sum.Invited
	}
	out.heroes = sum.Heroes
	return out
}

// summaryForStore is what a response's summary changes, for the store.
func summaryForStore(sum *mautrix.LazyLoadSummary) (store.RoomSummary, bool) {
	if sum == nil || sum.JoinedMemberCount == nil && sum.InvitedMemberCount == nil && len(sum.Heroes) == 0 {
		return store.RoomSummary{}, false
	}
	out := store.RoomSummary{Joined: sum.JoinedMemberCount, Invited: sum.InvitedMemberCount}
	if len(sum.Heroes) > 0 {
		out.Heroes = sum.Heroes
	}
	return out, true
}

// counted says whether the summary gives the member counts of a room whose
// own member list is partial.
func (r *room) counted() bool { return r.partial && r.summary.known }

// others is how many members besides the account the summary counts
// (joined or invited).
func (r *room) others() int { return r.summary.joined + r.summary.invited - 1 }

// heroesApply says the summary's heroes name the room's other members:
// the room has no name and no alias (the homeserver sends heroes only
// then) and someone besides the account is joined or invited (else the
// heroes are those who left).
func (r *room) heroesApply() bool {
	return r.counted() && r.name == "" && r.alias == "" && len(r.summary.heroes) > 0 && r.others() > 0
}

// joinedCount is the room's number of joined members: the summary's for a
// partial state, else the state's own count.
func (r *room) joinedCount() int {
	if r.counted() {
		return r.summary.joined
	}
	n := 0
	for _, mem := range r.members {
		if mem.membership == event.MembershipJoin {
			n++
		}
	}
	return n
}

// namingHeroes is up to three of the heroes the channel of an unnamed room
// is named after, in user ID order, as memberNames picks members.
func namingHeroes(heroes []id.UserID) []id.UserID {
	sorted := slices.Clone(heroes)
	sortUsers(sorted)
	return sorted[:min(len(sorted), 3)]
}

// fetchHeroes adds to a lazily synced response the member events of the
// heroes an unnamed room new to the session is named after, when the
// response does not carry them: their display names make the channel's
// name, as Matrix clients show it, and stored with the room's state they
// serve a restart too. A room that is a query (an m.direct room with its
// peer alone) needs no name and asks nothing. One GET per hero
// (?format=event gives the whole event, so it can be stored). Sync loop.
func (y *syncer) fetchHeroes(resp *mautrix.RespSync) {
	s, tr := y.s, y.tr
	for _, roomID := range sortedRoomIDs(resp.Rooms.Join) {
		if tr.known[roomID] {
			continue // shown already, or resumed under its saved name
		}
		joined := resp.Rooms.Join[roomID]
		sum := &joined.Summary
		if len(sum.Heroes) == 0 || sum.JoinedMemberCount == nil {
			continue
		}
		others := *sum.JoinedMemberCount - 1
		if sum.InvitedMemberCount != nil {
			others += *sum.InvitedMemberCount
		}
		if others <= 0 {
			continue // no one to name it after
		}
		if peer := tr.direct[roomID]; peer != "" && others == 1 && sum.Heroes[0] == peer {
			continue // a query
		}
		have := map[id.UserID]bool{}
		for _, events := range [][]*event.Event{joined.State.Events, joined.Timeline.Events} {
			for _, ev := range events {
				if ev.Type == event.StateMember && ev.StateKey != nil {
					have[id.UserID(*ev.StateKey)] = true
				}
			}
		}
		for _, hero := range namingHeroes(sum.Heroes) {
			if have[hero] {
				continue
			}
			ev, err := s.memberEvent(roomID, hero)
			if err != nil {
				s.log.Info("could not read a member of an unnamed room; its channel is named after their user ID", "room", roomID, "user", hero, "err", err)
				continue
			}
			joined.State.Events = append(joined.State.Events, ev)
		}
	}
}

// memberEvent reads a room member's current m.room.member event, whole.
// Any goroutine but the owner.
func (s *Session) memberEvent(roomID id.RoomID, user id.UserID) (*event.Event, error) {
	u := s.cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", roomID, "state", event.StateMember.Type, user},
		map[string]string{"format": "event"})
	var ev event.Event
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if _, err := s.cli.MakeRequest(ctx, http.MethodGet, u, nil, &ev); err != nil {
		return nil, err
	}
	ev.RoomID = roomID
	return &ev, nil
}
