package session

import (
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
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
// gateway. Its lock is its own; any goroutine.
type hereRegistry struct {
	mu    sync.Mutex
	users map[id.UserID]*hereUser
}

type hereUser struct {
	p     presence
	sess  *Session  // the session running, nil once it ended
	ended time.Time // when sess ended
	// watchers are the sessions with a client that MONITORs the user,
	// with how many of their clients do.
	watchers map[*Session]int
}

// presenceChanged is posted to a session watching or sharing a room with
// an account on this gateway whose presence changed: it reads the new one
// here (so hints that overtake each other do no harm).
type presenceChanged struct{ user id.UserID }

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

// publish records what session s asserts for its account and tells the
// sessions that watch it, and those of others (co-members of its rooms
// that it names), that it changed.
func (h *hereRegistry) publish(s *Session, p presence, others []id.UserID, sessions func(id.UserID) *Session) {
	h.mu.Lock()
	u := h.entry(s.user)
	changed := u.sess != s || u.p != p
	u.p, u.sess, u.ended = p, s, time.Time{}
	var tell []*Session
	if changed {
		tell = u.watcherList()
	}
	h.mu.Unlock()
	if !changed {
		return
	}
	seen := map[*Session]bool{s: true}
	for _, w := range tell {
		seen[w] = true
	}
	for _, other := range others {
		if w := sessions(other); w != nil && !seen[w] {
			seen[w] = true
			tell = append(tell, w)
		}
	}
	h.tell(s.user, tell)
}

// gone records that session s ended: its account is offline here.
func (h *hereRegistry) gone(s *Session) {
	h.mu.Lock()
	u := h.users[s.user]
	if u == nil || u.sess != s {
		h.mu.Unlock()
		return // a newer session of the account took over
	}
	u.p, u.sess, u.ended = presence{state: event.PresenceOffline}, nil, time.Now()
	tell := u.watcherList()
	h.mu.Unlock()
	h.tell(s.user, tell)
}

func (u *hereUser) watcherList() []*Session {
	list := make([]*Session, 0, len(u.watchers))
	for w := range u.watchers {
		list = append(list, w)
	}
	return list
}

// tell posts presenceChanged to each session without waiting on any:
// a session's owner may itself be publishing.
func (h *hereRegistry) tell(user id.UserID, sessions []*Session) {
	for _, w := range sessions {
		go w.post(presenceChanged{user: user})
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

// watch adds (delta 1) or removes (-1) one client's MONITOR of user for
// session s.
func (h *hereRegistry) watch(s *Session, user id.UserID, delta int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.entry(user)
	if u.watchers == nil {
		u.watchers = map[*Session]int{}
	}
	if n := u.watchers[s] + delta; n > 0 {
		u.watchers[s] = n
	} else {
		delete(u.watchers, s)
	}
	if len(u.watchers) == 0 && u.sess == nil && u.ended.IsZero() {
		delete(h.users, user)
	}
}

// unwatchAll drops every MONITOR of session s (it ended).
func (h *hereRegistry) unwatchAll(s *Session, users []id.UserID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, user := range users {
		if u := h.users[user]; u != nil {
			delete(u.watchers, s)
			if len(u.watchers) == 0 && u.sess == nil && u.ended.IsZero() {
				delete(h.users, user)
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
	case u.sess == nil && activeAt.After(u.ended):
		u.ended = time.Time{}
		return presence{}, false
	}
	return u.p, true
}

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
	if s.user == s.mgr.guestUser {
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
	s.mgr.here.publish(s, s.assertedPresence(), others, s.mgr.sessionOf)
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
	s.showMonitorChange(user, before.online(), p.online())
}

// leaveHere ends the session's part in the registry: its account is
// offline here, and it watches no one. Owner goroutine, as it ends.
func (s *Session) leaveHere() {
	var watched []id.UserID
	for a := range s.clients {
		for _, user := range a.monitor {
			if user != "" {
				watched = append(watched, user)
			}
		}
	}
	s.mgr.here.unwatchAll(s, watched)
	s.mgr.here.gone(s)
}
