package ircd

import (
	"strings"

	"gopkg.in/irc.v4"
)

// reply sends a line that answers the command being dispatched: into its
// labeled response when there is one. Reader goroutine only; other
// goroutines use SendMessage.
func (c *Conn) reply(m *irc.Message) {
	if c.resp != nil {
		c.resp.SendMessage(m)
		return
	}
	c.SendMessage(m)
}

func (c *Conn) replyNumeric(code string, params ...string) {
	c.reply(&irc.Message{Prefix: &irc.Prefix{Name: c.srv.cfg.ServerName}, Command: code, Params: append([]string{c.Nick()}, params...)})
}

func (c *Conn) replyNotice(text string) {
	c.reply(&irc.Message{Prefix: &irc.Prefix{Name: c.srv.cfg.ServerName}, Command: "NOTICE", Params: []string{c.Nick(), text}})
}

// userHoster is what a Handler may tell of the user and host others see
// for its account (the session: nick!localpart@server).
type userHoster interface {
	UserHost() (user, host string)
}

// selfPrefix is the client's own nick!user@host, as others see it: from
// the handler when it knows, else the account's localpart (or USER name)
// and the client's address. Reader goroutine.
func (c *Conn) selfPrefix() *irc.Prefix {
	p := &irc.Prefix{Name: c.Nick(), User: c.Username(), Host: hostOf(c.RemoteAddr())}
	if c.handler == nil {
		return p
	}
	if uh, ok := c.handler.(userHoster); ok {
		p.User, p.Host = uh.UserHost()
		return p
	}
	p.User, _, _ = strings.Cut(strings.TrimPrefix(c.handler.Account(), "@"), ":")
	return p
}

// forward hands a command to the session, which answers it (and labels
// the answer) itself.
func (c *Conn) forward(m *irc.Message) {
	c.forwarded = true
	c.posted++
	c.handler.HandleCommand(m)
}
