package session

import (
	"context"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Room upgrades: when a room is replaced (m.room.tombstone), the account
// follows to its successor if it can join it, and the channel keeps its
// name: a NOTICE says what happens, the channel is parted from the old
// room and joined again on the new one (the alias moves with an upgrade;
// without one, the successor takes the old channel's name). The old room,
// still joined on Matrix as Element leaves it, is no longer a channel.
// History before the upgrade stays with the old room (CHATHISTORY of the
// channel reads the new one).

// upgradeState is the session's replaced rooms. Owner goroutine.
type upgradeState struct {
	// replaced maps each replaced room to its successor: a room the
	// account follows or followed, which is no longer a channel once the
	// successor is joined.
	replaced map[id.RoomID]id.RoomID
	// following is the successors being joined, with the channel name
	// they are to take.
	following map[id.RoomID]string
	// toFollow is the rooms a sync found replaced by a room the account
	// is not in, followed once the sync is applied.
	toFollow map[id.RoomID]tombstone
}

// tombstone is a replacement: the successor and the server to join it
// through.
type tombstone struct {
	successor id.RoomID
	via       string
	reason    string
}

// tombstoneOf reads an m.room.tombstone event; ok is false for anything
// else, or a tombstone without a successor.
func tombstoneOf(ev *event.Event) (t tombstone, ok bool) {
	if ev.Type != event.StateTombstone || ev.StateKey == nil || !parseContent(ev) {
		return t, false
	}
	c := ev.Content.AsTombstone()
	if c.ReplacementRoom == "" {
		return t, false
	}
	return tombstone{successor: c.ReplacementRoom, via: ev.Sender.Homeserver(), reason: c.Body}, true
}

// noteUpgrades looks at a sync's joined rooms before they are applied. A
// channel whose room was replaced is followed at once, before the events
// that come with the tombstone (the upgrade moves the alias away first,
// which is no rename). A room the session does not show yet whose state
// says it was replaced is hidden when its successor is joined too (a
// restart after an upgrade), and otherwise followed once the sync is
// applied. Owner goroutine.
func (s *Session) noteUpgrades(resp *mautrix.RespSync) {
	u := &s.upgrades
	for _, roomID := range sortedRoomIDs(resp.Rooms.Join) {
		joined := resp.Rooms.Join[roomID]
		if u.replaced[roomID] != "" {
			continue
		}
		var t tombstone
		found := false
		for _, evs := range [][]*event.Event{joined.State.Events, joined.Timeline.Events} {
			for _, ev := range evs {
				if tt, ok := tombstoneOf(ev); ok {
					t, found = tt, true
				}
			}
		}
		if !found {
			continue
		}
		if r := s.rooms[roomID]; r != nil {
			if r.dm == "" {
				s.followUpgrade(r, t)
			}
			continue
		}
		if _, joinedToo := resp.Rooms.Join[t.successor]; joinedToo || s.rooms[t.successor] != nil {
			u.init()
			u.replaced[roomID] = t.successor
			continue
		}
		u.init()
		u.toFollow[roomID] = t
	}
}

func (u *upgradeState) init() {
	if u.replaced == nil {
		u.replaced, u.following, u.toFollow = map[id.RoomID]id.RoomID{}, map[id.RoomID]string{}, map[id.RoomID]tombstone{}
	}
}

// isReplaced says whether a room has been replaced by another.
func (s *Session) isReplaced(roomID id.RoomID) bool { return s.upgrades.replaced[roomID] != "" }

// hiddenAsReplaced says whether a room is not to be shown: replaced by a
// successor the account is in, and not a channel now. Owner goroutine.
func (s *Session) hiddenAsReplaced(roomID id.RoomID) bool {
	return s.upgrades.replaced[roomID] != "" && s.rooms[roomID] == nil
}

// awaitsUpgrade says whether a room is a successor being joined: it is
// announced when the join returns, after the old channel is parted, so
// that it takes the channel's name.
func (s *Session) awaitsUpgrade(roomID id.RoomID) bool {
	_, ok := s.upgrades.following[roomID]
	return ok
}

// followPendingUpgrades follows the replaced rooms a sync found. Owner
// goroutine, after the sync is applied.
func (s *Session) followPendingUpgrades() {
	for roomID, t := range s.upgrades.toFollow {
		delete(s.upgrades.toFollow, roomID)
		if r := s.rooms[roomID]; r != nil {
			s.followUpgrade(r, t)
		}
	}
}

// followUpgrade follows room r to its successor: it joins the successor
// (unless the account is in it already), then parts the old channel and
// shows the successor under the same name. Owner goroutine.
func (s *Session) followUpgrade(r *room, t tombstone) {
	u := &s.upgrades
	u.init()
	if prev := u.replaced[r.id]; prev == t.successor {
		return // a tombstone seen twice
	}
	u.replaced[r.id] = t.successor
	channel := r.channel
	s.broadcast(attached, func(a *Attachment, out output) {
		text := channel + " has been upgraded to a new room"
		if t.reason != "" {
			text += " (" + t.reason + ")"
		}
		out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "NOTICE",
			Params: []string{channel, text + "; following it there: the channel keeps its name, and its history before the upgrade stays with the old room."}})
	})
	if next := s.rooms[t.successor]; next != nil {
		// Already in it (another client followed first).
		s.retireReplaced(r, next.id)
		s.renameIfNeeded(next)
		return
	}
	u.following[t.successor] = channel
	s.joinsInFlight++
	ok := s.enqueue(func(ctx context.Context) func() {
		_, err := s.cli.JoinRoom(ctx, t.successor.String(), &mautrix.ReqJoinRoom{Via: []string{t.via}})
		return func() {
			delete(u.following, t.successor)
			if err != nil {
				delete(u.replaced, r.id)
				s.log.Warn("could not follow a room upgrade", "room", r.id, "successor", t.successor, "err", err)
				s.broadcast(attached, func(a *Attachment, out output) {
					out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "NOTICE",
						Params: []string{channel, "Could not join the new room " + string(t.successor) + " (" + matrixErrorText(err) + "); " + channel + " stays on the old one."}})
				})
				s.joinDone("", "", nil, nil)
				return
			}
			if old := s.rooms[r.id]; old != nil {
				s.retireReplaced(old, t.successor)
			}
			s.joinNames[t.successor] = channel
			s.joinDone(t.successor, channel, nil, nil)
		}
	})
	if !ok {
		s.joinsInFlight--
		delete(u.following, t.successor)
		delete(u.replaced, r.id)
	}
}

// retireReplaced ends the channel of a replaced room: its clients see it
// parted, and the room is no longer shown (it stays joined on Matrix).
func (s *Session) retireReplaced(r *room, successor id.RoomID) {
	s.broadcast(attached, func(a *Attachment, out output) {
		out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, s.user), Command: "PART",
			Params: []string{r.channel, "Room upgraded: rejoining on the new room " + string(successor)}})
	})
	s.removeRoom(r)
}
