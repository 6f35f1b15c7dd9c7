package session

import (
	"context"
	"errors"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
)

// WHOWAS <nick> [count [server]] asks who a nick belonged to. On IRC a
// nick is free again once its user quits, so servers keep a history of
// who held it. On Matrix a user does not vanish when their client
// disconnects: the user a nick names is still there, and there is no
// earlier holder to tell of. So WHOWAS answers with that user, as WHOIS
// does: a nick of a shared room is the member who holds it, a bare nick
// nobody here holds is a user of the server (a Matrix ID as typed), whose
// profile is looked up. There is one entry per nick, so every count, up
// to count or (non-positive) all, is that one entry; the one server is
// this one, whatever server is named.

func (s *Session) cmdWhowas(a *Attachment, out output, m *irc.Message) error {
	nick := m.Params[0]
	if nick == "" {
		return ircreply.Numeric(irc.ERR_NONICKNAMEGIVEN, "No nickname given")
	}
	if user, ok := s.userByNick(a, nick); ok {
		sendWhowas(a, out, s.nickOf(a, user), user, s.realName(user))
		return nil
	}
	user, ok := s.matrixUserNamed(nick)
	if !ok {
		return errWasNoSuchNick(nick, "There was no such nickname")
	}
	s.request(a, out, "WHOWAS", func(ctx context.Context) func() {
		profile, err := s.cli.GetProfile(ctx, user)
		return func() {
			switch {
			case errors.Is(err, mautrix.MNotFound):
				s.reply(a, out, "WHOWAS", errWasNoSuchNick(nick, "There was no such nickname"))
			case err != nil:
				s.reply(a, out, "WHOWAS", errWasNoSuchNick(nick, "Cannot tell whether "+string(user)+" exists: "+matrixErrorText(err)))
			default:
				real := profile.DisplayName
				if real == "" {
					real = user.String()
				}
				sendWhowas(a, out, nick, user, real)
			}
		}
	})
	return nil
}

// sendWhowas is WHOWAS's entry for user, with the user and host others
// see and the display name as the real name (as WHOIS's 311), this IRC
// server as the server (as WHOIS's 312), and the end of the list.
func sendWhowas(a *Attachment, out output, nick string, user id.UserID, real string) {
	u, h := mapping.UserHost(user)
	out.SendNumeric(irc.RPL_WHOWASUSER, nick, u, h, "*", real)
	out.SendNumeric(irc.RPL_WHOISSERVER, nick, a.client.ServerName(), "via Matrix homeserver "+h)
	out.SendNumeric(irc.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")
}

// errWasNoSuchNick is WHOWAS's answer for a nick that names no one: 406,
// then the end of the list, which every WHOWAS ends with.
func errWasNoSuchNick(nick, text string) error {
	return errors.Join(ircreply.Numeric(irc.ERR_WASNOSUCHNICK, nick, text),
		ircreply.Numeric(irc.RPL_ENDOFWHOWAS, nick, "End of WHOWAS"))
}
