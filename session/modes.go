package session

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
)

// cmdMode answers a channel mode query or changes modes: o and v become the
// user's power level, m and t the levels for messages and topics, i and K
// the join rule (invite, knock), b bans. The homeserver decides; a refusal is 482.
func (s *Session) cmdMode(a *Attachment, out output, m *irc.Message) error {
	r := s.roomByChannel(m.Params[0])
	if r == nil {
		s.notOnChannel(a, out, "MODE", m.Params[0])
		return nil
	}
	if len(m.Params) == 1 {
		s.sendChannelModes(a, out, r)
		return nil
	}
	changes, unknown := mapping.ParseModeChanges(m.Params[1], m.Params[2:])
	for _, c := range unknown {
		s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_UNKNOWNMODE, string(c), "is not a channel mode mxircd can change"))
	}
	power, err := mapping.NewPowerEdit(r.powerRaw)
	if err != nil {
		return ircreply.Fail("MODE", "UNREADABLE_POWER_LEVELS", r.channel, "Cannot read the power levels of "+r.channel+": "+err.Error())
	}
	powerChanged := false
	joinRule := r.joinRule
	type ban struct {
		user id.UserID
		add  bool
	}
	var bans []ban
	for _, ch := range changes {
		switch ch.Mode {
		case 'b':
			if ch.Arg == "" {
				s.sendBanList(a, out, r)
				continue
			}
			user, ok := s.userForMask(a, ch.Arg)
			if _, nick := mapping.MaskUser(ch.Arg); !ok && nick != "" {
				// A nick nobody here holds: the user of that name on the
				// server, as PRIVMSG and WHOIS take it (a ban needs no
				// shared room; SILENCE, which asks for known users, does).
				user, ok = s.userOnServer(nick)
			}
			if !ok {
				s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_NOSUCHNICK, ch.Arg, "No such nick: give a nick, a Matrix ID or *!localpart@server"))
				continue
			}
			bans = append(bans, ban{user, ch.Add})
		case 'o', 'v':
			if ch.Arg == "" {
				s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters"))
				continue
			}
			user, ok := s.userByNick(a, ch.Arg)
			if !ok {
				// A user of the server sharing no room is not on it
				// either: 441 if they exist, 401 if not.
				if user, ok = s.userOnServer(ch.Arg); ok {
					s.notInChannelOrNoSuchNick(a, out, ch.Arg, user, r.channel)
					continue
				}
			}
			if !ok {
				s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_NOSUCHNICK, ch.Arg, "No such nick/channel"))
				continue
			}
			if !r.joined(user) {
				s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_USERNOTINCHANNEL, ch.Arg, r.channel, "They aren't on that channel"))
				continue
			}
			powerChanged = power.ApplyMode(ch, user, s.opLevel()) || powerChanged
		case 'n':
			// Only members can send to a Matrix room: +n is always on.
			if !ch.Add {
				s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_UNKNOWNMODE, "n", "is always set: only members can send to a Matrix room"))
			}
		case 'm', 't':
			powerChanged = power.ApplyMode(ch, "", s.opLevel()) || powerChanged
		case 'i':
			switch {
			case !ch.Add:
				joinRule = event.JoinRulePublic
			case joinRule != event.JoinRuleKnock:
				joinRule = event.JoinRuleInvite
			}
		case 's', 'p':
			// Secret and private both mean: not in the room directory.
			s.setDirectoryVisibility(a, out, r, ch.Add)
		case 'K':
			// Knocking: invite-only, but anyone may ask (KNOCK).
			if ch.Add {
				joinRule = event.JoinRuleKnock
			} else if joinRule == event.JoinRuleKnock {
				joinRule = event.JoinRuleInvite
			}
		}
	}
	joinRuleChanged := joinRule != r.joinRule && !(joinRule == event.JoinRulePublic && r.joinRule == "")
	if !powerChanged && !joinRuleChanged && len(bans) == 0 {
		return nil
	}
	roomID, channel := r.id, r.channel
	powerJSON := power.JSON()
	s.roomRequest(a, out, "MODE", roomID, func(ctx context.Context) func() {
		var errs []error
		if powerChanged {
			_, err := s.cli.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", json.RawMessage(powerJSON))
			errs = append(errs, err)
		}
		if joinRuleChanged {
			_, err := s.cli.SendStateEvent(ctx, roomID, event.StateJoinRules, "", &event.JoinRulesEventContent{JoinRule: joinRule})
			errs = append(errs, err)
		}
		for _, b := range bans {
			var err error
			if b.add {
				_, err = s.cli.BanUser(ctx, roomID, &mautrix.ReqBanUser{UserID: b.user})
			} else {
				_, err = s.cli.UnbanUser(ctx, roomID, &mautrix.ReqUnbanUser{UserID: b.user})
			}
			errs = append(errs, err)
		}
		return func() {
			for _, err := range errs {
				if err != nil {
					s.reply(a, out, "MODE", s.refusal(channel, "change modes", err))
				}
			}
			// What did change comes back through sync as MODE lines.
		}
	})
	return nil
}

