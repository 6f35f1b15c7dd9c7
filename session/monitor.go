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
// presence is online or unavailable, offline means offline or unknown.
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
			a.monitor[irctext.Casefold(target)] = user
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
			delete(a.monitor, irctext.Casefold(target))
		}
	case "C":
		clear(a.monitor)
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

// online says whether a user counts as online for MONITOR.
func (s *Session) online(user id.UserID) bool {
	p, ok := s.presence[user]
	return ok && p.state != "" && p.state != "offline"
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
func (s *Session) showMonitorChange(user id.UserID, wasOnline bool) {
	isOnline := s.online(user)
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
