package ircd

import (
	"strconv"

	"gopkg.in/irc.v4"
)

// localResponse gathers the replies to a labeled command that ircd answers
// itself. Reader goroutine only.
type localResponse struct {
	label string
	lines []*irc.Message
}

// reply sends a line that answers the command being dispatched: into its
// labeled response when there is one. Reader goroutine only; other
// goroutines use SendMessage.
func (c *Conn) reply(m *irc.Message) {
	if c.resp != nil {
		c.resp.lines = append(c.resp.lines, m)
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
	c.handler.HandleCommand(m)
}

// flushResponse sends a labeled response: ACK for no lines, the line with
// the label for one, a labeled-response batch for more.
func (c *Conn) flushResponse(r *localResponse) {
	server := &irc.Prefix{Name: c.srv.cfg.ServerName}
	switch len(r.lines) {
	case 0:
		c.SendMessage(&irc.Message{Tags: irc.Tags{"label": r.label}, Prefix: server, Command: "ACK"})
	case 1:
		c.SendMessage(tagged(r.lines[0], "label", r.label))
	default:
		c.batchSeq++
		ref := "L" + strconv.Itoa(c.batchSeq)
		c.SendMessage(&irc.Message{Tags: irc.Tags{"label": r.label}, Prefix: server, Command: "BATCH", Params: []string{"+" + ref, "labeled-response"}})
		for _, m := range r.lines {
			c.SendMessage(tagged(m, "batch", ref))
		}
		c.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"-" + ref}})
	}
}

func tagged(m *irc.Message, key, value string) *irc.Message {
	cp := *m
	cp.Tags = irc.Tags{key: value}
	for k, v := range m.Tags {
		cp.Tags[k] = v
	}
	cp.Tags[key] = value
	return &cp
}