func isForbidden(err error) bool { return errors.Is(err, mautrix.MForbidden) }

// refusal is the reply to a homeserver's refusal to change a channel.
func (s *Session) refusal(channel, what string, err error) error {
	s.logRefusal(what, err)
	text := matrixErrorText(err)
	if errors.Is(err, mautrix.MForbidden) {
		return ircreply.Numeric(irc.ERR_CHANOPRIVSNEEDED, channel, forbiddenText(what, err))
	}
	return ircreply.Fail("*", "HOMESERVER_REFUSED", channel, "Cannot "+what+" in "+channel+": "+text)
}

// userForMask finds the Matrix user a mask means: a Matrix ID, a nick of
// a shared room, or a *!localpart@server mask.
func (s *Session) userForMask(a *Attachment, mask string) (id.UserID, bool) {
	if user, nick := mapping.MaskUser(mask); user != "" {
		return user, true
	} else if nick != "" {
		return s.userByNick(a, nick)
	}
	return "", false
}

func (s *Session) cmdKick(a *Attachment, out output, m *irc.Message) error {
	r := s.roomByChannel(m.Params[0])
	if r == nil {
		return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, m.Params[0], "No such channel")
	}
	reason := m.Param(2)
	for _, nick := range strings.Split(m.Params[1], ",") {
		user, ok := s.userByNick(a, nick)
		switch {
		case !ok:
			s.reply(a, out, "KICK", ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel"))
			continue
		case !r.joined(user) && !r.knocking(user):
			s.reply(a, out, "KICK", ircreply.Numeric(irc.ERR_USERNOTINCHANNEL, nick, r.channel, "They aren't on that channel"))
			continue
		}
		roomID, channel, knocking := r.id, r.channel, r.knocking(user)
		s.roomRequest(a, out, "KICK", roomID, func(ctx context.Context) func() {
			err := s.kick(ctx, roomID, user, reason, knocking)
			return func() {
				if err != nil {
					s.reply(a, out, "KICK", s.refusal(channel, "kick", err))
				}
				// The KICK itself comes back through sync.
			}
		})
	}
	return nil
}

func (s *Session) cmdInvite(a *Attachment, out output, m *irc.Message) error {
	nick, name := m.Params[0], m.Params[1]
	r := s.roomByChannel(name)
	if r == nil {
		// Only a member can invite, so whether it exists or not, the
		// channel is one the user is not on.
		return ircreply.Numeric(irc.ERR_NOTONCHANNEL, name, "You're not on that channel")
	}
	user, ok := s.userByNick(a, nick)
	if !ok {
		if mx, _ := mapping.MaskUser(nick); mx != "" {
			user, ok = mx, true
		}
	}
	// A bare nick nobody here holds may be a user of the server, who must
	// exist there (their profile) to be invited.
	checkExists := false
	if !ok {
		user, ok = s.userOnServer(nick)
		checkExists = ok
	}
	if !ok {
		return ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "No such nick: give a nick or a Matrix ID")
	}
	if r.joined(user) {
		return ircreply.Numeric(irc.ERR_USERONCHANNEL, nick, r.channel, "is already on channel")
	}
	roomID, channel := r.id, r.channel
	s.roomRequest(a, out, "INVITE", roomID, func(ctx context.Context) func() {
		if checkExists {
			if _, err := s.cli.GetProfile(ctx, user); errors.Is(err, mautrix.MNotFound) {
				return func() {
					s.reply(a, out, "INVITE", ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "No such nick: give a nick or a Matrix ID"))
				}
			}
		}
		_, err := s.cli.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: user})
		return func() {
			if err != nil {
				s.reply(a, out, "INVITE", s.refusal(channel, "invite", err))
				return
			}
			out.SendNumeric(irc.RPL_INVITING, nick, channel)
		}
	})
	return nil
}

