package ircreply

import (
	"testing"

	"gopkg.in/irc.v4"
)

func TestLabeledResponse(t *testing.T) {
	if out := LabeledResponse("l", "srv", "r", nil); len(out) != 1 || out[0].String() != "@label=l :srv ACK" {
		t.Errorf("no lines: %v", out)
	}
	one := &irc.Message{Command: "PONG", Params: []string{"srv", "x"}}
	if out := LabeledResponse("l", "srv", "r", []*irc.Message{one}); len(out) != 1 || out[0].Tags["label"] != "l" || one.Tags != nil {
		t.Errorf("one line: %v (original tags %v)", out, one.Tags)
	}
	lines := []*irc.Message{
		{Command: "311", Params: []string{"a"}},
		{Tags: irc.Tags{"msgid": "m"}, Command: "BATCH", Params: []string{"+in", "draft/multiline", "#c"}},
		{Tags: irc.Tags{"batch": "in"}, Command: "PRIVMSG", Params: []string{"#c", "x"}},
		{Command: "BATCH", Params: []string{"-in"}},
	}
	out := LabeledResponse("l", "srv", "r", lines)
	want := []string{
		"@label=l :srv BATCH +r labeled-response",
		"@batch=r 311 a",
		"BATCH +in draft/multiline #c", // tags checked below
		"@batch=in PRIVMSG #c x",
		"@batch=r BATCH -in",
		":srv BATCH -r",
	}
	if len(out) != len(want) {
		t.Fatalf("got %d lines", len(out))
	}
	for i, w := range want {
		if i == 2 {
			if out[2].Tags["batch"] != "r" || out[2].Tags["msgid"] != "m" {
				t.Errorf("inner opening tags = %v", out[2].Tags)
			}
			continue
		}
		if got := out[i].String(); got != w {
			t.Errorf("line %d = %q, want %q", i, got, w)
		}
	}
}
