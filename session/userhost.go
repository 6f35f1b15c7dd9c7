package session

import (
	"context"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
)

// USERHOST tells, for up to five nicks, each one's user@host and whether
// they are away: "nick=+user@host" (here) or "nick=-user@host" (away),
// unknown nicks left out. A nick of a shared room is answered from what
// the session knows; a bare nick nobody here holds is looked up as a user
// of the server (profile, then presence), as an IRC server knows everyone
// on its network.

// maxUserhostNicks is how many nicks one USERHOST answers (RFC 2812).
const maxUserhostNicks = 5

func (s *Session) cmdUserhost(a *Attachment, out output, m *irc.Message) error {
	nicks := m.Params
	if len(nicks) > maxUserhostNicks {
		nicks = nicks[:maxUserhostNicks]
	}
	type lookup struct {
		nick, entry string
		user        id.UserID // to look up; "" when known here
	}
	entries := make([]lookup, 0, len(nicks))
	var toLookUp bool
	for _, nick := range nicks {
		if user, ok := s.userByNick(a, nick); ok {
			_, away := s.awayOf(user)
			entries = append(entries, lookup{nick: nick, entry: userhostEntry(s.prefixOf(a, user), away)})
		} else if user, ok := s.matrixUserNamed(nick); ok {
			entries = append(entries, lookup{nick: nick, user: user})
			toLookUp = true
		}
	}
	send := func() {
		var found []string
		for _, e := range entries {
			if e.entry != "" {
				found = append(found, e.entry)
			}
		}
		out.SendNumeric(irc.RPL_USERHOST, strings.Join(found, " "))
	}
	if !toLookUp {
		send()
		return nil
	}
	s.request(a, out, "USERHOST", func(ctx context.Context) func() {
		for i, e := range entries {
			if e.user == "" {
				continue
			}
			if _, err := s.cli.GetProfile(ctx, e.user); err != nil {
				continue // unknown (or unknowable) nicks are left out
			}
			// Away as WHOIS and WHO say it (presence.away): unavailable or
			// offline; no presence known reads as here.
			_, away := s.presenceOf(ctx, e.user).away()
			u, h := mapping.UserHost(e.user)
			entries[i].entry = userhostEntry(&irc.Prefix{Name: e.nick, User: u, Host: h}, away)
		}
		return send
	})
	return nil
}

// userhostEntry is one USERHOST reply: nick=+user@host, - when away.
func userhostEntry(p *irc.Prefix, away bool) string {
	sign := "+"
	if away {
		sign = "-"
	}
	return p.Name + "=" + sign + p.User + "@" + p.Host
}
