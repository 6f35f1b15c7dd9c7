package mapping

import (
	"strings"
	"testing"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

func TestSnippet(t *testing.T) {
	if got := Snippet("  short\n text "); got != "short text" {
		t.Errorf("Snippet = %q", got)
	}
	long := strings.Repeat("é", 100)
	got := Snippet(long)
	if !utf8.ValidString(got) || len(got) > snippetLen+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("Snippet of a long text = %q", got)
	}
}

func TestReplyFallback(t *testing.T) {
	cases := []struct {
		body, quoted, rest string
		sender             id.UserID
		ok                 bool
	}{
		{"> <@bob:example.org> original\n\nmy reply", "original", "my reply", "@bob:example.org", true},
		{"> <@bob:example.org> line one\n> line two\n\nreply\nsecond", "line one line two", "reply\nsecond", "@bob:example.org", true},
		{"> * <@bob:example.org> waves\n\nhi", "waves", "hi", "@bob:example.org", true},
		{"> just a quote\n\nno sender", "just a quote", "no sender", "", true},
		{"plain message", "", "plain message", "", false},
		{">no space", "", ">no space", "", false},
	}
	for _, tc := range cases {
		sender, quoted, rest, ok := ReplyFallback(tc.body)
		if sender != tc.sender || quoted != tc.quoted || rest != tc.rest || ok != tc.ok {
			t.Errorf("ReplyFallback(%q) = %q, %q, %q, %v", tc.body, sender, quoted, rest, ok)
		}
	}
}

func FuzzReplyFallback(f *testing.F) {
	f.Add("> <@a:b> x\n\ny")
	f.Add("> \n")
	f.Fuzz(func(t *testing.T, body string) {
		_, _, rest, ok := ReplyFallback(body)
		if !ok && rest != body {
			t.Fatal("a body without fallback changed")
		}
		if len(rest) > len(body) {
			t.Fatal("rest longer than body")
		}
	})
}
