package ircd

import (
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// encodeLine keeps lines well-formed whatever producers put in them.
func TestEncodeLineKeepsParamsAndLength(t *testing.T) {
	cases := []struct {
		name string
		msg  *irc.Message
		want string
	}{
		{"echoed param with a space", &irc.Message{Prefix: &irc.Prefix{Name: "s"}, Command: "432", Params: []string{"*", "a b", "Erroneous nickname"}},
			":s 432 * a_b :Erroneous nickname\r\n"},
		{"empty middle param", &irc.Message{Command: "421", Params: []string{"", "x", "Unknown command"}},
			"421 * x :Unknown command\r\n"},
		{"middle param starting with a colon", &irc.Message{Command: "421", Params: []string{"n", ":x", "Unknown"}},
			"421 n x Unknown\r\n"},
		{"last param is free", &irc.Message{Command: "PRIVMSG", Params: []string{"#c", ":) a b"}},
			"PRIVMSG #c ::) a b\r\n"},
		{"a one-word message is still a trailing parameter", &irc.Message{Command: "PRIVMSG", Params: []string{"#c", "word"}},
			"PRIVMSG #c :word\r\n"},
		{"so is a one-word reason", &irc.Message{Command: "KICK", Params: []string{"#c", "bob", "spam"}},
			"KICK #c bob :spam\r\n"},
		{"a channel is not", &irc.Message{Command: "JOIN", Params: []string{"#c"}},
			"JOIN #c\r\n"},
		{"tags in the order of their names", &irc.Message{Tags: irc.Tags{"time": "t", "msgid": "$e", "account": "a", "+draft/reply": "$r"}, Command: "TAGMSG", Params: []string{"#c"}},
			"@+draft/reply=$r;account=a;msgid=$e;time=t TAGMSG #c\r\n"},
	}
	for _, tc := range cases {
		if got := string(encodeLine(tc.msg)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}

	orig := &irc.Message{Command: "421", Params: []string{"a b", "x"}}
	encodeLine(orig)
	if orig.Params[0] != "a b" {
		t.Error("encodeLine changed the caller's message")
	}

	long := &irc.Message{Prefix: &irc.Prefix{Name: "s"}, Command: "421", Params: []string{"n", strings.Repeat("é", 400), "Unknown command"}}
	long.Params[1] = strings.Repeat("x", 3) + long.Params[1]
	for _, m := range []*irc.Message{long, {Tags: irc.Tags{"time": "2026-01-01T00:00:00.000Z"}, Command: "PRIVMSG", Params: []string{"#c", strings.Repeat("é", 400)}}} {
		line := encodeLine(m)
		msgPart := string(line)
		if len(m.Tags) > 0 {
			msgPart = msgPart[strings.IndexByte(msgPart, ' ')+1:]
		}
		if len(msgPart) > MaxLineBytes || !utf8.Valid(line) || !strings.HasSuffix(msgPart, "\r\n") {
			t.Errorf("line of %d bytes (valid UTF-8: %v): %.40q…", len(msgPart), utf8.Valid(line), line)
		}
	}
}

// Line breaks in Matrix text and oversized tags never break a line.
func TestEncodeLineBreaksAndTags(t *testing.T) {
	line := string(encodeLine(&irc.Message{Command: "311", Params: []string{"me", "bob", "u", "h", "*", "Bob\r\nQUIT :injected"}}))
	if strings.Count(line, "\r\n") != 1 || !strings.HasSuffix(line, "\r\n") {
		t.Errorf("line breaks survived: %q", line)
	}
	big := irc.Tags{"msgid": "x", "+draft/react": strings.Repeat("y", 5000)}
	line = string(encodeLine(&irc.Message{Tags: big, Command: "TAGMSG", Params: []string{"#c"}}))
	tags := line[:strings.IndexByte(line, ' ')]
	if len(tags) > MaxTagBytes || !strings.Contains(tags, "msgid=x") {
		t.Errorf("tags = %.60q… (%d bytes)", tags, len(tags))
	}
	huge := irc.Tags{"msgid": strings.Repeat("z", 5000)}
	line = string(encodeLine(&irc.Message{Tags: huge, Command: "PRIVMSG", Params: []string{"#c", "hi"}}))
	if strings.HasPrefix(line, "@") {
		t.Errorf("oversized server tags kept: %.40q", line)
	}
}
