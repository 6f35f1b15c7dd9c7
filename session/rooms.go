package session

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/mapping"
)

// room is what a session knows of one joined room. Owner goroutine only.
// The Matrix state (alias, topic, members, power levels...) is the
// embedded roomState, shared with other sessions (see shared.go); the rest
// is this session's own.
type room struct {
	*roomState
	shared  bool           // the roomState may be held by other sessions: never change it in place
	reg     *stateRegistry // where shared states are found
	id      id.RoomID
	channel string             // the IRC name, fixed when the room first appears; "" for a query
	dm      id.UserID          // the peer, when the room is a query (direct message)
	backlog []*event.Event     // messages of a room not yet shown (a DM's first words)
	recent  *recentMessages    // the last messages, for context in replies and reactions
	typing  map[id.UserID]bool // who is typing, as last shown
	readTS  int64              // the account's read marker: time of the newest read event, unix ms
	// made is when the room appeared in this session: a full member list
	// fetched after it covers what its (lazy-loaded) sync left out, the
	// timeline since shows every change (members.go).
	made time.Time
	// summary is what sync's room summary last said of the members: what
	// a partial member list cannot tell (summary.go).
	summary roomSummary
}

func (s *Session) newRoom(roomID id.RoomID) *room {
	st := newRoomState()
	st.partial = s.mgr.cfg.LazyMembers
	return &room{id: roomID, roomState: st, reg: s.mgr.shared, recent: s.mgr.shared.recentOf(roomID), made: time.Now()}
}

// share swaps a privately built state for an equal one other sessions
// hold, or offers it to them. Owner goroutine.
func (s *Session) share(r *room) {
	if !r.shared {
		r.roomState = s.mgr.shared.share(r.id, r.roomState)
		r.shared = true
	}
}

// applyState updates the room from one state event and returns the
// membership the state key had before, for rendering the change.
func (r *room) applyState(ev *event.Event) (prev event.Membership) {
	if ev.StateKey == nil {
		return ""
	}
	if !parseContent(ev) {
		// Unparseable content: leave what we knew.
		return ""
	}
	if ev.Type == event.StateMember {
		if m := r.members[id.UserID(*ev.StateKey)]; m != nil {
			prev = m.membership
			if c := ev.Content.AsMember(); m.membership == c.Membership && m.displayName == c.Displayname && m.since == ev.Timestamp {
				// Known already (a lazy sync repeats the member events of
				// those who speak): no copy of the member list.
				return prev
			}
		}
	}
	if !matters(ev) {
		return prev
	}
	if r.shared {
		r.roomState = r.roomState.after(ev)
		r.reg.moved(r.id, r.roomState)
	} else {
		r.roomState.apply(ev)
	}
	return prev
}

// parseContent parses an event's content once; false means it cannot be.
func parseContent(ev *event.Event) bool {
	err := ev.Content.ParseRaw(ev.Type)
	return err == nil || errors.Is(err, event.ErrContentAlreadyParsed)
}

func (r *room) joined(user id.UserID) bool {
	m := r.members[user]
	return m != nil && m.membership == event.MembershipJoin
}

// nickOf is the nick a client sees for user: its own nick for the account
// itself, else the nick the session gave that Matrix user.
func (s *Session) nickOf(a *Attachment, user id.UserID) string {
	if user == s.user {
		return a.client.Nick()
	}
	return s.nickFor(user)
}

// nickFor gives a Matrix user a nick, once: the first of their display
// name, their localpart and "localpart:server" (unique, as the user ID is)
// that no one else holds, nor an attached client. It stays until their
// display name changes.
func (s *Session) nickFor(user id.UserID) string {
	if nick, ok := s.nicks[user]; ok {
		return nick
	}
	nick := s.pickNick(user)
	s.nicks[user] = nick
	s.byNick[irctext.Casefold(nick)] = user
	return nick
}

func (s *Session) pickNick(user id.UserID) string {
	var candidates []string
	if nick := mapping.NickFromDisplayName(s.displayName(user)); nick != "" {
		candidates = append(candidates, nick)
	}
	candidates = append(candidates, mapping.NickCandidates(user)...)
	for _, c := range candidates {
		if s.nickFree(c, user) {
			return c
		}
	}
	return candidates[len(candidates)-1]
}

