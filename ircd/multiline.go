package ircd

import (
	"strconv"
	"strings"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// draft/multiline: a client sends one message as several lines inside a
// BATCH, which the session gets as one PRIVMSG or NOTICE whose text holds
// newlines. Limits are advertised in the capability's value.
const (
	multilineMaxBytes = 4096
	multilineMaxLines = 100
	multilineCap      = "draft/multiline"
	concatTag         = "draft/multiline-concat"
)

var multilineCapValue = "max-bytes=" + strconv.Itoa(multilineMaxBytes) + ",max-lines=" + strconv.Itoa(multilineMaxLines)

// clientBatch is a multiline batch being received. Reader goroutine only.
type clientBatch struct {
	ref     string
	target  string
	opening *irc.Message // the BATCH line, whose tags (e.g. +draft/reply) the message keeps
	command string
	text    strings.Builder
	lines   int
}

// batchError is a FAIL BATCH reply; the last of params is its text.
func batchError(code string, params ...string) error {
	n := len(params) - 1
	return &ircreply.FailError{Command: "BATCH", Code: code, Context: params[:n], Text: params[n]}
}

func (c *Conn) batchFail(code string, params ...string) {
	c.replyError("BATCH", batchError(code, params...))
}

// handleBatch opens ("+ref draft/multiline target") or closes ("-ref") a
// client batch.
func (c *Conn) handleBatch(m *irc.Message) error {
	ref := m.Params[0]
	switch {
	case strings.HasPrefix(ref, "+") && len(ref) > 1:
		if !c.HasCap(multilineCap) || len(m.Params) < 3 || m.Params[1] != multilineCap {
			return batchError("UNKNOWN_TYPE", m.Param(1), "Only draft/multiline batches can be sent to this server")
		}
		if c.batch != nil {
			return batchError("INVALID_NESTING", ref[1:], "A multiline batch is already open")
		}
		c.batch = &clientBatch{ref: ref[1:], target: m.Params[2], opening: m}
	case strings.HasPrefix(ref, "-") && len(ref) > 1:
		b := c.batch
		if b == nil || b.ref != ref[1:] {
			return batchError("INVALID_REFTAG", ref[1:], "No such batch is open")
		}
		c.batch = nil
		if b.lines == 0 {
			return batchError("MULTILINE_INVALID", "The multiline batch was empty")
		}
		tags := irc.Tags{}
		for k, v := range b.opening.Tags {
			if strings.HasPrefix(k, "+") || k == "label" {
				tags[k] = v
			}
		}
		c.dispatch(&irc.Message{Tags: tags, Command: b.command, Params: []string{b.target, b.text.String()}})
	default:
		return batchError("INVALID_REFTAG", ref, "A batch reference starts with + or -")
	}
	return nil
}

// addToBatch takes one line tagged with a batch reference.
func (c *Conn) addToBatch(m *irc.Message) {
	b := c.batch
	ref := m.Tags["batch"]
	if b == nil || b.ref != ref {
		c.batchFail("INVALID_REFTAG", ref, "No such batch is open")
		return
	}
	fail := func(code string, params ...string) {
		c.batch = nil // the whole message is refused, as the specification asks
		c.batchFail(code, params...)
	}
	if (m.Command != "PRIVMSG" && m.Command != "NOTICE") || len(m.Params) < 2 || (b.command != "" && m.Command != b.command) {
		fail("MULTILINE_INVALID", "A multiline batch holds only PRIVMSG or only NOTICE lines")
		return
	}
	if m.Params[0] != b.target {
		fail("MULTILINE_INVALID_TARGET", b.target, m.Params[0], "Every line of a multiline batch goes to its target")
		return
	}
	b.command = m.Command
	_, concat := m.Tags[concatTag]
	if concat && m.Params[1] == "" {
		// The specification: a blank line cannot be concatenated.
		fail("MULTILINE_INVALID", "A blank line cannot carry "+concatTag)
		return
	}
	if b.lines > 0 && !concat {
		b.text.WriteByte('\n')
	}
	b.text.WriteString(m.Params[1])
	b.lines++
	switch {
	case b.text.Len() > multilineMaxBytes:
		fail("MULTILINE_MAX_BYTES", strconv.Itoa(multilineMaxBytes), "The multiline message is too long")
	case b.lines > multilineMaxLines:
		fail("MULTILINE_MAX_LINES", strconv.Itoa(multilineMaxLines), "The multiline message has too many lines")
	}
}
