package session

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// MARKREAD of a target the account does not know is '*' (no known
// marker); a set on it or with '*' is refused; with no target at all it is
// FAIL NEED_MORE_PARAMS, as the read-marker spec wants (the handler's
// answer: the command table's minParams decides whether it gets there).
func TestMarkreadWithoutAMarker(t *testing.T) {
	s := unstartedSession(t)
	s.synced = true
	conn := &capRecorder{caps: map[string]bool{"draft/read-marker": true}}
	conn.nick = "me"
	a := newAttachment(s, conn, "")
	s.clients[a] = true

	s.handleCommand(a, &irc.Message{Command: "MARKREAD", Params: []string{"#nowhere"}})
	s.handleCommand(a, &irc.Message{Command: "MARKREAD", Params: []string{"#nowhere", "timestamp=2019-01-04T14:33:26.123Z"}})
	s.handleCommand(a, &irc.Message{Command: "MARKREAD", Params: []string{"#nowhere", "*"}})
	var got []string
	for _, l := range conn.all() {
		got = append(got, strings.Join(append([]string{l.Command}, l.Params[:min(len(l.Params), 3)]...), " "))
	}
	want := []string{"MARKREAD #nowhere *", "FAIL MARKREAD INVALID_PARAMS #nowhere", "FAIL MARKREAD INVALID_PARAMS #nowhere"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sent\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	err := s.cmdMarkread(a, conn, &irc.Message{Command: "MARKREAD"})
	if fe, ok := err.(*ircreply.FailError); !ok || fe.Command != "MARKREAD" || fe.Code != "NEED_MORE_PARAMS" {
		t.Errorf("MARKREAD without a target: %v, want FAIL MARKREAD NEED_MORE_PARAMS", err)
	}
}
