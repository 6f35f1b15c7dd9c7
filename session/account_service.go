package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mxircd/mxircd/store"
)

// The service's account commands: PASSWORD, STATUS, DEVICES, LOGOUT,
// ALWAYSON and IDENTIFY (which only a connection that is not logged in
// needs; see ircd's login-pending state).

// splitArgs splits a service command's arguments as a shell would: words
// are separated by spaces; 'single quotes' keep everything, "double
// quotes" keep everything but \" and \\, and outside quotes a backslash
// keeps the next character. So a password with spaces is "my pass word".
func splitArgs(s string) ([]string, error) {
	var (
		args   []string
		word   strings.Builder
		inWord bool
		quote  rune // the quote we are in, 0 outside
	)
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			word.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				word.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("a %c quote is not closed", quote)
	case escaped:
		return nil, errors.New("a backslash ends the line; write \\\\ for a backslash")
	}
	if inWord {
		args = append(args, word.String())
	}
	return args, nil
}

// serviceArgs splits args, answering a malformed line itself.
func serviceArgs(reply func(string), args string) ([]string, bool) {
	words, err := splitArgs(args)
	if err != nil {
		reply("Cannot read that: " + err.Error() + ".")
		return nil, false
	}
	return words, true
}

// secure says whether the client's connection is TLS or from this
// machine, as the IRC side reports it.
func (a *Attachment) secure() bool {
	sc, ok := a.client.(interface{ Secure() bool })
	return ok && sc.Secure()
}

// App passwords are between 8 and 256 bytes: long enough not to be
// guessed from the failed-login allowance, short enough for one SASL line.
const (
	minAppPassword = 8
	maxAppPassword = 256
)

func (s *Session) servicePassword(a *Attachment, out output, reply func(string), args string) {
	words, ok := serviceArgs(reply, args)
	if !ok {
		return
	}
	usage := "Usage: " + serviceCommands["PASSWORD"].usage
	if len(words) == 0 {
		reply(usage)
		return
	}
	var password string
	switch strings.ToUpper(words[0]) {
	case "SET":
		if len(words) != 2 {
			reply(usage + " (quote a password with spaces)")
			return
		}
		password = words[1]
		switch {
		case !a.secure():
			reply("Not over this connection: it is neither TLS nor from this machine, so the password could be read on the way. Connect with TLS and try again.")
			return
		case len(password) < minAppPassword || len(password) > maxAppPassword || !utf8.ValidString(password):
			reply(fmt.Sprintf("An app password is %d to %d bytes of text.", minAppPassword, maxAppPassword))
			return
		}
	case "CLEAR":
		if len(words) != 1 {
			reply(usage)
			return
		}
	default:
		reply(usage)
		return
	}
	user := s.user
	auth := s.mgr.auth
	s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
		err := auth.SetAppPassword(ctx, user, password)
		return func() {
			switch {
			case errors.Is(err, store.ErrNotFound):
				reply("Your account is not stored on this gateway yet; try again in a moment.")
			case err != nil:
				s.log.Error("could not save the app password", "err", err)
				reply("Could not save it: the gateway's database failed.")
			case password == "":
				reply("Your app password is removed. SASL PLAIN and IDENTIFY take your Matrix password only.")
			default:
				reply(fmt.Sprintf("Your app password is set. SASL PLAIN, PASS and IDENTIFY now take it for %s, as well as your Matrix password if you have one.", user))
			}
		}
	})
}
