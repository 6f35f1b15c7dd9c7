package session

import (
	"context"
	"errors"
	"net/http"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
)

// Knocking: a room whose join rule is "knock" is +iK (mapping.ChannelModes).
// KNOCK #chan [reason] asks to join it, as on InspIRCd and UnrealIRCd;
// someone's knock on a room where the account may invite arrives as a
// NOTICE saying how to let them in (INVITE) or refuse (KICK).

// rplKnockDelivered is UnrealIRCd's and InspIRCd's RPL_KNOCKDLVR;
// errKnockOnChan their ERR_KNOCKONCHAN.
const (
	rplKnockDelivered = "711"
	errKnockOnChan    = "714"
)

// cmdKnock knocks on a room by alias or room ID.
func (s *Session) cmdKnock(a *Attachment, out output, m *irc.Message) error {
	name, reason := m.Params[0], m.Param(1)
	if r := s.roomByChannel(name); r != nil {
		return ircreply.Numeric(errKnockOnChan, r.channel, "You're already on that channel")
	}
	target, ok := mapping.ParseChannel(name, s.user.Homeserver())
	if !ok {
		return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel: use #alias:server or !roomid:server")
	}
	s.request(a, out, "KNOCK", func(ctx context.Context) func() {
		req := &mautrix.ReqKnockRoom{Reason: reason}
		room := target.Alias.String()
		if target.RoomID != "" {
			room, req.Via = target.RoomID.String(), []string{target.Server}
		}
		_, err := s.cli.KnockRoom(ctx, room, req)
		return func() {
			if err != nil {
				s.reply(a, out, "KNOCK", knockError(name, err))
				return
			}
			out.SendNumeric(rplKnockDelivered, name, "Your KNOCK has been delivered: you will be invited (INVITE) if it is accepted")
		}
	})
	return nil
}

// knockError is the reply to a knock the homeserver refused.
func knockError(channel string, err error) error {
	text := matrixErrorText(err)
	var httpErr mautrix.HTTPError
	switch {
	case errors.Is(err, mautrix.MUnrecognized),
		errors.As(err, &httpErr) && httpErr.Response != nil &&
			(httpErr.Response.StatusCode == http.StatusNotFound || httpErr.Response.StatusCode == http.StatusMethodNotAllowed) &&
			!errors.Is(err, mautrix.MNotFound):
		return ircreply.Fail("KNOCK", "UNSUPPORTED", channel,
			"Cannot knock on "+channel+": your homeserver does not support knocking ("+text+")")
	case errors.Is(err, mautrix.MNotFound):
		return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, channel, "No such channel: "+text)
	case errors.Is(err, mautrix.MForbidden):
		return ircreply.Fail("KNOCK", "CANNOT_KNOCK", channel,
			"Cannot knock on "+channel+": "+text+" (only rooms that allow knocking, +K, take a KNOCK)")
	}
	return ircreply.Fail("KNOCK", "CANNOT_KNOCK", channel, "Cannot knock on "+channel+": "+text)
}

// knocking says whether user has knocked on r and waits for an answer; a
// KICK refuses them.
func (r *room) knocking(user id.UserID) bool {
	m := r.members[user]
	return m != nil && m.membership == event.MembershipKnock
}

// kick removes user from a room; for one who knocked, that refuses the
// knock. Dendrite (v0.15) refuses /kick for anyone not joined or invited,
// so a knock is refused with the leave membership a kick would make.
// Request worker.
func (s *Session) kick(ctx context.Context, roomID id.RoomID, user id.UserID, reason string, knocking bool) error {
	if !knocking {
		_, err := s.cli.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: user, Reason: reason})
		return err
	}
	_, err := s.cli.SendStateEvent(ctx, roomID, event.StateMember, user.String(),
		&event.MemberEventContent{Membership: event.MembershipLeave, Reason: reason})
	return err
}

// showKnock tells the clients that user knocked on r, if the account may
// invite there (only then can it answer). Owner goroutine.
func (s *Session) showKnock(r *room, user id.UserID, reason string) {
	if r.power != nil && r.power.GetUserLevel(s.user) < r.power.Invite() {
		return
	}
	if s.isIgnored(user) {
		return
	}
	// Every client with its burst: replay does not show knocks.
	s.broadcast(attached, func(a *Attachment, out output) {
		nick := s.nickOf(a, user)
		text := nick + " (" + string(user) + ") asks to join " + r.channel
		if reason != "" {
			text += ": " + reason
		}
		text += ". To let them in: /INVITE " + nick + " " + r.channel + "; to refuse: /KICK " + r.channel + " " + nick
		out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "NOTICE",
			Params: []string{r.channel, text}})
	})
}
