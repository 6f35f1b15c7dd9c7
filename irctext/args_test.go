package irctext

import (
	"slices"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"SET hunter22", []string{"SET", "hunter22"}},
		{"  SET   a  b ", []string{"SET", "a", "b"}},
		{`SET "my pass word"`, []string{"SET", "my pass word"}},
		{`SET 'it"s'`, []string{"SET", `it"s`}},
		{`SET "say \"hi\" \\ ok"`, []string{"SET", `say "hi" \ ok`}},
		{`SET a\ b`, []string{"SET", "a b"}},
		{`SET ''`, []string{"SET", ""}},
		{`SET pre"mid dle"post`, []string{"SET", "premid dlepost"}},
		{"SET pässwörd", []string{"SET", "pässwörd"}},
	} {
		got, err := SplitArgs(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`SET "open`, `SET 'open`, `SET end\`} {
		if got, err := SplitArgs(bad); err == nil {
			t.Errorf("SplitArgs(%q) = %q, want an error", bad, got)
		}
	}
}