// showPowerChange turns a power-levels or join-rules change into MODE lines:
// member prefixes that changed, then channel modes that changed.
func (s *Session) showModeChange(r *room, sender id.UserID, oldPower *event.PowerLevelsEventContent, oldJoinRule event.JoinRule) {
	var changes []mapping.ModeChange
	for user, m := range r.members {
		if m.membership != event.MembershipJoin {
			continue
		}
		before, after := mapping.MemberPrefix(oldPower, user, s.opLevel()), mapping.MemberPrefix(r.power, user, s.opLevel())
		if before == after {
			continue
		}
		if before != "" {
			changes = append(changes, mapping.ModeChange{Add: false, Mode: prefixMode(before), Arg: string(user)})
		}
		if after != "" {
			changes = append(changes, mapping.ModeChange{Add: true, Mode: prefixMode(after), Arg: string(user)})
		}
	}
	before, after := mapping.ChannelModes(oldPower, oldJoinRule), mapping.ChannelModes(r.power, r.joinRule)
	for _, c := range []byte("iKmnt") {
		had, has := strings.IndexByte(before, c) >= 0, strings.IndexByte(after, c) >= 0
		if had != has {
			changes = append(changes, mapping.ModeChange{Add: has, Mode: c})
		}
	}
	s.broadcastModes(r, sender, changes)
}

func prefixMode(prefix string) byte {
	if prefix == "@" {
		return 'o'
	}
	return 'v'
}

// broadcastModes sends MODE lines with at most four arguments each. Args
// of o and v are user IDs here, shown as each client's nick for them; b
// takes a mask.
func (s *Session) broadcastModes(r *room, sender id.UserID, changes []mapping.ModeChange) {
	if len(changes) == 0 {
		return
	}
	s.broadcastIn(r, "", live, func(a *Attachment, out output) {
		for start := 0; start < len(changes); {
			var modes strings.Builder
			var args []string
			sign := byte(0)
			end := start
			for ; end < len(changes) && len(args) < 4; end++ {
				ch := changes[end]
				want := byte('-')
				if ch.Add {
					want = '+'
				}
				if want != sign {
					modes.WriteByte(want)
					sign = want
				}
				modes.WriteByte(ch.Mode)
				switch ch.Mode {
				case 'o', 'v':
					args = append(args, s.nickOf(a, id.UserID(ch.Arg)))
				case 'b':
					args = append(args, ch.Arg)
				}
			}
			out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, sender), Command: "MODE",
				Params: append([]string{r.channel, modes.String()}, args...)})
			start = end
		}
	})
}

// banMask is how a banned Matrix user is shown in MODE +b and the ban list.
func banMask(user id.UserID) string {
	u, h := mapping.UserHost(user)
	return "*!" + u + "@" + h
}

// sendBanList lists a room's bans (367, 368); for a room whose member list
// is partial (bans of people sync never showed are not in it), once the
// full list has come, as for NAMES.
func (s *Session) sendBanList(a *Attachment, out output, r *room) {
	channel := r.channel
	s.withAllMembers(a, out, "MODE", r, func(r *room) {
		if r == nil {
			out.SendNumeric(irc.RPL_ENDOFBANLIST, channel, "End of channel ban list")
			return
		}
		s.writeBanList(out, r)
	})
}

func (s *Session) writeBanList(out output, r *room) {
	var users []id.UserID
	for user, mem := range r.members {
		if mem.membership == event.MembershipBan {
			users = append(users, user)
		}
	}
	sortUsers(users)
	for _, user := range users {
		out.SendNumeric(irc.RPL_BANLIST, r.channel, banMask(user))
	}
	out.SendNumeric(irc.RPL_ENDOFBANLIST, r.channel, "End of channel ban list")
}

// opLevel is the power level shown as @ and given by MODE +o.
func (s *Session) opLevel() int {
	if s.mgr.cfg.OpLevel > 0 {
		return s.mgr.cfg.OpLevel
	}
	return mapping.OpLevel
}

// notInChannelOrNoSuchNick answers a MODE +o/+v of a user of the server
// who shares no room with the account: 441 when they exist, 401 when the
// homeserver knows no such user.
func (s *Session) notInChannelOrNoSuchNick(a *Attachment, out output, nick string, user id.UserID, channel string) {
	s.request(a, out, "MODE", func(ctx context.Context) func() {
		_, err := s.cli.GetProfile(ctx, user)
		return func() {
			if errors.Is(err, mautrix.MNotFound) {
				s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel"))
				return
			}
			s.reply(a, out, "MODE", ircreply.Numeric(irc.ERR_USERNOTINCHANNEL, nick, channel, "They aren't on that channel"))
		}
	})
}
