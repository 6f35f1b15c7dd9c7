package mapping

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

var splitTextCases = []struct {
	name string
	text string
	max  int
	want []string
}{
	{"empty", "", 10, nil},
	{"only LF", "\n\n\n", 10, nil},
	{"only mixed newlines", "\r\n\r\r\n\n", 10, nil},
	{"short", "hello", 10, []string{"hello"}},
	{"exact fit", "hello world", 11, []string{"hello world"}},
	{"one over", "hello world!", 11, []string{"hello", "world!"}},
	{"space exactly at limit", "hello world", 5, []string{"hello", "world"}},
	{"last of several spaces", "one two three four", 13, []string{"one two three", "four"}},
	{"run of spaces drops only one", "aaaa   bbbb", 6, []string{"aaaa  ", "bbbb"}},
	{"run of spaces that fits", "a  b", 4, []string{"a  b"}},
	{"leading spaces kept", "   abc def", 6, []string{"   abc", "def"}},
	{"leading space is not a split point", " abcdefgh", 4, []string{" abc", "defg", "h"}},
	{"trailing spaces", "abc   ", 4, []string{"abc ", " "}},
	{"trailing split space leaves nothing", "abcd ", 4, []string{"abcd"}},
	{"spaces only", "   ", 10, []string{"   "}},
	{"long run of spaces", "      ", 4, []string{"    ", " "}},
	{"very long word", strings.Repeat("x", 25), 10, []string{"xxxxxxxxxx", "xxxxxxxxxx", "xxxxx"}},
	{"long word after short one", "hi " + strings.Repeat("y", 12), 5, []string{"hi", "yyyyy", "yyyyy", "yy"}},
	{"LF", "a\nb", 10, []string{"a", "b"}},
	{"CRLF", "a\r\nb", 10, []string{"a", "b"}},
	{"CR", "a\rb", 10, []string{"a", "b"}},
	{"empty lines dropped", "\n\na\n\n\nb\n\n", 10, []string{"a", "b"}},
	{"CR CRLF", "a\r\r\nb", 10, []string{"a", "b"}},
	{"LF CR is two newlines", "a\n\rb", 10, []string{"a", "b"}},
	{"space before newline kept", "a \nb", 10, []string{"a ", "b"}},
	{"each line split on its own", "aaa bbb\nccc ddd", 5, []string{"aaa", "bbb", "ccc", "ddd"}},
	{"CJK fits", "日本語", 9, []string{"日本語"}},
	{"CJK one byte short", "日本語", 8, []string{"日本", "語"}},
	{"CJK per rune", "日本語", 4, []string{"日", "本", "語"}},
	{"CJK after space", "ab 日本", 5, []string{"ab", "日", "本"}},
	{"emoji at boundary", "😀😀", 5, []string{"😀", "😀"}},
	{"emoji exact", "😀😀", 8, []string{"😀😀"}},
	{"emoji after ASCII", "a😀", 4, []string{"a", "😀"}},
	{"skin tone modifier may be separated", "👍🏽", 6, []string{"👍", "🏽"}},
	{"combining mark may be separated", "e\u0301e\u0301", 4, []string{"e\u0301e", "\u0301"}},
	{"max below 4 is 4", "日本", 1, []string{"日", "本"}},
	{"max zero", "abcdef", 0, []string{"abcd", "ef"}},
	{"max negative", "😀", -5, []string{"😀"}},
	{"invalid bytes are one-byte runes", "\xff\xfe\xfd\xfc\xfb", 4, []string{"\xff\xfe\xfd\xfc", "\xfb"}},
	{"stray continuation bytes", "\x80\x80\x80\x80\x80", 4, []string{"\x80\x80\x80\x80", "\x80"}},
	{"invalid byte before valid rune", "a\x80日", 4, []string{"a\x80", "日"}},
	{"truncated sequence then valid rune", "\xe6\x97日", 4, []string{"\xe6\x97", "日"}},
}

func TestSplitText(t *testing.T) {
	for _, tc := range splitTextCases {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitText(tc.text, tc.max)
			if !slices.Equal(got, tc.want) {
				t.Errorf("SplitText(%q, %d) = %q, want %q", tc.text, tc.max, got, tc.want)
			}
			checkSplit(t, tc.text, tc.max, got)
		})
	}
}

// TestSplitTextRandom checks the invariants on inputs biased towards the
// awkward cases: multi-byte runes, invalid bytes, spaces and newlines near
// small limits.
func TestSplitTextRandom(t *testing.T) {
	alphabet := []string{"a", "b", " ", " ", "\n", "\r", "\r\n", "é", "日", "😀", "\u0301", "\xff", "\x80", "\xe6\x97", "\t"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		text := b.String()
		max := rng.IntN(14) - 2
		checkSplit(t, text, max, SplitText(text, max))
		if t.Failed() {
			t.Fatalf("input %+q, max %d", text, max)
		}
	}
}