// renameUser gives user the nick their new display name asks for, and tells
// every client with a NICK line.
func (s *Session) renameUser(user id.UserID) {
	old, assigned := s.nicks[user]
	if !assigned {
		return // no client has seen a nick for them yet
	}
	nick := s.pickNick(user)
	if nick == old {
		return
	}
	delete(s.byNick, irctext.Casefold(old))
	s.nicks[user] = nick
	s.byNick[irctext.Casefold(nick)] = user
	u, h := mapping.UserHost(user)
	s.broadcastToUsersLurkers(user, live, func(a *Attachment, out output) {
		out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: old, User: u, Host: h}, Command: "NICK", Params: []string{nick}})
	})
}

// displayName is the user's newest display name across shared rooms
// (Matrix allows one per room; a change reaches each room separately).
func (s *Session) displayName(user id.UserID) string {
	var name string
	var since int64 = -1
	for _, r := range s.rooms {
		if m := r.members[user]; m != nil && m.displayName != "" && m.since > since {
			name, since = m.displayName, m.since
		}
	}
	return name
}

// nickFree says whether nick is free for user: held by no one else and by
// no attached client.
func (s *Session) nickFree(nick string, user id.UserID) bool {
	folded := irctext.Casefold(nick)
	if s.isServiceNick(nick) {
		return false
	}
	if holder, taken := s.byNick[folded]; taken && holder != user {
		return false
	}
	for a := range s.clients {
		if irctext.Casefold(a.client.Nick()) == folded {
			return false
		}
	}
	return !s.isGuestNick(folded)
}

// userByNick finds the Matrix user a client means by nick.
func (s *Session) userByNick(a *Attachment, nick string) (id.UserID, bool) {
	folded := irctext.Casefold(nick)
	if folded == irctext.Casefold(a.client.Nick()) {
		return s.user, true
	}
	user, ok := s.byNick[folded]
	return user, ok
}

// roomByChannel finds a joined room by the channel name a client typed,
// which may also be the room's ID.
func (s *Session) roomByChannel(name string) *room {
	if roomID, ok := s.channels[irctext.Casefold(name)]; ok {
		return s.rooms[roomID]
	}
	if r := s.rooms[id.RoomID(name)]; r != nil && r.dm == "" {
		return r
	}
	return nil
}

// addRoom gives a newly joined room its channel name.
func (s *Session) addRoom(r *room) {
	r.channel = s.channelNameFor(r)
	delete(s.joinNames, r.id)
	s.rooms[r.id] = r
	s.channels[irctext.Casefold(r.channel)] = r.id
}

// channelNameFor picks a room's IRC name: its alias (without the server
// part when configured and local), else the alias a client joined it by,
// else the name this account gave it before, else one made from its room
// name (made unique with -2, -3…, and remembered so it stays), else its
// ID. A name another room holds is never taken.
func (s *Session) channelNameFor(r *room) string {
	free := func(name string) bool {
		other, taken := s.channels[irctext.Casefold(name)]
		return !taken || other == r.id
	}
	alias := r.alias
	if requested := s.joinNames[r.id]; alias == "" && requested != "" {
		if requested == string(r.id) && free(requested) {
			return requested // joined by room ID: the name the client asked for
		}
		alias = id.RoomAlias(requested)
	}
	if alias != "" {
		name := mapping.ChannelName(r.id, alias)
		if s.mgr.cfg.ShortAliases {
			name = mapping.ShortAlias(id.RoomAlias(name), s.user.Homeserver())
		}
		if name != string(r.id) && free(name) {
			return name
		}
	}
	base := mapping.ReadableChannel(r.name)
	if r.name == "" {
		// Unnamed rooms (group DMs, mostly) are named after their members,
		// as Matrix clients show them.
		base = mapping.ReadableChannel(s.memberNames(r))
	}
	// A remembered name stays, unless the room was renamed meanwhile.
	if saved := s.savedNames[r.id]; saved != "" && free(saved) && (r.name == "" || strings.HasPrefix(saved, base)) {
		return saved
	}
	if base != "" {
		for i := 1; ; i++ {
			name := base
			if i > 1 {
				name = base + "-" + strconv.Itoa(i)
			}
			if free(name) {
				s.saveChannelName(r.id, name)
				return name
			}
		}
	}
	return string(r.id)
}

