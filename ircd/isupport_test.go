package ircd

import (
	"fmt"
	"strings"
	"testing"
)

// checkISupportLines checks the limits every 005 line must keep and that
// the lines carry exactly the tokens, in order.
func checkISupportLines(t *testing.T, is *ISupport) [][]string {
	t.Helper()
	lines := is.lines()
	var all []string
	for i, l := range lines {
		if len(l) == 0 || len(l) > isupportMaxTokens {
			t.Errorf("line %d has %d tokens, want 1..%d", i, len(l), isupportMaxTokens)
		}
		size := 0
		for _, tok := range l {
			size += 1 + len(tok)
		}
		if size > isupportMaxBytes && len(l) > 1 {
			t.Errorf("line %d is %d bytes, want at most %d", i, size, isupportMaxBytes)
		}
		all = append(all, l...)
	}
	if !equalStrings(all, is.tokens) {
		t.Errorf("lines carry %q, want %q", all, is.tokens)
	}
	return lines
}

func TestISupportSplitsAt13Tokens(t *testing.T) {
	is := &ISupport{}
	for i := range 30 {
		is.Add(fmt.Sprintf("T%02d", i), "")
	}
	lines := checkISupportLines(t, is)
	if got := []int{len(lines[0]), len(lines[1]), len(lines[2])}; len(lines) != 3 || got[0] != 13 || got[1] != 13 || got[2] != 4 {
		t.Errorf("split %d tokens into %v, want 13, 13, 4", 30, lines)
	}
}

func TestISupportSplitsBySize(t *testing.T) {
	is := &ISupport{}
	for i := range 10 {
		is.Add(fmt.Sprintf("T%02d", i), strings.Repeat("v", 100)) // 104 bytes + space each
	}
	lines := checkISupportLines(t, is)
	// 3 tokens are 315 bytes; a 4th would make 420, over the ~380 limit.
	for i, l := range lines[:len(lines)-1] {
		if len(l) != 3 {
			t.Errorf("line %d has %d tokens, want 3", i, len(l))
		}
	}
}

// TestISupportOversizedToken checks that a token longer than a whole line
// still goes out, alone, rather than being dropped or looping forever.
func TestISupportOversizedToken(t *testing.T) {
	is := &ISupport{}
	is.Add("A", "")
	is.Add("BIG", strings.Repeat("v", 500))
	is.Add("C", "")
	lines := checkISupportLines(t, is)
	if len(lines) != 3 || len(lines[1]) != 1 {
		t.Errorf("got %d lines %v, want the big token alone on the middle line", len(lines), lines)
	}
}

func TestISupportEmpty(t *testing.T) {
	if lines := (&ISupport{}).lines(); len(lines) != 0 {
		t.Errorf("empty ISupport gave %v", lines)
	}
}

func TestISupportAddPanics(t *testing.T) {
	tests := []struct {
		name        string
		before      [][2]string // tokens added first, which must not panic
		tokenName   string
		value       string
		shouldPanic bool
	}{
		{"empty name", nil, "", "", true},
		{"lower case", nil, "network", "x", true},
		{"space in name", nil, "A B", "", true},
		{"= in name", nil, "A=B", "", true},
		{": in name", nil, "A:B", "", true},
		{"space in value", nil, "NETWORK", "My Net", true},
		{"NUL in value", nil, "NETWORK", "a\x00b", true},
		{"CR in value", nil, "NETWORK", "a\rb", true},
		{"LF in value", nil, "NETWORK", "a\nb", true},
		{"duplicate", [][2]string{{"UTF8ONLY", ""}}, "UTF8ONLY", "", true},
		{"duplicate with a value", [][2]string{{"NICKLEN", "64"}}, "NICKLEN", "32", true},
		{"duplicate of a token that had a value", [][2]string{{"NICKLEN", "64"}}, "NICKLEN", "", true},
		{"good with value", nil, "NETWORK", "Matrix", false},
		{"good without value", nil, "UTF8ONLY", "", false},
		{"digits and underscore", nil, "X_2", "", false},
		{"prefix of an existing name is not a duplicate", [][2]string{{"CHANMODES", "b"}}, "CHAN", "", false},
		{"existing name as prefix is not a duplicate", [][2]string{{"CHAN", ""}}, "CHANMODES", "b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := &ISupport{}
			for _, b := range tt.before {
				is.Add(b[0], b[1])
			}
			defer func() {
				r := recover()
				if (r != nil) != tt.shouldPanic {
					t.Errorf("Add(%q, %q): panic = %v, want panic %v", tt.tokenName, tt.value, r, tt.shouldPanic)
				}
			}()
			is.Add(tt.tokenName, tt.value)
		})
	}
}

func TestDefaultISupport(t *testing.T) {
	cfg := testConfig()
	cfg.setDefaults()
	is := defaultISupport(&cfg)
	checkISupportLines(t, is)
	have := map[string]string{}
	for _, tok := range is.tokens {
		name, value, _ := strings.Cut(tok, "=")
		have[name] = value
	}
	want := map[string]string{
		"CASEMAPPING": "ascii",
		"CHANTYPES":   ChanTypes,
		"NETWORK":     "TestNet",
		"UTF8ONLY":    "",
		"LINELEN":     "512",
		"SILENCE":     "1000",
		"ELIST":       "S",
	}
	for name, value := range want {
		if got, ok := have[name]; !ok || got != value {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, value)
		}
	}
	// PREFIX and CHANMODES are checked for shape: their values belong to
	// the session's power-level mapping.
	for _, name := range []string{"PREFIX", "CHANMODES"} {
		if have[name] == "" {
			t.Errorf("%s missing or empty", name)
		}
	}
	if p := have["PREFIX"]; !strings.HasPrefix(p, "(") || !strings.Contains(p, ")") {
		t.Errorf("PREFIX = %q, want (modes)prefixes", p)
	}
	if n := strings.Count(have["CHANMODES"], ","); n != 3 {
		t.Errorf("CHANMODES = %q has %d commas, want 3 (four groups)", have["CHANMODES"], n)
	}
}
