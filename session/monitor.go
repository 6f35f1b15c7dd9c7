package session

import (
	"cmp"
	"strconv"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/mapping"
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

// monitorTarget is one target of a client's MONITOR list.
type monitorTarget struct {
	name   string    // as the client gave it
	user   id.UserID // the Matrix user it names, if any
	online bool      // as last told to the client
	nick   string    // the nick it is online under, while it is
}

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
				// (Not a client here by that nick: MONITOR follows the
				// nick itself, whoever takes it; see monitorStatus.)
				user, _ = s.serverUserNamed(target)
			}
			t := &monitorTarget{name: target, user: user}
			s.setMonitor(a, irctext.Casefold(target), t)
			var mask string
			if t.online, t.nick, mask = s.monitorStatus(a, t); t.online {
				online = append(online, mask)
			} else {
				offline = append(offline, t.name)
			}
		}
		s.sendMonitorLists(a, out, rplMonOnline, online)
		s.sendMonitorLists(a, out, rplMonOffline, offline)
	case "-":
		if len(m.Params) < 2 {
			return ircreply.Numeric(irc.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
		}
		for _, target := range strings.Split(m.Params[1], ",") {
			s.setMonitor(a, irctext.Casefold(target), nil)
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
		for _, t := range a.monitor {
			var mask string
			if t.online, t.nick, mask = s.monitorStatus(a, t); t.online {
				online = append(online, mask)
			} else {
				offline = append(offline, t.name)
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

// monitorStatus says whether a target is online, under which nick, and
// its nick!user@host for 730: a client on this gateway using the nick is
// online under it; else the Matrix user it names, by their presence.
// Owner goroutine.
func (s *Session) monitorStatus(a *Attachment, t *monitorTarget) (online bool, nick, mask string) {
	if holder, nick, ok := s.mgr.here.nickHolder(irctext.Casefold(t.name)); ok {
		u, h := mapping.UserHost(holder)
		return true, nick, nick + "!" + u + "@" + h
	}
	if t.user != "" && s.presenceFor(t.user).online() {
		p := s.prefixOf(a, t.user)
		return true, p.Name, p.String()
	}
	return false, "", ""
}

// setMonitor puts target t on client a's list under its folded name, or
// takes it off (t nil), and tells the gateway, which then reports at once
// the presence of an account of its own and the nicks its clients take.
// Owner goroutine.
func (s *Session) setMonitor(a *Attachment, folded string, t *monitorTarget) {
	if old, ok := a.monitor[folded]; ok {
		s.mgr.here.watch(s, old.user, folded, -1)
		delete(a.monitor, folded)
	}
	if t != nil {
		a.monitor[folded] = t
		s.mgr.here.watch(s, t.user, folded, 1)
		if t.user != "" {
			s.noteHereName(t.user) // the name a later SETNAME changes
		}
	}
}

// clearMonitor empties client a's MONITOR list. Owner goroutine.
func (s *Session) clearMonitor(a *Attachment) {
	for folded := range a.monitor {
		s.setMonitor(a, folded, nil)
	}
}

// monitors says whether client a watches user.
func (a *Attachment) monitors(user id.UserID) bool {
	for _, t := range a.monitor {
		if t.user == user {
			return true
		}
	}
	return false
}

// recheckMonitors tells each client whose MONITOR list has user, or the
// folded nick, whether that target is now online, if that changed.
// Owner goroutine.
func (s *Session) recheckMonitors(user id.UserID, nick string) {
	for a := range s.clients {
		for folded, t := range a.monitor {
			if user != "" && t.user != user || nick != "" && folded != nick {
				continue
			}
			online, nick, mask := s.monitorStatus(a, t)
			switch {
			case online && !t.online:
				a.client.SendNumeric(rplMonOnline, mask)
			case !online && t.online:
				// Offline under the nick it was last online as.
				a.client.SendNumeric(rplMonOffline, cmp.Or(t.nick, t.name))
			}
			t.online = online
			if online {
				t.nick = nick // a change of case only is not told
			}
		}
	}
}
