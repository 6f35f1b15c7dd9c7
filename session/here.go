package session

import (
	"sync"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/irctext"
)

// The presence of accounts whose sessions run on this gateway is known
// here first-hand: the gateway itself is what tells the homeserver "online"
// while a client is attached, "unavailable" while away, and stops syncing
// when the session ends. The homeserver's m.presence events say the same
// seconds later, or (Dendrite, for a fresh account) not at all, and a late
// one can say what was true before the last change. So for such an account
// every session on the gateway takes its presence from here: MONITOR tells
// at once when its client connects or quits, WHOIS and away-notify say
// what AWAY just set, and a late homeserver event only reminds a session
// to look here again.
//
// An account whose session ended here stays known as offline, until the
// homeserver reports it active after that (Element, another gateway).

// hereRegistry holds the presence of the accounts with a session on this
// gateway, and the nicks their attached clients use (a MONITOR of a nick
// follows whoever holds it here, as on an IRC server). Its lock is its
// own; any goroutine.
type hereRegistry struct {
	mu    sync.Mutex
	users map[id.UserID]*hereUser
	// nicks counts, per folded nick, the attached clients of each account
	// that use it; nickWatchers are the sessions with a client that
	// MONITORs the nick, with how many of their clients do.
	nicks        map[string]map[id.UserID]int
	nickWatchers map[string]map[*Session]int
}

type hereUser struct {
	p     presence
	sess  *Session  // the session running, nil once it ended
	ended time.Time // when sess ended
	nicks []string  // the nicks of its attached clients, one each
	name  string    // its display name, as its session last knew it
	// watchers are the sessions with a client that MONITORs the user,
	// with how many of their clients do.
	watchers map[*Session]int
}

// presenceChanged is posted to a session watching (or sharing a room
// with) an account on this gateway whose presence changed, or watching a
// nick that a client here took or gave up: it reads the news here (so
// hints that overtake each other do no harm). One of user and nick is set.
type presenceChanged struct {
	user id.UserID
	nick string
}

// posting is one presenceChanged for one session.
type posting struct {
	to *Session
	ev presenceChanged
}

func (h *hereRegistry) entry(user id.UserID) *hereUser {
	if h.users == nil {
		h.users = map[id.UserID]*hereUser{}
	}
	u := h.users[user]
	if u == nil {
		u = &hereUser{}
		h.users[user] = u
	}
	return u
}

// publish records what session s asserts for its account (its presence
// and display name) and tells the
// sessions that watch it, and those of others (co-members of its rooms
// that it names), that it changed.
func (h *hereRegistry) publish(s *Session, p presence, name string, others []id.UserID, sessions func(id.UserID) *Session) {
	h.mu.Lock()
	u := h.entry(s.user)
	changed := u.sess != s || u.p != p || u.name != name
	u.p, u.name, u.sess, u.ended = p, name, s, time.Time{}
	var tell []posting
	if changed {
		tell = u.postings(presenceChanged{user: s.user})
	}
	h.mu.Unlock()
	if !changed {
		return
	}
	seen := map[*Session]bool{s: true}
	for _, t := range tell {
		seen[t.to] = true
	}
	for _, other := range others {
		if w := sessions(other); w != nil && !seen[w] {
			seen[w] = true
			tell = append(tell, posting{w, presenceChanged{user: s.user}})
		}
	}
	deliver(tell)
}

// setNicks records the nicks of session s's attached clients (one per
// client) and tells the sessions watching a nick taken or given
// up.
func (h *hereRegistry) setNicks(s *Session, nicks []string) {
	h.mu.Lock()
	u := h.users[s.user]
	if u == nil || u.sess != s {
		h.mu.Unlock()
		return
	}
	tell := h.setNicksLocked(s.user, u, nicks)
	h.mu.Unlock()
	deliver(tell)
}

func (h *hereRegistry) setNicksLocked(user id.UserID, u *hereUser, nicks []string) []posting {
	diff := map[string]int{} // by nick as typed: a change of case is news too
	for _, n := range u.nicks {
		diff[n]--
	}
	for _, n := range nicks {
		diff[n]++
	}
	u.nicks = nicks
	touched := map[string]bool{}
	for nick, d := range diff {
		if d == 0 {
			continue
		}
		folded := irctext.Casefold(nick)
		touched[folded] = true
		if h.nicks == nil {
			h.nicks = map[string]map[id.UserID]int{}
		}
		holders := h.nicks[folded]
		if holders == nil {
			holders = map[id.UserID]int{}
			h.nicks[folded] = holders
		}
		if holders[user] += d; holders[user] <= 0 {
			delete(holders, user)
		}
		if len(holders) == 0 {
			delete(h.nicks, folded)
		}
	}
	var tell []posting
	for folded := range touched {
		for w := range h.nickWatchers[folded] {
			tell = append(tell, posting{w, presenceChanged{nick: folded}})
		}
	}
	return tell
}

