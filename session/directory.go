package session

import (
	"context"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
)

// Directory visibility: a room not published in the homeserver's room
// directory is +s (secret: LIST of the directory does not show it); -s
// publishes it, +s (or +p) takes it out. Matrix sends no event when
// someone else changes it, so each MODE query asks the homeserver, and
// a change found that way is shown to every client as a MODE line. What
// one session learns is kept for all (stateRegistry.listed), and a change
// made here is shown at once to the other sessions here in the room.

// directoryState is what the session knows of its rooms' directory
// visibility. Owner goroutine.
type directoryState struct {
	listed   map[id.RoomID]bool // last visibility this session's clients were shown, for showing changes
	waiting  map[id.RoomID][]modeQuery
	queue    []id.RoomID // rooms to ask about, one request at a time
	fetching bool
}

// modeQuery is a MODE query waiting for a room's directory visibility.
type modeQuery struct {
	a       *Attachment
	out     output
	release func() // its hold: a PING after the query waits for the answer
}

// sendChannelModes answers a channel MODE query (324, 329) once the
// homeserver has said whether the room is in its directory. Queries of
// one room share one request, and requests go one at a time, so a client
// asking for the modes of a thousand channels makes no burst. Owner
// goroutine.
func (s *Session) sendChannelModes(a *Attachment, out output, r *room) {
	d := s.dirState()
	if resp := labeledOf(out); resp != nil {
		resp.Hold()
	}
	if _, queued := d.waiting[r.id]; !queued {
		d.queue = append(d.queue, r.id)
	}
	d.waiting[r.id] = append(d.waiting[r.id], modeQuery{a, out, a.hold()})
	s.fetchNextVisibility()
}

// fetchNextVisibility asks the homeserver about the next queued room, if
// no request is under way. Owner goroutine.
func (s *Session) fetchNextVisibility() {
	d := &s.dir
	if d.fetching || len(d.queue) == 0 {
		return
	}
	roomID := d.queue[0]
	d.queue = d.queue[1:]
	d.fetching = true
	s.goSafe("directory visibility", func() {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer cancel()
		vis, err := s.cli.GetRoomDirectoryVisibility(ctx, roomID)
		s.post(resultEvent{apply: func() {
			d.fetching = false
			if err != nil {
				s.log.Warn("could not read a room's directory visibility", "room", roomID, "err", err)
			}
			s.visibilityKnown(roomID, vis == mautrix.RoomDirectoryVisibilityPublic, err == nil)
			s.fetchNextVisibility()
		}})
	})
}

// visibilityKnown answers the MODE queries waiting for roomID and, when
// the visibility changed since it was last known, shows every other
// client the change. ok is false when the homeserver did not say: the
// last known value (or none) is shown. Owner goroutine.
func (s *Session) visibilityKnown(roomID id.RoomID, listed, ok bool) {
	d := s.dirState()
	waiting := d.waiting[roomID]
	delete(d.waiting, roomID)
	r := s.rooms[roomID]
	known, wasKnown := s.listedOf(roomID)
	if ok {
		d.listed[roomID] = listed
		s.mgr.shared.setListed(roomID, listed)
	} else {
		listed = known
	}
	if r != nil && ok && wasKnown && known != listed {
		s.broadcastSecret(r, !listed, func(a *Attachment) bool {
			for _, q := range waiting {
				if q.a == a {
					return false
				}
			}
			return true
		})
	}
	for _, q := range waiting {
		if _, attached := s.clients[q.a]; (attached || s.lurkAll[q.a]) && r != nil {
			modes := mapping.ChannelModes(r.power, r.joinRule)
			if (ok || wasKnown) && !listed {
				modes = withSecret(modes)
			}
			q.out.SendNumeric(irc.RPL_CHANNELMODEIS, r.channel, modes)
			if r.created > 0 {
				q.out.SendNumeric(rplChannelCreate, r.channel, strconv.FormatInt(r.created/1000, 10))
			}
		}
		if resp := labeledOf(q.out); resp != nil {
			resp.Done()
		}
		q.release()
	}
}

