package ircreply

import (
	"strconv"
	"sync/atomic"

	"gopkg.in/irc.v4"
)

// Conn is the connection a labeled response is written to.
type Conn interface {
	SendMessage(m *irc.Message)
	ServerName() string
	Nick() string
}

// Response gathers the replies to a command the client labeled (IRCv3
// labeled-response) and sends them, framed by LabeledResponse,
// once the command has run and everything it started has answered:
// replies can come late (a homeserver request's result, a message's echo),
// so each of those holds the response open. A line that comes after the
// response was sent goes to the connection as it is. A Response belongs to
// one goroutine at a time: the one answering the command.
type Response struct {
	conn    Conn
	label   string
	batch   bool // the client takes batches
	lines   []*irc.Message
	pending int  // parts still to come
	handled bool // the command itself has run
	flushed bool
}

// NewResponse starts the response to the command labeled label. batch
// says the client negotiated batch: without it, a response of one line or
// none is labeled as usual, and one of several lines has the label on its
// first line only, as the lines cannot be framed.
func NewResponse(conn Conn, label string, batch bool) *Response {
	return &Response{conn: conn, label: label, batch: batch}
}

func (r *Response) SendMessage(m *irc.Message) {
	if r.flushed {
		r.conn.SendMessage(m)
		return
	}
	r.lines = append(r.lines, m)
}

func (r *Response) SendNumeric(code string, params ...string) {
	r.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: r.conn.ServerName()}, Command: code, Params: append([]string{r.conn.Nick()}, params...)})
}

func (r *Response) SendNotice(text string) {
	r.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: r.conn.ServerName()}, Command: "NOTICE", Params: []string{r.conn.Nick(), text}})
}

// Hold keeps the response open for one more part (a request's result, an
// echo); Done marks one as come.
func (r *Response) Hold() { r.pending++ }

// Done marks a held part as come, and sends the response when nothing is
// left.
func (r *Response) Done() {
	r.pending--
	r.flush()
}

// Finish marks the command itself as run: the response goes out now, or
// when the last held part is done.
func (r *Response) Finish() {
	r.handled = true
	r.flush()
}

// Unlabeled sends what was gathered without the label, for a command
// answered elsewhere (which labels its own response).
func (r *Response) Unlabeled() {
	r.flushed = true
	for _, m := range r.lines {
		r.conn.SendMessage(m)
	}
	r.lines = nil
}

// batchSeq names labeled-response batches; a name only has to be unique
// among one connection's open batches.
var batchSeq atomic.Uint64

func (r *Response) flush() {
	if !r.handled || r.pending > 0 || r.flushed {
		return
	}
	r.flushed = true
	if !r.batch && len(r.lines) > 1 {
		// The lines cannot be framed: the label goes on the first, as
		// labeled-response allows without batch.
		for i, m := range r.lines {
			if i == 0 {
				m = withTag(m, "label", r.label)
			}
			r.conn.SendMessage(m)
		}
		r.lines = nil
		return
	}
	ref := "lr" + strconv.FormatUint(batchSeq.Add(1), 36)
	for _, m := range LabeledResponse(r.label, r.conn.ServerName(), ref, r.lines) {
		r.conn.SendMessage(m)
	}
	r.lines = nil
}
