package session

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
)

// maxDirectoryRooms bounds how much of a homeserver's directory one LIST
// shows; a client that wants a particular room searches with LIST *term*.
const maxDirectoryRooms = 1000

// maxWaitingLists bounds the LISTs of a session waiting behind the one
// being answered.
const maxWaitingLists = 3

// cmdList lists the joined channels, then the homeserver's public room
// directory. The directory is fetched page by page off the owner and the
// request worker, so neither the connection nor the client's sends wait;
// one at a time per session (s.listings): while one runs, up to
// maxWaitingLists more wait, and later ones get RPL_TRYAGAIN.
// "LIST *term*" or "LIST term" searches the directory.
func (s *Session) cmdList(a *Attachment, out output, m *irc.Message) error {
	if arg := m.Param(0); len(arg) > 1 && arg[0] == '>' && (arg[1] == '#' || arg[1] == '!') {
		return s.listSpace(a, out, arg[1:]) // spaces.go; >N would be ELIST's user count
	}
	term := strings.Trim(m.Param(0), "*")
	if strings.ContainsAny(term, ",<>=") {
		term = "" // ELIST conditions are not supported: list everything
	}
	type entry struct {
		channel string
		members int
		topic   string
	}
	var joined []entry
	seen := map[string]bool{}
	for _, r := range s.rooms {
		if r.dm != "" || a.lurk != nil && !lurkable(r) {
			continue // a lurker is shown only what it may read
		}
		seen[string(r.id)] = true
		if term != "" && !strings.Contains(strings.ToLower(r.channel+" "+r.topic), strings.ToLower(term)) {
			continue
		}
		joined = append(joined, entry{r.channel, r.joinedCount(), r.topic})
	}
	sort.Slice(joined, func(i, j int) bool { return joined[i].channel < joined[j].channel })

	ok := s.listings.start(s, func(ctx context.Context) func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		rooms, err := s.directory(ctx, term)
		return func() {
			if _, attached := s.clients[a]; !attached && !s.lurkAll[a] {
				return
			}
			out.SendNumeric(irc.RPL_LISTSTART, "Channel", "Users  Name")
			for _, e := range joined {
				out.SendNumeric(irc.RPL_LIST, e.channel, strconv.Itoa(e.members), topicLine(e.topic))
			}
			for _, room := range rooms {
				if seen[string(room.RoomID)] {
					continue
				}
				topic := room.Topic
				if room.Name != "" {
					topic = "[" + room.Name + "] " + topic
				}
				out.SendNumeric(irc.RPL_LIST, mapping.ChannelName(room.RoomID, room.CanonicalAlias),
					strconv.Itoa(room.NumJoinedMembers), topicLine(topic))
			}
			if err != nil {
				s.standardReply(a, out, "WARN", "LIST", "DIRECTORY_INCOMPLETE", "", "The room directory could not be read completely: "+matrixErrorText(err))
			}
			out.SendNumeric(irc.RPL_LISTEND, "End of /LIST")
		}
	})
	if !ok {
		return ircreply.Numeric(irc.RPL_TRYAGAIN, "LIST", "Your earlier LIST requests are still being answered; try again shortly")
	}
	return nil
}

// directory reads the public room directory, searching for term when it is
// not empty. Any goroutine but the owner.
func (s *Session) directory(ctx context.Context, term string) ([]*mautrix.PublicRoomInfo, error) {
	var rooms []*mautrix.PublicRoomInfo
	since := ""
	for len(rooms) < maxDirectoryRooms {
		req := map[string]any{"limit": 100}
		if since != "" {
			req["since"] = since
		}
		if term != "" {
			req["filter"] = map[string]any{"generic_search_term": term}
		}
		var resp mautrix.RespPublicRooms
		if _, err := s.cli.MakeRequest(ctx, http.MethodPost, s.cli.BuildClientURL("v3", "publicRooms"), req, &resp); err != nil {
			return rooms, err
		}
		rooms = append(rooms, resp.Chunk...)
		if resp.NextBatch == "" || resp.NextBatch == since || len(resp.Chunk) == 0 {
			break
		}
		since = resp.NextBatch
	}
	return rooms, nil
}