// nickHolder is an account with an attached client here using the
// (folded) nick, if any, and the nick as that client has it.
func (h *hereRegistry) nickHolder(folded string) (holder id.UserID, nick string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for user := range h.nicks[folded] {
		if holder == "" || user < holder {
			holder = user
		}
	}
	if holder == "" {
		return "", "", false
	}
	for _, n := range h.users[holder].nicks {
		if irctext.Casefold(n) == folded {
			return holder, n, true
		}
	}
	return holder, folded, true
}

// gone records that session s ended: its account is offline here.
func (h *hereRegistry) gone(s *Session) {
	h.mu.Lock()
	u := h.users[s.user]
	if u == nil || u.sess != s {
		h.mu.Unlock()
		return // a newer session of the account took over
	}
	tell := h.setNicksLocked(s.user, u, nil)
	u.p, u.sess, u.ended = presence{state: event.PresenceOffline}, nil, time.Now()
	tell = append(tell, u.postings(presenceChanged{user: s.user})...)
	h.mu.Unlock()
	deliver(tell)
}

func (u *hereUser) postings(ev presenceChanged) []posting {
	list := make([]posting, 0, len(u.watchers))
	for w := range u.watchers {
		list = append(list, posting{w, ev})
	}
	return list
}

// deliver posts each presenceChanged without waiting on any session (a
// session's owner may itself be publishing), in order for each.
func deliver(tell []posting) {
	for _, t := range tell {
		t.to.postFromOther(t.ev)
	}
}

// lookup is the presence of user as this gateway knows it first-hand;
// ok is false for an account that has no session here and none that
// ended since the homeserver last saw it active.
func (h *hereRegistry) lookup(user id.UserID) (p presence, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[user]
	if u == nil || u.sess == nil && u.ended.IsZero() {
		return presence{}, false
	}
	return u.p, true
}

// nameOf is the display name of an account with a session here.
func (h *hereRegistry) nameOf(user id.UserID) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[user]
	if u == nil || u.sess == nil {
		return "", false
	}
	return u.name, true
}

// watch adds (delta 1) or removes (-1) one client's MONITOR of user, or
// of a folded nick, for session s.
func (h *hereRegistry) watch(s *Session, user id.UserID, nick string, delta int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if nick != "" {
		if h.nickWatchers == nil {
			h.nickWatchers = map[string]map[*Session]int{}
		}
		ws := h.nickWatchers[nick]
		if ws == nil {
			ws = map[*Session]int{}
			h.nickWatchers[nick] = ws
		}
		if ws[s] += delta; ws[s] <= 0 {
			delete(ws, s)
		}
		if len(ws) == 0 {
			delete(h.nickWatchers, nick)
		}
	}
	if user == "" {
		return
	}
	u := h.entry(user)
	if u.watchers == nil {
		u.watchers = map[*Session]int{}
	}
	if u.watchers[s] += delta; u.watchers[s] <= 0 {
		delete(u.watchers, s)
	}
	h.dropIfUnused(user, u)
}

// dropIfUnused forgets an account nothing here needs. Under h.mu.
func (h *hereRegistry) dropIfUnused(user id.UserID, u *hereUser) {
	if len(u.watchers) == 0 && u.sess == nil && u.ended.IsZero() {
		delete(h.users, user)
	}
}

// unwatchAll drops every MONITOR of session s (it ended).
func (h *hereRegistry) unwatchAll(s *Session, users []id.UserID, nicks []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, user := range users {
		if u := h.users[user]; u != nil {
			delete(u.watchers, s)
			h.dropIfUnused(user, u)
		}
	}
	for _, nick := range nicks {
		if ws := h.nickWatchers[nick]; ws != nil {
			delete(ws, s)
			if len(ws) == 0 {
				delete(h.nickWatchers, nick)
			}
		}
	}
}

