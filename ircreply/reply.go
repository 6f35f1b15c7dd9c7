// Package ircreply is how both halves of mxircd answer an IRC command: the
// reply-carrying error a command handler returns, the one rule that turns
// it into a line (a numeric, or FAIL or NOTICE), and the collector of a
// labeled response. It knows no Matrix types, so ircd and session both use
// it without knowing each other.
package ircreply

import (
	"errors"
	"strings"

	"gopkg.in/irc.v4"
)

// Output is where one client's lines go: the connection, or a response
// gathering them.
type Output interface {
	SendMessage(m *irc.Message)
	SendNumeric(code string, params ...string)
	SendNotice(text string)
}

// Client is what the reply rule asks of the client a reply is for.
type Client interface {
	HasCap(name string) bool
	ServerName() string
}

// NumericError is an error whose reply is a numeric: the server is its
// source and the client's nick its first parameter, then Params.
type NumericError struct {
	Code   string
	Params []string
}

// Numeric makes an error that is answered with a numeric.
func Numeric(code string, params ...string) error {
	return &NumericError{Code: code, Params: params}
}

func (e *NumericError) Error() string { return e.Code + " " + strings.Join(e.Params, " ") }

// FailError is an error that has no numeric: it is answered with
// FAIL <command> <code> [context...] :<text>, or with the text in a
// NOTICE for a client that takes no standard replies.
type FailError struct {
	Command string
	Code    string
	Context []string // parameters naming what failed (a channel, a msgid)
	Text    string
}

// Fail makes an error answered with FAIL or a NOTICE. context holds zero or
// more space-separated parameters.
func Fail(command, code, context, text string) error {
	return &FailError{Command: command, Code: code, Context: strings.Fields(context), Text: text}
}

func (e *FailError) Error() string { return e.Command + " " + e.Code + ": " + e.Text }

// failAlways lists the commands whose own specification answers errors
// with standard replies, so every client that can send them takes FAIL.
var failAlways = map[string]bool{
	"REDACT": true, "TAGMSG": true, "SETNAME": true, "CHATHISTORY": true, "MARKREAD": true,
	"BATCH":    true,                 // draft/multiline's errors are FAIL BATCH
	"REGISTER": true, "VERIFY": true, // draft/account-registration
	"RENAME": true, // draft/channel-rename
}

// StandardReply writes a FAIL, WARN or NOTE to a client that takes
// standard replies (or for a command whose specification answers with
// them), and the text as a NOTICE to any other. This is the one place the
// rule lives.
func StandardReply(out Output, c Client, kind, command, code string, context []string, text string) {
	if !c.HasCap("standard-replies") && !failAlways[command] {
		out.SendNotice(text)
		return
	}
	params := make([]string, 0, len(context)+3)
	params = append(params, command, code)
	params = append(params, context...)
	out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: c.ServerName()}, Command: kind, Params: append(params, text)})
}

// Send writes the reply err carries to out, for client c. An errors.Join
// of replies is sent in order. An error that carries no reply is sent as
// FAIL <command> UNKNOWN_ERROR; its text is all the client learns.
func Send(out Output, c Client, command string, err error) {
	if err == nil {
		return
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			Send(out, c, command, e)
		}
		return
	}
	var num *NumericError
	if errors.As(err, &num) {
		out.SendNumeric(num.Code, num.Params...)
		return
	}
	var fail *FailError
	if errors.As(err, &fail) {
		StandardReply(out, c, "FAIL", fail.Command, fail.Code, fail.Context, fail.Text)
		return
	}
	StandardReply(out, c, "FAIL", command, "UNKNOWN_ERROR", nil, err.Error())
}
