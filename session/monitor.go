package session

import (
	"strconv"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/irctext"
)

// MONITOR watches Matrix users by nick or Matrix ID: online means their
// presence is online or unavailable, offline means offline or unknown. A
// nick nobody in a shared room has is watched as the user of that name on
// the server. An account on this gateway is reported from its sessions
// here, at once (here.go).
// With extended-monitor, away-notify and setname lines come for watched
// users too.

// MonitorLimit is the most targets one client may watch (ISUPPORT MONITOR).
const MonitorLimit = 100

const (
	rplMonOnline    = "730"
	rplMonOffline   = "731"
	rplMonList      = "732"
	rplEndOfMonList = "733"
	errMonListFull  = "734"
)

func (s *Session) cmdMonitor(a *Attachment, out output, m *irc.Message) error {
	switch strings.ToUpper(m.Params[0]) {
	case "+":
		if len(m.Params) < 2 {
			return ircreply.Numeric(irc.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
		}
		var online, offline []string
		for _, target := range strings.Split(m.Params[1], ",") {
			if target == "" {
				continue
			}
			if len(a.monitor) >= MonitorLimit {
				// Sent at once: the targets added before it are still answered.
				s.reply(a, out, "MONITOR", ircreply.Numeric(errMonListFull, strconv.Itoa(MonitorLimit), m.Params[1], "Monitor list is full"))
				break
			}
			user, ok := s.userForTarget(a, target)
			if !ok {
				// Not in a shared room: perhaps a user of the server,
				// who may connect later.
				user, ok = s.matrixUserNamed(target)
			}
			s.setMonitor(a, irctext.Casefold(target), user, true)
			if ok && s.online(user) {
				online = append(online, s.prefixOf(a, user).String())
			} else {
				offline = append(offline, target)
			}
		}
		s.sendMonitorLists(a, out, rplMonOnline, online)
		s.sendMonitorLists(a, out, rplMonOffline, offline)
	case "-":
		if len(m.Params) < 2 {
			return ircreply.Numeric(irc.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
		}
		for _, target := range strings.Split(m.Params[1], ",") {
			s.setMonitor(a, irctext.Casefold(target), "", false)
		}
	case "C":
		s.clearMonitor(a)
	case "L":
		var targets []string
		for target := range a.monitor {
			targets = append(targets, target)
		}
		sortStrings(targets)
		s.sendMonitorLists(a, out, rplMonList, targets)
		out.SendNumeric(rplEndOfMonList, "End of MONITOR list")
	case "S":
		var online, offline []string
		for target, user := range a.monitor {
			if user != "" && s.online(user) {
				online = append(online, s.prefixOf(a, user).String())
			} else {
				offline = append(offline, target)
			}
		}
		sortStrings(online)
		sortStrings(offline)
		s.sendMonitorLists(a, out, rplMonOnline, online)
		s.sendMonitorLists(a, out, rplMonOffline, offline)
	default:
		return ircreply.Numeric(irc.ERR_UNKNOWNCOMMAND, "MONITOR", "Unknown MONITOR subcommand")
	}
	return nil
}

func (s *Session) sendMonitorLists(a *Attachment, out output, code string, items []string) {
	for _, line := range joinLimitedBy(items, 400, ",") {
		out.SendNumeric(code, line)
	}
}

// online says whether a user counts as online for MONITOR. It also
// takes what this gateway knows first-hand as the last shown, so that the
// change it is told of next is not told twice. Owner goroutine.
func (s *Session) online(user id.UserID) bool {
	p := s.presenceFor(user)
	if _, here := s.mgr.here.lookup(user); here {
		s.presence[user] = p
	}
	return p.online()
}

// setMonitor makes client a watch user under a folded target (add), or
// stop watching it, and tells the gateway, which then reports the presence
// changes of an account of its own at once. Owner goroutine.
func (s *Session) setMonitor(a *Attachment, target string, user id.UserID, add bool) {
	if old, ok := a.monitor[target]; ok && old != "" {
		s.mgr.here.watch(s, old, -1)
	}
	if !add {
		delete(a.monitor, target)
		return
	}
	a.monitor[target] = user
	if user != "" {
		s.mgr.here.watch(s, user, 1)
	}
}

// clearMonitor empties client a's MONITOR list. Owner goroutine.
func (s *Session) clearMonitor(a *Attachment) {
	for target := range a.monitor {
		s.setMonitor(a, target, "", false)
	}
}

// monitors says whether client a watches user.
func (a *Attachment) monitors(user id.UserID) bool {
	for _, u := range a.monitor {
		if u == user {
			return true
		}
	}
	return false
}

// showMonitorChange tells watching clients that a user came online or went
// offline.
func (s *Session) showMonitorChange(user id.UserID, wasOnline, isOnline bool) {
	if wasOnline == isOnline {
		return
	}
	for a := range s.clients {
		if !a.monitors(user) {
			continue
		}
		if isOnline {
			a.client.SendNumeric(rplMonOnline, s.prefixOf(a, user).String())
		} else {
			a.client.SendNumeric(rplMonOffline, s.nickOf(a, user))
		}
	}
}