// memberNames lists up to three other members of a room by display name
// (else localpart), in user ID order, for naming an unnamed room.
func (s *Session) memberNames(r *room) string {
	var users []id.UserID
	if r.heroesApply() {
		// A partial member list: the summary's heroes are the members to
		// name it after (summary.go).
		users = namingHeroes(r.summary.heroes)
	} else {
		for user, m := range r.members {
			if user != s.user && (m.membership == event.MembershipJoin || m.membership == event.MembershipInvite) {
				users = append(users, user)
			}
		}
		sortUsers(users)
	}
	var names []string
	for _, user := range users[:min(len(users), 3)] {
		var name string
		if m := r.members[user]; m != nil {
			name = m.displayName
		}
		if name == "" {
			name, _ = mapping.UserHost(user)
		}
		names = append(names, name)
	}
	return strings.Join(names, " ")
}

// saveChannelName remembers a made-up channel name in the store, off the
// owner goroutine.
func (s *Session) saveChannelName(roomID id.RoomID, name string) {
	if s.savedNames[roomID] == name {
		return
	}
	s.savedNames[roomID] = name
	if s.unsavedNames == nil {
		s.unsavedNames = map[id.RoomID]string{}
	}
	s.unsavedNames[roomID] = name
}

// flushNames saves the channel names made up while handling one event, in
// one request: a first sync makes up one per room. Owner goroutine.
// They do not wait behind message sends; when too much is queued they
// stay unsaved until the next event.
func (s *Session) flushNames() {
	names, user := s.unsavedNames, s.user
	ok := s.enqueueSide(func(ctx context.Context) func() {
		if err := s.mgr.store.PutChannelNames(ctx, user, names); err != nil {
			s.log.Error("could not save channel names", "count", len(names), "err", err)
		}
		return nil
	})
	if !ok {
		if s.ctx.Err() == nil {
			s.log.Warn("too many requests queued to save channel names now; trying again with the next event", "count", len(names))
		}
		return
	}
	s.unsavedNames = nil
}

// renameIfNeeded follows a room's alias or name change: the channel gets
// its new name, shown as a PART and a JOIN with a notice saying why.
func (s *Session) renameIfNeeded(r *room) {
	name := s.channelNameFor(r)
	if name == r.channel {
		return
	}
	old := r.channel
	delete(s.channels, irctext.Casefold(old))
	r.channel = name
	s.channels[irctext.Casefold(name)] = r.id
	reason, renamed := s.renameReasons[r.id]
	delete(s.renameReasons, r.id)
	if !renamed {
		reason = "The room's alias or name changed"
	}
	s.broadcastIn(r, "", live, func(a *Attachment, out output) {
		if a.client.HasCap("draft/channel-rename") {
			out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "RENAME",
				Params: []string{old, name, reason}})
			return
		}
		out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, s.user), Command: "PART", Params: []string{old, "Renamed to " + name}})
		s.sendChannelBurst(a, out, r)
		out.SendNotice(old + " is now called " + name)
	})
}

func (s *Session) removeRoom(r *room) {
	delete(s.rooms, r.id)
	delete(s.channels, irctext.Casefold(r.channel))
	s.mgr.shared.forget(r.id)
	s.mgr.members.forget(r.id)
}

// usersFor resolves pills to the nicks client a sees.
func (s *Session) usersFor(a *Attachment) mapping.UserResolver {
	return func(user id.UserID) (string, bool) { return s.nickOf(a, user), true }
}

// nicksFor resolves nicks client a typed to Matrix users, for pills.
func (s *Session) nicksFor(a *Attachment) mapping.NickResolver {
	return func(nick string) (id.UserID, bool) { return s.userByNick(a, nick) }
}