// fromHomeserver is what a session takes for user when the homeserver
// sends their presence: this gateway's own knowledge where it has it
// (ok), else the event. A user active (activeAt) after their session
// here ended is no longer known here.
func (h *hereRegistry) fromHomeserver(user id.UserID, activeAt time.Time) (p presence, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[user]
	switch {
	case u == nil, u.sess == nil && u.ended.IsZero():
		return presence{}, false
	case u.sess == nil && activeAt.After(u.ended.Add(activeMargin)):
		u.ended = time.Time{}
		h.dropIfUnused(user, u)
		return presence{}, false
	}
	return u.p, true
}

// activeMargin is how much later than the end of its session here an
// account must have been active for the homeserver's word to win: the
// last /sync of the session may reach the homeserver as it ends.
const activeMargin = 2 * time.Second

// presenceFor is user's presence as the session should show it: first-
// hand for an account on this gateway, else the homeserver's last word.
// Owner goroutine.
func (s *Session) presenceFor(user id.UserID) presence {
	if p, ok := s.mgr.here.lookup(user); ok {
		return p
	}
	return s.presence[user]
}

// assertedPresence is what the session tells the homeserver about its
// account (each /sync's set_presence, AWAY). Owner goroutine.
func (s *Session) assertedPresence() presence {
	p := presence{state: s.presenceToSet()}
	if p.state == event.PresenceUnavailable {
		p.statusMsg = s.presence[s.user].statusMsg
	}
	return p
}

// publishPresence records the account's presence for the gateway's other
// sessions; withRooms also tells those of the users in its rooms at once
// (AWAY), where otherwise the homeserver's event tells them. Owner
// goroutine.
func (s *Session) publishPresence(withRooms bool) {
	if s.guest {
		return
	}
	var others []id.UserID
	if withRooms {
		seen := map[id.UserID]bool{}
		for _, r := range s.rooms {
			for user, m := range r.members {
				if m.membership == event.MembershipJoin && !seen[user] {
					seen[user] = true
					others = append(others, user)
				}
			}
		}
	}
	s.mgr.here.publish(s, s.assertedPresence(), s.ownName, others, s.mgr.sessionOf)
}

// notePresence takes a new presence for user and tells the clients that
// follow it (away-notify, MONITOR). Owner goroutine.
func (s *Session) notePresence(user id.UserID, p presence) {
	before := s.presence[user]
	s.presence[user] = p
	was, wasAway := before.away()
	now, isAway := p.away()
	if (wasAway != isAway || was != now) && user != s.user {
		s.showAway(user, now, isAway)
	}
	s.recheckMonitors(user, "")
}

// publishNicks tells the registry the nicks of the attached clients.
// Owner goroutine.
func (s *Session) publishNicks() {
	if s.guest {
		return
	}
	nicks := make([]string, 0, len(s.clients))
	for a := range s.clients {
		if nick := a.client.Nick(); nick != "" {
			nicks = append(nicks, nick)
		}
	}
	s.mgr.here.setNicks(s, nicks)
}

// leaveHere ends the session's part in the registry: its account is
// offline here, and it watches no one. Owner goroutine, as it ends.
func (s *Session) leaveHere() {
	var users []id.UserID
	var nicks []string
	for a := range s.clients {
		for nick, t := range a.monitor {
			nicks = append(nicks, nick)
			if t.user != "" {
				users = append(users, t.user)
			}
		}
	}
	s.mgr.here.unwatchAll(s, users, nicks)
	s.mgr.here.gone(s)
}

// noteHereName takes the display name of an account on this gateway that
// a client MONITORs: with extended-monitor and setname, a change shows as
// SETNAME to clients that share no room with it (those who do have it
// from the member event). Owner goroutine.
func (s *Session) noteHereName(user id.UserID) {
	name, ok := s.mgr.here.nameOf(user)
	if !ok {
		return
	}
	old, known := s.hereNames[user]
	s.hereNames[user] = name
	if !known || old == "" || old == name || name == "" {
		return // a first name learnt is no change
	}
	for _, r := range s.rooms {
		if r.joined(user) {
			return
		}
	}
	for a := range s.clients {
		if a.client.HasCap("extended-monitor") && a.client.HasCap("setname") && a.monitors(user) {
			a.client.SendMessage(&irc.Message{Prefix: s.prefixOf(a, user), Command: "SETNAME", Params: []string{name}})
		}
	}
}