// withSecret adds s to a mode string, in alphabetical order.
func withSecret(modes string) string {
	if i := strings.IndexByte(modes, 't'); i >= 0 {
		return modes[:i] + "s" + modes[i:]
	}
	return modes + "s"
}

// broadcastSecret shows the clients to picks (of those with their burst)
// a MODE +s or -s from the server: a change made elsewhere, found by a
// MODE query.
func (s *Session) broadcastSecret(r *room, secret bool, to func(a *Attachment) bool) {
	s.broadcast(attached, func(a *Attachment, out output) {
		if to(a) {
			out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "MODE",
				Params: []string{r.channel, secretMode(secret)}})
		}
	})
}

func secretMode(secret bool) string {
	if secret {
		return "+s"
	}
	return "-s"
}

// setDirectoryVisibility publishes r in the directory (secret false) or
// takes it out, as MODE -s / +s asked. Owner goroutine.
func (s *Session) setDirectoryVisibility(a *Attachment, out output, r *room, secret bool) {
	if listed, known := s.listedOf(r.id); known && listed == !secret {
		return // no change: nothing to echo, as IRC servers do
	}
	roomID, channel := r.id, r.channel
	vis := mautrix.RoomDirectoryVisibilityPublic
	if secret {
		vis = mautrix.RoomDirectoryVisibilityPrivate
	}
	s.request(a, out, "MODE", func(ctx context.Context) func() {
		err := s.cli.PublishRoomToDirectory(ctx, roomID, vis)
		return func() {
			if err != nil {
				s.reply(a, out, "MODE", s.refusal(channel, "change the room directory", err))
				return
			}
			s.dirState().listed[roomID] = !secret
			s.mgr.shared.setListed(roomID, !secret)
			r := s.rooms[roomID]
			if r == nil {
				return
			}
			s.showSecret(r, s.user, secret, answering(attached, a, out))
			s.tellSecret(r, secret)
		}
	})
}

// dirState is s.dir, its maps made. Owner goroutine.
func (s *Session) dirState() *directoryState {
	d := &s.dir
	if d.waiting == nil {
		d.waiting, d.listed = map[id.RoomID][]modeQuery{}, map[id.RoomID]bool{}
	}
	return d
}

// listedOf is a room's directory visibility as this session last showed
// it, or else as a session here last learned it. Owner goroutine.
func (s *Session) listedOf(roomID id.RoomID) (listed, known bool) {
	if listed, known := s.dir.listed[roomID]; known {
		return listed, true
	}
	return s.mgr.shared.listedOf(roomID)
}

// showSecret shows the clients of the audience user's
// MODE +s or -s. Not in the stream, so every client with its burst,
// caught up or not.
func (s *Session) showSecret(r *room, user id.UserID, secret bool, to audience) {
	s.broadcast(to, func(c *Attachment, o output) {
		o.SendMessage(&irc.Message{Prefix: s.prefixOf(c, user), Command: "MODE", Params: []string{r.channel, secretMode(secret)}})
	})
}

// tellSecret shows a change of r's directory visibility made by this
// session to the other sessions here whose account is in the room:
// Matrix sends them no event for it. Owner goroutine; posts without
// waiting on them, in order.
func (s *Session) tellSecret(r *room, secret bool) {
	roomID, by := r.id, s.user
	for user, m := range r.members {
		if user == s.user || m.membership != event.MembershipJoin {
			continue
		}
		if other := s.mgr.sessionOf(user); other != nil {
			other.postFromOther(resultEvent{apply: func() { other.secretChanged(roomID, by, secret) }})
		}
	}
}

// secretChanged shows another session's change of a room's directory
// visibility to this session's clients. Owner goroutine.
func (s *Session) secretChanged(roomID id.RoomID, by id.UserID, secret bool) {
	r := s.rooms[roomID]
	if r == nil || r.channel == "" {
		return
	}
	d := s.dirState()
	if listed, known := d.listed[roomID]; known && listed == !secret {
		return
	}
	d.listed[roomID] = !secret
	s.showSecret(r, by, secret, attached)
}
