package session

import (
	"strconv"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/mapping"
)

// output is where renderers and command handlers put one client's lines:
// the connection itself (a Client), the labeled response of the command
// being answered, or a past event's stand-in that tags each line with the
// event's time and ID. Who writes to a client is decided by the caller
// passing one, not by swapping what the attachment points at. Owner
// goroutine.
type output interface {
	SendMessage(m *irc.Message)
	SendNumeric(code string, params ...string)
	SendNotice(text string)
}

// labeled-response: the replies to a command the client labeled come back
// marked with its label: one line carries the label, several come in a
// labeled-response batch, none is an ACK. Replies can come late (from the
// request worker, or a message's echo through sync), so a response stays
// open until everything the command started has answered.

// labeledResponse gathers the lines of a labeled command (and of what the
// command started) for one client. Owner goroutine only.
type labeledResponse struct {
	conn    Client
	sess    *Session
	label   string
	lines   []*irc.Message
	pending int  // requests and echoes still to come
	handled bool // the command itself has run
	flushed bool
}

func (l *labeledResponse) SendMessage(m *irc.Message) {
	if l.flushed {
		l.conn.SendMessage(m)
		return
	}
	l.lines = append(l.lines, m)
}

func (l *labeledResponse) SendNumeric(code string, params ...string) {
	l.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: l.conn.ServerName()}, Command: code, Params: append([]string{l.conn.Nick()}, params...)})
}

func (l *labeledResponse) SendNotice(text string) {
	l.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: l.conn.ServerName()}, Command: "NOTICE", Params: []string{l.conn.Nick(), text}})
}

// done marks one awaited part as finished and sends the response when
// nothing is left.
func (l *labeledResponse) done() {
	l.pending--
	l.flush()
}

func (l *labeledResponse) flush() {
	if !l.handled || l.pending > 0 || l.flushed {
		return
	}
	l.flushed = true
	l.sess.batchSeq++
	for _, m := range mapping.LabeledResponse(l.label, l.conn.ServerName(), "lr"+strconv.FormatUint(l.sess.batchSeq, 36), l.lines) {
		l.conn.SendMessage(m)
	}
	l.lines = nil
}

// labeledOf is the labeled response out gathers, if it is one.
func labeledOf(out output) *labeledResponse {
	resp, _ := out.(*labeledResponse)
	return resp
}
