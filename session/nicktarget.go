package session

import (
	"context"
	"errors"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/mapping"
)

// A PRIVMSG to a nick nobody in a shared room has may still be meant for
// a Matrix user: on IRC anyone on the network can be messaged. The nick
// is taken as a user of the configured server (matrix.server_name, or
// the account's own), who must exist there; then the message opens a DM
// as one to a Matrix ID does.

// userOnServer is the Matrix user a bare nick names on the server, if the
// nick is a valid localpart.
func (s *Session) userOnServer(nick string) (id.UserID, bool) {
	if strings.ContainsAny(nick, ":@!#") {
		return "", false
	}
	server := s.mgr.cfg.ServerName
	if server == "" {
		server = s.user.Homeserver()
	}
	// Localparts are lower case (a registration of "Bob" makes @bob), so
	// the nick is too.
	user, ok := mapping.ParseAccount(strings.ToLower(nick), server)
	if !ok || id.ValidateUserLocalpart(user.Localpart()) != nil {
		return "", false
	}
	return user, true
}

// matrixUserNamed is the Matrix user a nick nobody in a shared room holds
// may name: a Matrix ID as typed, the account of a client on this
// gateway using the nick (an IRC network's nicks are its clients'), or
// the user of that name on the server.
func (s *Session) matrixUserNamed(nick string) (id.UserID, bool) {
	if !strings.HasPrefix(nick, "@") {
		if holder, _, ok := s.mgr.here.nickHolder(irctext.Casefold(nick)); ok {
			return holder, true
		}
	}
	return s.serverUserNamed(nick)
}

// serverUserNamed is matrixUserNamed without the clients here: a Matrix
// ID as typed, or a bare nick on the server.
func (s *Session) serverUserNamed(nick string) (id.UserID, bool) {
	if user, _ := mapping.MaskUser(nick); user != "" && strings.HasPrefix(nick, "@") {
		return user, true
	}
	return s.userOnServer(nick)
}

// errNoSuchNickWhois is WHOIS's answer for a nick nobody has: the error,
// then the end of the list, as WHOIS always ends.
func errNoSuchNickWhois(nick string) error {
	return errors.Join(ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel"),
		ircreply.Numeric(irc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list"))
}

// whoisProfile answers WHOIS of a Matrix user who shares no room with the
// account from their profile, as an IRC server answers WHOIS of anyone on
// the network; a user the homeserver does not know is 401.
func (s *Session) whoisProfile(a *Attachment, out output, nick string, user id.UserID) {
	s.request(a, out, "WHOIS", func(ctx context.Context) func() {
		profile, err := s.cli.GetProfile(ctx, user)
		var away presence
		if err == nil {
			away = s.presenceOf(ctx, user)
		}
		return func() {
			switch {
			case errors.Is(err, mautrix.MNotFound):
				s.reply(a, out, "WHOIS", errNoSuchNickWhois(nick))
				return
			case err != nil:
				s.reply(a, out, "WHOIS", errors.Join(
					ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "Cannot tell whether "+string(user)+" exists: "+matrixErrorText(err)),
					ircreply.Numeric(irc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")))
				return
			}
			real := profile.DisplayName
			if real == "" {
				real = user.String()
			}
			u, h := mapping.UserHost(user)
			out.SendNumeric(irc.RPL_WHOISUSER, nick, u, h, "*", real)
			out.SendNumeric(irc.RPL_WHOISSERVER, nick, a.client.ServerName(), "via Matrix homeserver "+h)
			if msg, ok := away.away(); ok {
				out.SendNumeric(irc.RPL_AWAY, nick, msg)
			}
			out.SendNumeric(rplWhoisAccount, nick, s.accountName(user), "is logged in as")
			out.SendNumeric(irc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
		}
	})
}

// presenceOf asks the homeserver for the presence of a user the session
// has none of (one who shares no room), unless the user has a session on
// this gateway; none known on failure. Request
// worker only.
func (s *Session) presenceOf(ctx context.Context, user id.UserID) presence {
	if p, ok := s.mgr.here.lookup(user); ok {
		return p // first-hand (here.go)
	}
	p, err := s.cli.GetPresence(ctx, user)
	if err != nil {
		return presence{}
	}
	return presence{state: p.Presence, statusMsg: p.StatusMsg}
}

// sendToServerUser checks that user exists (their profile) and then sends
// to them as to a Matrix ID; a user the homeserver does not know is 401.
func (s *Session) sendToServerUser(a *Attachment, out output, nick string, user id.UserID, content *event.MessageEventContent, command string) {
	s.request(a, out, command, func(ctx context.Context) func() {
		_, err := s.cli.GetProfile(ctx, user)
		var away presence
		if err == nil && command != "NOTICE" {
			away = s.presenceOf(ctx, user)
		}
		return func() {
			switch {
			case err == nil:
				s.sendDirect(a, out, nick, user, content, command)
				if msg, ok := away.setAway(); ok {
					out.SendNumeric(irc.RPL_AWAY, nick, msg)
				}
			case command == "NOTICE": // never an automatic reply
			case errors.Is(err, mautrix.MNotFound):
				s.reply(a, out, command, ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "No such nick: give a nick you share a room with, or a Matrix ID"))
			default:
				s.reply(a, out, command, ircreply.Numeric(irc.ERR_NOSUCHNICK, nick, "Cannot tell whether "+string(user)+" exists: "+matrixErrorText(err)))
			}
		}
	})
}

// messageToSelf delivers a message the user sent to their own nick to
// each of the account's clients, as IRC servers do: the sending client
// gets the delivery, and with echo-message the echo first (in the
// command's labeled response), as irctest expects. tags are the
// message's client-only tags; text is left out when empty (TAGMSG).
func (s *Session) messageToSelf(a *Attachment, out output, command, text string, tags irc.Tags) {
	line := func(c *Attachment) *irc.Message {
		m := &irc.Message{Tags: tags, Prefix: s.prefixOf(c, s.user), Command: command, Params: []string{c.client.Nick()}}
		if command != "TAGMSG" {
			m.Params = append(m.Params, text)
		}
		return m
	}
	if a.client.HasCap("echo-message") {
		out.SendMessage(line(a))
		out = a.client
	}
	s.broadcast(answering(everyone, a, out), func(c *Attachment, out output) { out.SendMessage(line(c)) })
}