func FuzzSplitText(f *testing.F) {
	for _, tc := range splitTextCases {
		f.Add(tc.text, tc.max)
	}
	f.Add(strings.Repeat("word ", 200), 400)
	f.Fuzz(func(t *testing.T, text string, max int) {
		// Keep limits small enough that inputs of fuzzing size get split.
		max %= 600
		checkSplit(t, text, max, SplitText(text, max))
	})
}

// checkSplit verifies SplitText's contract for one call without assuming
// anything about where exactly the splits should fall.
func checkSplit(t *testing.T, text string, maxLen int, chunks []string) {
	t.Helper()
	limit := max(maxLen, utf8.UTFMax)
	valid := utf8.ValidString(text)
	for i, c := range chunks {
		if c == "" {
			t.Errorf("chunk %d is empty", i)
		}
		if len(c) > limit {
			t.Errorf("chunk %d %q is %d bytes, over %d", i, c, len(c), limit)
		}
		if strings.ContainsAny(c, "\r\n") {
			t.Errorf("chunk %d %q contains a newline", i, c)
		}
		if valid && !utf8.ValidString(c) {
			t.Errorf("chunk %d %q is invalid UTF-8 from valid input", i, c)
		}
	}

	// Decoding each chunk on its own yields the same runes as decoding the
	// input only if no valid multi-byte sequence was cut.
	var got []string
	for _, c := range chunks {
		got = append(got, runesWithoutSeparators(c)...)
	}
	if want := runesWithoutSeparators(text); !slices.Equal(got, want) {
		t.Errorf("runes changed:\n got %q\nwant %q", got, want)
	}

	if got, want := stripASCIISpace(strings.Join(chunks, "")), stripASCIISpace(text); got != want {
		t.Errorf("non-whitespace content changed: got %q, want %q", got, want)
	}

	if !reassembles(text, chunks) {
		t.Errorf("chunks %q do not reassemble into %q", chunks, text)
	}
}

// runesWithoutSeparators decodes s the way SplitText does (invalid bytes as
// one-byte runes) and drops the only runes SplitText may remove.
func runesWithoutSeparators(s string) []string {
	var out []string
	for len(s) > 0 {
		_, size := utf8.DecodeRuneInString(s)
		if r := s[:size]; r != " " && r != "\r" && r != "\n" {
			out = append(out, r)
		}
		s = s[size:]
	}
	return out
}

// stripASCIISpace removes whitespace bytewise. Decoding runes instead would
// be wrong twice over: strings.Map rewrites invalid bytes as U+FFFD, and
// joined chunks can spell a rune that was never in the input (say U+0085
// from "\xc2" and "\x85" once the space between them is gone).
func stripASCIISpace(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(" \t\v\f\r\n", rune(s[i])) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// reassembles reports whether text, after newline normalisation, is the
// chunks joined by the separators SplitText is allowed to remove: a run of
// newlines (a line break plus any dropped empty lines), exactly one space,
// or nothing (a split inside a word). A dropped space may also end a line,
// when it was the split point and nothing followed it. Before the first
// chunk only newlines may have been dropped.
func reassembles(text string, chunks []string) bool {
	norm := strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	type state struct{ pos, idx int }
	seen := map[state]bool{}
	// match reports whether chunks[idx:] account for norm[pos:], with pos
	// just past whatever separator preceded chunks[idx].
	var match func(pos, idx int) bool
	match = func(pos, idx int) bool {
		if idx == len(chunks) {
			return pos == len(norm)
		}
		if seen[state{pos, idx}] {
			return false
		}
		seen[state{pos, idx}] = true
		if !strings.HasPrefix(norm[pos:], chunks[idx]) {
			return false
		}
		end := pos + len(chunks[idx])
		// Trying a dropped space first follows SplitText's own parse without
		// backtracking: after a split inside a word the next chunk never
		// starts with a space. The other order goes quadratic on long runs
		// of spaces, which stalls the fuzzer.
		var starts []int
		if end < len(norm) && norm[end] == ' ' {
			starts = append(starts, end+1)
		}
		starts = append(starts, end)
		for _, next := range starts {
			if match(next, idx+1) {
				return true
			}
			if next < len(norm) && norm[next] == '\n' {
				// Chunks hold no newlines, so the whole run is a separator.
				if match(skipNewlines(norm, next), idx+1) {
					return true
				}
			}
		}
		return false
	}
	return match(skipNewlines(norm, 0), 0)
}

func skipNewlines(s string, pos int) int {
	for pos < len(s) && s[pos] == '\n' {
		pos++
	}
	return pos
}

func TestLineBudget(t *testing.T) {
	cases := []struct {
		name, prefix, target string
		want                 int
	}{
		{"typical", "nick!user@host", "#chan", 512 - len(":nick!user@host PRIVMSG #chan :") - 2},
		{"wire form prefix tolerated", ":nick!user@host ", "#chan", 512 - len(":nick!user@host PRIVMSG #chan :") - 2},
		{"empty", "", "", 512 - len(": PRIVMSG  :") - 2},
		{"huge prefix floors at 16", strings.Repeat("h", 600), "#chan", 16},
		{"just above the floor", strings.Repeat("h", 512-len(": PRIVMSG #c :")-2-17), "#c", 17},
		{"exactly the floor", strings.Repeat("h", 512-len(": PRIVMSG #c :")-2-16), "#c", 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := LineBudget(tc.prefix, tc.target); got != tc.want {
				t.Errorf("LineBudget(%q, %q) = %d, want %d", tc.prefix, tc.target, got, tc.want)
			}
		})
	}
}

