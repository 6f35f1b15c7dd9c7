package mapping

import (
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// OpLevel is the default power level at and above which a user is shown as
// a channel operator (@); a user above the room's default level but below
// it is voiced (+). The gateway's matrix.op_level setting overrides it.
const OpLevel = 50

// MemberPrefix returns the IRC status prefixes for a user's power level:
// "@" for operators (level op and above), "+" for voiced users, "" otherwise. It gives one prefix
// at most, the highest, also to clients with multi-prefix.
func MemberPrefix(pl *event.PowerLevelsEventContent, user id.UserID, op int) string {
	return memberPrefixes(pl, user, op, false)
}

// MemberPrefixes is MemberPrefix for multi-prefix clients: an operator who
// is also above the room's default level is "@+".
func MemberPrefixes(pl *event.PowerLevelsEventContent, user id.UserID, op int) string {
	return memberPrefixes(pl, user, op, true)
}

func memberPrefixes(pl *event.PowerLevelsEventContent, user id.UserID, op int, all bool) string {
	if pl == nil {
		return ""
	}
	level := pl.GetUserLevel(user)
	switch {
	case level >= op && all && level > pl.UsersDefault:
		return "@+"
	case level >= op:
		return "@"
	case level > pl.UsersDefault:
		return "+"
	}
	return ""
}

// ChannelModes renders a room's state as IRC channel modes:
// +n always (only members can send), +t when setting the topic needs more
// than the default level, +i for invite-only rooms (and +K too when anyone
// may knock, the Matrix join rule "knock"), +m when speaking needs more
// than the default level.
func ChannelModes(pl *event.PowerLevelsEventContent, joinRule event.JoinRule) string {
	var b strings.Builder
	b.WriteByte('+')
	if joinRule == event.JoinRuleInvite || joinRule == event.JoinRuleKnock {
		b.WriteByte('i')
	}
	if joinRule == event.JoinRuleKnock {
		b.WriteByte('K')
	}
	if pl != nil && pl.GetEventLevel(event.EventMessage) > pl.UsersDefault {
		b.WriteByte('m')
	}
	b.WriteByte('n')
	if pl == nil || pl.GetEventLevel(event.StateTopic) > pl.UsersDefault {
		b.WriteByte('t')
	}
	return b.String()
}
