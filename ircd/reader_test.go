package ircd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// tooLong stands for ErrLineTooLong in the expected results below.
const tooLong = "<ErrLineTooLong>"

func TestLineReader(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	// tags builds a tag section (without '@' and the space) of n bytes.
	tags := func(n int) string { return "t=" + strings.Repeat("v", n-2) }

	tests := []struct {
		name string
		in   string
		want []string // lines in order; tooLong for ErrLineTooLong
	}{
		{"crlf", "PING a\r\nPING b\r\n", []string{"PING a", "PING b"}},
		{"lf only", "PING a\nPING b\n", []string{"PING a", "PING b"}},
		{"mixed endings", "PING a\nPING b\r\nPING c", []string{"PING a", "PING b", "PING c"}},
		{"empty lines skipped", "\r\n\n\r\nPING a\r\n\r\n\n", []string{"PING a"}},
		{"last line without newline", "PING a\r\nPING b", []string{"PING a", "PING b"}},
		{"only a newline", "\n", nil},
		{"nothing", "", nil},
		{"510 bytes accepted", a(510) + "\r\n", []string{a(510)}},
		{"510 bytes with LF accepted", a(510) + "\n", []string{a(510)}},
		{"511 bytes rejected, next line read", a(511) + "\r\nPING next\r\n", []string{tooLong, "PING next"}},
		{"511 bytes rejected at EOF", a(511), []string{tooLong}},
		{"tags of 4094 bytes accepted", "@" + tags(4094) + " PING x\r\n", []string{"@" + tags(4094) + " PING x"}},
		{"tags of 4095 bytes rejected, next line read", "@" + tags(4095) + " PING x\r\nPING next\r\n", []string{tooLong, "PING next"}},
		{"longest legal line: 4094 tag bytes and 510 message bytes",
			"@" + tags(4094) + " " + a(510) + "\r\nPING next\r\n",
			[]string{"@" + tags(4094) + " " + a(510), "PING next"}},
		{"message limit applies with tags too", "@" + tags(10) + " " + a(511) + "\r\nPING next\r\n", []string{tooLong, "PING next"}},
		{"tags cannot lend bytes to the message", "@t " + a(600) + "\r\nPING next\r\n", []string{tooLong, "PING next"}},
		{"a line of only tags is returned for the parser to reject", "@a=b\r\n", []string{"@a=b"}},
		{"100 KB line, then a good line", a(100<<10) + "\r\nPING next\r\n", []string{tooLong, "PING next"}},
		{"100 KB line at EOF", a(100 << 10), nil},
		{"two long lines in a row", a(5000) + "\n" + a(600) + "\nPING next\n", []string{tooLong, tooLong, "PING next"}},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		// Lines split across reads must give the same result.
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				lr := NewLineReader(rd.wrap(strings.NewReader(tt.in)))
				var got []string
				for {
					line, err := lr.ReadLine()
					if errors.Is(err, ErrLineTooLong) {
						got = append(got, tooLong)
						continue
					}
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("ReadLine: %v", err)
					}
					if len(line) > MaxTagBytes+MaxLineBytes {
						t.Fatalf("returned %d bytes, more than the limit", len(line))
					}
					got = append(got, string(line))
				}
				if !equalStrings(got, tt.want) {
					t.Errorf("got %s, want %s", summarize(got), summarize(tt.want))
				}
				// Memory stays bounded: the buffer never grows past one legal line.
				if size := lr.r.Size(); size != MaxTagBytes+MaxLineBytes {
					t.Errorf("buffer is %d bytes, want %d", size, MaxTagBytes+MaxLineBytes)
				}
			})
		}
	}
}

// TestLineReaderStopsOnError checks that an I/O error other than EOF ends
// reading rather than being mistaken for a line.
func TestLineReaderStopsOnError(t *testing.T) {
	boom := errors.New("boom")
	lr := NewLineReader(io.MultiReader(strings.NewReader("PING a\r\nPART"), iotest.ErrReader(boom)))
	if line, err := lr.ReadLine(); err != nil || string(line) != "PING a" {
		t.Fatalf("got %q, %v; want PING a", line, err)
	}
	if line, err := lr.ReadLine(); !errors.Is(err, boom) {
		t.Fatalf("got %q, %v; want %v", line, err, boom)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// summarize keeps failure messages readable when lines are kilobytes long.
func summarize(lines []string) string {
	var b strings.Builder
	b.WriteString("[")
	for i, l := range lines {
		if i > 0 {
			b.WriteString(" ")
		}
		if len(l) > 40 {
			l = fmt.Sprintf("%s…%s (%d bytes)", l[:20], l[len(l)-10:], len(l))
		}
		b.WriteString(`"` + l + `"`)
	}
	b.WriteString("]")
	return b.String()
}

// FuzzLineReader feeds arbitrary bytes through the reader and then through
// the connection's line handling, as readLoop does.
func FuzzLineReader(f *testing.F) {
	seeds := []string{
		"PING a\r\nPING b\n",
		"\r\n\r\n",
		"@a=b\r\n",
		"@a=b \r\n",
		":prefix\r\n",
		"@" + strings.Repeat("t", 4094) + " PING x\r\n",
		strings.Repeat("a", 511) + "\r\nPING x\r\n",
		"PRIVMSG #a :\xff\xfe\r\n",
		"PRIVMSG #a :a\x00b\r\n",
		"PRIVMSG #a :a\rb\r\n",
		"MODE :\r\n",
		"CAP LS 302\r\nCAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\nAUTHENTICATE AGFsaWNlAHNlY3JldA==\r\nNICK a\r\nUSER a 0 * :a\r\nCAP END\r\n",
		"PASS secret\r\nNICK alice\r\nUSER alice 0 * :A\r\nJOIN #a\r\nQUIT\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newOfflineConn(t, newOfflineServer(t), false)
		lr := NewLineReader(bytes.NewReader(data))
		for {
			line, err := lr.ReadLine()
			if errors.Is(err, ErrLineTooLong) {
				continue
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("ReadLine: %v", err)
			}
			switch {
			case len(line) == 0:
				t.Fatal("returned an empty line")
			case len(line) > MaxTagBytes+MaxLineBytes || !withinLimits(line):
				t.Fatalf("returned a %d-byte line beyond the limits", len(line))
			case bytes.IndexByte(line, '\n') >= 0:
				t.Fatalf("returned a line with LF: %q", line)
			case line[len(line)-1] == '\r':
				t.Fatalf("returned a line ending in CR: %q", line)
			}
			// A CR inside a line is not a line ending; handleLine must turn
			// it away, which the Handler's checkForwarded verifies.
			c.handleLine(line)
			checkOutput(t, c)
		}
	})
}
