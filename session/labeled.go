package session

import (
	"strconv"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/mapping"
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
	l.sess.batchSeq++
	for _, m := range mapping.LabeledResponse(l.label, l.ServerName(), "lr"+strconv.FormatUint(l.sess.batchSeq, 36), l.lines) {
		l.Client.SendMessage(m)
	}
	l.lines = nil
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
