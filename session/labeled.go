package session

import (
	"strconv"

	"gopkg.in/irc.v4"
)

// labeled-response: the replies to a command the client labeled come back
// marked with its label: one line carries the label, several come in a
// labeled-response batch, none is an ACK. Replies can come late (from the
// request worker, or a message's echo through sync), so a response stays
// open until everything the command started has answered.

// labeledClient stands in for a client while its labeled command (and what
// the command started) runs, gathering the lines. Owner goroutine only.
type labeledClient struct {
	Client
	sess    *Session
	label   string
	lines   []*irc.Message
	pending int  // requests and echoes still to come
	handled bool // the command itself has run
	flushed bool
}

func (l *labeledClient) SendMessage(m *irc.Message) {
	if l.flushed {
		l.Client.SendMessage(m)
		return
	}
	l.lines = append(l.lines, m)
}

func (l *labeledClient) SendNumeric(code string, params ...string) {
	l.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: l.ServerName()}, Command: code, Params: append([]string{l.Nick()}, params...)})
}

func (l *labeledClient) SendNotice(text string) {
	l.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: l.ServerName()}, Command: "NOTICE", Params: []string{l.Nick(), text}})
}

// done marks one awaited part as finished and sends the response when
// nothing is left.
func (l *labeledClient) done() {
	l.pending--
	l.flush()
}

func (l *labeledClient) flush() {
	if !l.handled || l.pending > 0 || l.flushed {
		return
	}
	l.flushed = true
	server := &irc.Prefix{Name: l.ServerName()}
	switch len(l.lines) {
	case 0:
		l.Client.SendMessage(&irc.Message{Tags: irc.Tags{"label": l.label}, Prefix: server, Command: "ACK"})
	case 1:
		m := withTags(l.lines[0], irc.Tags{"label": l.label})
		l.Client.SendMessage(m)
	default:
		l.sess.batchSeq++
		ref := "lr" + strconv.FormatUint(l.sess.batchSeq, 36)
		l.Client.SendMessage(&irc.Message{Tags: irc.Tags{"label": l.label}, Prefix: server, Command: "BATCH",
			Params: []string{"+" + ref, "labeled-response"}})
		for _, m := range l.lines {
			// Lines of a batch inside the response keep their own batch
			// tag; that batch's opening and closing lines join ours.
			if _, inner := m.Tags["batch"]; !inner || m.Command == "BATCH" {
				m = withTags(m, irc.Tags{"batch": ref})
			}
			l.Client.SendMessage(m)
		}
		l.Client.SendMessage(&irc.Message{Prefix: server, Command: "BATCH", Params: []string{"-" + ref}})
	}
	l.lines = nil
}

// withTags is m with extra tags, leaving m (perhaps shared) unchanged.
func withTags(m *irc.Message, extra irc.Tags) *irc.Message {
	cp := *m
	cp.Tags = irc.Tags{}
	for k, v := range m.Tags {
		cp.Tags[k] = v
	}
	for k, v := range extra {
		cp.Tags[k] = v
	}
	return &cp
}

// within runs f with client a replaced by its labeled response, if any.
func (s *Session) within(a *Attachment, resp *labeledClient, f func()) {
	if resp == nil {
		f()
		return
	}
	saved := a.client
	a.client = resp
	defer func() { a.client = saved }()
	f()
}

// labeledOf is the response a client's current command gathers, if any.
func labeledOf(a *Attachment) *labeledClient {
	resp, _ := a.client.(*labeledClient)
	return resp
}
