package session

import (
	"context"
	"errors"
	"strconv"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
)

// Spaces: "LIST >space" lists the rooms of a Matrix space (a space's
// alias, room ID, or the channel a joined space is), joined or not, with
// their member counts and topics, from the homeserver's /hierarchy. A
// room that is itself a space shows "[space]" before its topic.
// ISUPPORT announces it as ELIST=S.

// noteSpace tells a client that a channel it just joined is a space,
// and how to see and join its rooms.
func (s *Session) noteSpace(a *Attachment, out output, r *room) {
	if !r.space {
		return
	}
	out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "NOTICE", Params: []string{r.channel,
		r.channel + " is a Matrix space: a group of rooms, not a room to talk in. LIST >" + r.channel + " lists its rooms; JOIN one to enter it."}})
}

// maxSpaceRooms bounds how many rooms of a space one LIST shows.
const maxSpaceRooms = 1000

// listSpace answers LIST >space.
func (s *Session) listSpace(a *Attachment, out output, name string) error {
	var target mapping.RoomTarget
	if r := s.roomByChannel(name); r != nil {
		target = mapping.RoomTarget{RoomID: r.id}
	} else if t, ok := mapping.ParseChannel(name, s.user.Homeserver()); ok {
		target = t
	} else {
		return ircreply.Fail("LIST", "NO_SUCH_SPACE", name, "No such space: use LIST >#alias:server or LIST >!roomid:server")
	}
	// Channel names the account gave the rooms it is in, to show them by.
	names := map[id.RoomID]string{}
	for roomID, r := range s.rooms {
		if r.dm == "" {
			names[roomID] = r.channel
		}
	}
	resp := labeledOf(out)
	if resp != nil {
		resp.Hold()
	}
	s.goSafe("space listing", func() {
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		defer cancel()
		rooms, err := s.spaceRooms(ctx, target)
		s.post(resultEvent{apply: func() {
			defer func() {
				if resp != nil {
					resp.Done()
				}
			}()
			if _, attached := s.clients[a]; !attached && !s.lurkAll[a] {
				return
			}
			if err != nil && len(rooms) == 0 {
				text := matrixErrorText(err)
				if errors.Is(err, mautrix.MNotFound) || errors.Is(err, mautrix.MForbidden) {
					text = "it does not exist, or you may not see it (" + text + ")"
				}
				s.reply(a, out, "LIST", ircreply.Fail("LIST", "NO_SUCH_SPACE", name, "Cannot list the rooms of "+name+": "+text))
				return
			}
			if len(rooms) == 0 {
				s.reply(a, out, "LIST", ircreply.Fail("LIST", "NO_SUCH_SPACE", name, "Cannot list the rooms of "+name+": the homeserver knows no such space"))
				return
			}
			if rooms[0].RoomType != event.RoomTypeSpace {
				s.reply(a, out, "LIST", ircreply.Fail("LIST", "NOT_A_SPACE", name, name+" is a room, not a space: LIST >space lists a space's rooms"))
				return
			}
			out.SendNumeric(irc.RPL_LISTSTART, "Channel", "Users  Name")
			for _, room := range rooms[1:] { // the first is the space itself
				channel := names[room.RoomID]
				if channel == "" {
					channel = mapping.ChannelName(room.RoomID, room.CanonicalAlias)
				}
				topic := room.Topic
				if room.Name != "" {
					topic = "[" + room.Name + "] " + topic
				}
				if room.RoomType == event.RoomTypeSpace {
					topic = "[space] " + topic
				}
				out.SendNumeric(irc.RPL_LIST, channel, strconv.Itoa(room.NumJoinedMembers), topicLine(topic))
			}
			if err != nil {
				s.standardReply(a, out, "WARN", "LIST", "SPACE_INCOMPLETE", name, "The rooms of "+name+" could not be read completely: "+matrixErrorText(err))
			}
			out.SendNumeric(irc.RPL_LISTEND, "End of /LIST")
		}})
	})
	return nil
}

// spaceRooms reads a space's hierarchy, the space first, page by page.
// Any goroutine but the owner.
func (s *Session) spaceRooms(ctx context.Context, target mapping.RoomTarget) ([]*mautrix.ChildRoomsChunk, error) {
	roomID := target.RoomID
	if roomID == "" {
		resp, err := s.cli.ResolveAlias(ctx, target.Alias)
		if err != nil {
			return nil, err
		}
		roomID = resp.RoomID
	}
	var rooms []*mautrix.ChildRoomsChunk
	from := ""
	for len(rooms) < maxSpaceRooms {
		resp, err := s.cli.Hierarchy(ctx, roomID, &mautrix.ReqHierarchy{From: from, Limit: 100})
		if err != nil {
			return rooms, err
		}
		rooms = append(rooms, resp.Rooms...)
		if resp.NextBatch == "" || resp.NextBatch == from || len(resp.Rooms) == 0 {
			break
		}
		from = resp.NextBatch
	}
	return rooms, nil
}
