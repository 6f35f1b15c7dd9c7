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

// A response that is one whole batch is labeled on its opening line.
func TestLabeledResponseOfOneBatch(t *testing.T) {
	lines := []*irc.Message{
		{Command: "BATCH", Params: []string{"+in", "draft/multiline", "#c"}},
		{Tags: irc.Tags{"batch": "in"}, Command: "PRIVMSG", Params: []string{"#c", "x"}},
		{Tags: irc.Tags{"batch": "in"}, Command: "PRIVMSG", Params: []string{"#c", "y"}},
		{Command: "BATCH", Params: []string{"-in"}},
	}
	out := LabeledResponse("l", "srv", "r", lines)
	if len(out) != 4 || out[0].String() != "@label=l BATCH +in draft/multiline #c" || out[3].String() != "BATCH -in" || lines[0].Tags != nil {
		t.Errorf("got %v", out)
	}
	// Not one batch: a line outside it.
	lines[2] = &irc.Message{Command: "NOTICE", Params: []string{"n", "z"}}
	if out := LabeledResponse("l", "srv", "r", lines); len(out) != 6 || out[0].Param(1) != "labeled-response" {
		t.Errorf("a batch and a line: %v", out)
	}
}
