package session

import (
	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
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

// labeledResponse gathers the lines of a labeled command (and of what the
// command started: request results, a message's echo) for one client;
// ircreply.Response is the one collector both halves use. Owner goroutine
// only.
type labeledResponse = ircreply.Response

// labeledOf is the labeled response out gathers, if it is one.
func labeledOf(out output) *labeledResponse {
	resp, _ := out.(*labeledResponse)
	return resp
}
