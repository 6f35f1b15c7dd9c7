package ircd

import (
	"bytes"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

// BenchmarkReadAndParse measures the front end's per-line cost: the
// bounded read and the parse of a typical tagged PRIVMSG.
func BenchmarkReadAndParse(b *testing.B) {
	line := "@+draft/reply=$abc;label=7 PRIVMSG #fosdem:example.org :hello there, how is the conference going?\r\n"
	input := []byte(strings.Repeat(line, 1000))
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for i := 0; i < b.N; {
		lr := NewLineReader(bytes.NewReader(input))
		for j := 0; j < 1000 && i < b.N; j, i = j+1, i+1 {
			raw, err := lr.ReadLine()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := parseMessage(raw); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkEncodeLine measures writing one tagged message line.
func BenchmarkEncodeLine(b *testing.B) {
	m := &irc.Message{
		Tags:    irc.Tags{"msgid": "$Qx8AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "time": "2026-11-22T08:00:00.000Z", "account": "@bob:example.org"},
		Prefix:  &irc.Prefix{Name: "bob", User: "bob", Host: "example.org"},
		Command: "PRIVMSG",
		Params:  []string{"#fosdem:example.org", "hello there, how is the conference going?"},
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		encodeLine(m)
	}
}
