package ircd

import "gopkg.in/irc.v4"

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

// forward hands a command to the session, which answers it (and labels
// the answer) itself.
func (c *Conn) forward(m *irc.Message) {
	c.forwarded = true
	c.posted++
	c.handler.HandleCommand(m)
}
