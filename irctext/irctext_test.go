package irctext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCasefold(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"", ""},
		{"alice", "alice"},
		{"Alice", "alice"},
		{"ALICE", "alice"},
		{"#Foo:Example.ORG", "#foo:example.org"},
		{"!AbC:srv", "!abc:srv"},
		{"az09_-AZ", "az09_-az"},
		{"@[]", "@[]"},
		// rfc1459 would fold these; CASEMAPPING=ascii does not.
		{"[]\\~", "[]\\~"},
		{"{}|^", "{}|^"},
		{"A[]\\~", "a[]\\~"},
		// Non-ASCII is left alone, even next to ASCII capitals.
		{"Émile", "Émile"},
		{"AÉ", "aÉ"},
		{"ÄÖÜ", "ÄÖÜ"},
		{"X\u212Ay", "x\u212Ay"}, // KELVIN SIGN must not become "k"
		{"X\u0130", "x\u0130"},   // LATIN CAPITAL I WITH DOT ABOVE
		{"ΣΑΣ", "ΣΑΣ"},
		// Invalid UTF-8 is kept byte for byte.
		{"A\xff\xfeB", "a\xff\xfeb"},
		{"\xc3", "\xc3"},
		{"A\x00B", "a\x00b"},
	}
	for _, c := range cases {
		if got := Casefold(c.in); got != c.want {
			t.Errorf("Casefold(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := Casefold(Casefold(c.in)); got != c.want {
			t.Errorf("Casefold is not idempotent on %q: %q", c.in, got)
		}
	}
}

func FuzzCasefold(f *testing.F) {
	for _, s := range []string{"", "Alice", "[]\\~", "AÉ", "X\u212Ay", "A\xffB", "#Foo:Bar"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Casefold(s)
		if len(got) != len(s) {
			t.Fatalf("Casefold(%q) = %q changes the length", s, got)
		}
		for i := 0; i < len(s); i++ {
			want := s[i]
			if 'A' <= want && want <= 'Z' {
				want += 'a' - 'A'
			}
			if got[i] != want {
				t.Fatalf("Casefold(%q) = %q: byte %d is %q, want %q", s, got, i, got[i], want)
			}
		}
		if again := Casefold(got); again != got {
			t.Fatalf("Casefold not idempotent: %q -> %q -> %q", s, got, again)
		}
		if Casefold(strings.ToUpper(got)) != Casefold(strings.ToLower(got)) && isASCII(got) {
			t.Fatalf("ASCII %q: upper and lower case fold differently", got)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		mask, name string
		want       bool
	}{
		{"*", "", true},
		{"*", "alice", true},
		{"ali*", "Alice", true},
		{"a?ice", "alice", true},
		{"a?ice", "aice", false},
		{"*ice", "alice", true},
		{"*i*e", "alice", true},
		{"*x*", "alice", false},
		{"alice", "alice2", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"*!*@localhost", "alice!alice@localhost", true},
		{"eva*", "evan", true},
		{"", "", true},
		{"", "a", false},
	} {
		if got := Match(c.mask, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.mask, c.name, got, c.want)
		}
	}
}