// The budget must be exact for PRIVMSG (no wasted bytes) and safe for NOTICE.
func TestLineBudgetFitsWireLine(t *testing.T) {
	prefix, target := "alice!alice@matrix.example.org", "#room:example.org"
	budget := LineBudget(prefix, target)
	text := strings.Repeat("日本語 emoji 😀 ", 100)
	for _, chunk := range SplitText(text, budget) {
		for _, cmd := range []string{"PRIVMSG", "NOTICE"} {
			line := ":" + prefix + " " + cmd + " " + target + " :" + chunk + "\r\n"
			if len(line) > 512 {
				t.Fatalf("%s line is %d bytes", cmd, len(line))
			}
		}
	}
	full := ":" + prefix + " PRIVMSG " + target + " :" + strings.Repeat("x", budget) + "\r\n"
	if len(full) != 512 {
		t.Errorf("a full-budget PRIVMSG line is %d bytes, want 512", len(full))
	}
}

// The fuzz target is only as good as its oracle, so make sure the oracle
// rejects the mistakes it exists to catch.
func TestReassemblesRejects(t *testing.T) {
	cases := []struct {
		text   string
		chunks []string
		want   bool
	}{
		{"ab cd", []string{"ab", "cd"}, true},
		{"abcd", []string{"ab", "cd"}, true},
		{"\r\n\na\r\rb\n", []string{"a", "b"}, true},
		{"ab ", []string{"ab"}, true},
		{"ab cd", []string{"ab", "d"}, false},
		{"ab cd", []string{"ab"}, false},
		{"a  b", []string{"a", "b"}, false},
		{"ab", []string{"b", "a"}, false},
		{" ab", []string{"ab"}, false},
		{"a\nb", []string{"ab"}, false},
	}
	for _, tc := range cases {
		if got := reassembles(tc.text, tc.chunks); got != tc.want {
			t.Errorf("reassembles(%q, %q) = %v, want %v", tc.text, tc.chunks, got, tc.want)
		}
	}
}

func TestSplitConcat(t *testing.T) {
	cases := []struct {
		line string
		max  int
		want []string
	}{
		{"", 10, []string{""}},
		{"short", 10, []string{"short"}},
		{"hello world again", 8, []string{"hello ", "world ", "again"}},
		{"abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"ééééé", 5, []string{"éé", "éé", "é"}},
		// No rune start within the budget: once looped forever.
		{"0\xa1\xa1\xa1\xa1", 4, []string{"0\xa1\xa1\xa1", "\xa1"}},
	}
	for _, tc := range cases {
		got := SplitConcat(tc.line, tc.max)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("SplitConcat(%q, %d) = %q, want %q", tc.line, tc.max, got, tc.want)
		}
	}
}

func FuzzSplitConcat(f *testing.F) {
	f.Add("hello world", 5)
	f.Fuzz(func(t *testing.T, line string, max int) {
		if max < 0 || max > 1000 {
			return
		}
		pieces := SplitConcat(line, max)
		if strings.Join(pieces, "") != line {
			t.Fatalf("pieces %q lose bytes of %q", pieces, line)
		}
		for _, p := range pieces {
			if len(p) > max && len(p) > 4 {
				t.Fatalf("piece %q longer than %d", p, max)
			}
			if utf8.ValidString(line) && !utf8.ValidString(p) {
				t.Fatalf("piece %q cuts a rune", p)
			}
		}
	})
}

func BenchmarkSplitText(b *testing.B) {
	text := strings.Repeat("a reasonably long message with words that wraps over several lines ", 40)
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for i := 0; i < b.N; i++ {
		SplitText(text, 430)
	}
}
