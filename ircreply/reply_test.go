package ircreply

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

// lines is a connection that records what it is sent.
type lines struct {
	caps map[string]bool
	sent []string
}

func (l *lines) SendMessage(m *irc.Message) { l.sent = append(l.sent, m.String()) }
func (l *lines) SendNumeric(code string, params ...string) {
	l.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: "srv"}, Command: code, Params: append([]string{"nick"}, params...)})
}
func (l *lines) SendNotice(text string) {
	l.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: "srv"}, Command: "NOTICE", Params: []string{"nick", text}})
}
func (l *lines) HasCap(name string) bool { return l.caps[name] }
func (l *lines) ServerName() string      { return "srv" }
func (l *lines) Nick() string            { return "nick" }

func TestSend(t *testing.T) {
	std := map[string]bool{"standard-replies": true}
	for _, tc := range []struct {
		name string
		caps map[string]bool
		cmd  string
		err  error
		want []string
	}{
		{"numeric", nil, "JOIN", Numeric("403", "#a", "No such channel"), []string{":srv 403 nick #a :No such channel"}},
		{"fail with standard-replies", std, "PART", Fail("PART", "CANNOT_LEAVE", "#a", "Cannot leave"),
			[]string{":srv FAIL PART CANNOT_LEAVE #a :Cannot leave"}},
		{"fail as a notice", nil, "PART", Fail("PART", "CANNOT_LEAVE", "#a", "Cannot leave"),
			[]string{":srv NOTICE nick :Cannot leave"}},
		{"fail always for REDACT", nil, "REDACT", Fail("REDACT", "UNKNOWN_MSGID", "#a $x", "No"),
			[]string{":srv FAIL REDACT UNKNOWN_MSGID #a $x No"}},
		{"wrapped", nil, "JOIN", fmt.Errorf("joining: %w", Numeric("474", "#a", "Banned")), []string{":srv 474 nick #a Banned"}},
		{"joined, in order", nil, "WHOIS", errors.Join(Numeric("401", "x", "No such nick"), Numeric("318", "x", "End")),
			[]string{":srv 401 nick x :No such nick", ":srv 318 nick x End"}},
		{"no reply", std, "LIST", errors.New("boom"), []string{":srv FAIL LIST UNKNOWN_ERROR boom"}},
		{"nil", nil, "LIST", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &lines{caps: tc.caps}
			Send(l, l, tc.cmd, tc.err)
			if strings.Join(l.sent, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("sent %q, want %q", l.sent, tc.want)
			}
		})
	}
}

func TestResponseWaitsForHeldParts(t *testing.T) {
	l := &lines{}
	r := NewResponse(l, "7", true)
	r.Hold()
	r.SendNumeric("001", "hi")
	r.Finish()
	if len(l.sent) != 0 {
		t.Fatalf("sent %q while a part was held", l.sent)
	}
	r.SendNotice("late part")
	r.Done()
	if len(l.sent) != 4 || !strings.Contains(l.sent[0], "label=7") || !strings.Contains(l.sent[0], "BATCH +") {
		t.Fatalf("sent %q, want a labeled batch of two lines", l.sent)
	}
	r.SendNotice("after")
	if got := l.sent[len(l.sent)-1]; got != ":srv NOTICE nick after" {
		t.Errorf("a line after the response went out as %q, want it unlabeled", got)
	}
}

func TestResponseUnlabeled(t *testing.T) {
	l := &lines{}
	r := NewResponse(l, "7", true)
	r.SendNotice("one")
	r.Unlabeled()
	if len(l.sent) != 1 || strings.Contains(l.sent[0], "label") {
		t.Errorf("sent %q, want the line without a label", l.sent)
	}
}

// Without batch, one line (or none) is still labeled; of several, which
// cannot be framed, the first carries the label.
func TestResponseWithoutBatch(t *testing.T) {
	l := &lines{}
	r := NewResponse(l, "7", false)
	r.SendNotice("one")
	r.Finish()
	if len(l.sent) != 1 || !strings.Contains(l.sent[0], "label=7") {
		t.Errorf("sent %q, want the one line labeled", l.sent)
	}
	l = &lines{}
	r = NewResponse(l, "8", false)
	r.Finish()
	if len(l.sent) != 1 || !strings.Contains(l.sent[0], "label=8") || !strings.Contains(l.sent[0], "ACK") {
		t.Errorf("sent %q, want a labeled ACK", l.sent)
	}
	l = &lines{}
	r = NewResponse(l, "9", false)
	r.SendNotice("one")
	r.SendNotice("two")
	r.Finish()
	if len(l.sent) != 2 || !strings.Contains(l.sent[0], "label=9") || strings.Contains(l.sent[1], "label") || strings.Contains(strings.Join(l.sent, ""), "BATCH") {
		t.Errorf("sent %q, want two lines without a batch, the label on the first", l.sent)
	}
}
