package mapping

import (
	"errors"
	"strings"
	"testing"

	"github.com/mxircd/mxircd/irctext"
)

func TestParseHistoryRequest(t *testing.T) {
	tests := []struct {
		line string
		want HistoryRequest
		code string
	}{
		{line: "LATEST #a * 50", want: HistoryRequest{Sub: "LATEST", Target: "#a", From: HistoryRef{Star: true}, Limit: 50}},
		{line: "latest #a msgid=$x 5", want: HistoryRequest{Sub: "LATEST", Target: "#a", From: HistoryRef{MsgID: "$x"}, Limit: 5}},
		{line: "BEFORE #a timestamp=2026-01-02T03:04:05.678Z 1000", want: HistoryRequest{Sub: "BEFORE", Target: "#a", From: HistoryRef{TS: 1767323045678}, Limit: irctext.MaxHistoryLimit}},
		{line: "BETWEEN bob msgid=$a timestamp=2026-01-02T03:04:05Z 10", want: HistoryRequest{Sub: "BETWEEN", Target: "bob", From: HistoryRef{MsgID: "$a"}, To: HistoryRef{TS: 1767323045000}, Limit: 10}},
		{line: "TARGETS timestamp=2026-01-02T03:04:05Z timestamp=2026-01-03T03:04:05Z 10", want: HistoryRequest{Sub: "TARGETS", From: HistoryRef{TS: 1767323045000}, To: HistoryRef{TS: 1767409445000}, Limit: 10}},
		{line: "BEFORE #a * 10", code: "INVALID_MSGREFTYPE"},
		{line: "AFTER #a id=1 10", code: "INVALID_MSGREFTYPE"},
		{line: "AFTER #a timestamp=yesterday 10", code: "INVALID_PARAMS"},
		{line: "AFTER #a msgid=$x 0", code: "INVALID_PARAMS"},
		{line: "AFTER #a msgid=$x", code: "INVALID_PARAMS"},
		{line: "SEARCH #a x 1", code: "INVALID_PARAMS"},
		{line: "TARGETS msgid=$a timestamp=2026-01-02T03:04:05Z 3", code: "INVALID_PARAMS"},
		{line: "", code: "INVALID_PARAMS"},
	}
	for _, tt := range tests {
		got, err := ParseHistoryRequest(strings.Fields(tt.line))
		if tt.code != "" {
			var he *HistoryError
			if !errors.As(err, &he) || he.Code != tt.code {
				t.Errorf("%q: err = %v, want code %s", tt.line, err, tt.code)
			}
			continue
		}
		if err != nil || *got != tt.want {
			t.Errorf("%q = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestTimeRoundTrip(t *testing.T) {
	ms := int64(1767323045678)
	if got, ok := ParseTime(FormatTime(ms)); !ok || got != ms {
		t.Fatalf("ParseTime(FormatTime(%d)) = %d, %v", ms, got, ok)
	}
}

func FuzzParseHistoryRequest(f *testing.F) {
	f.Add("LATEST #a * 50")
	f.Add("BETWEEN #a msgid=x timestamp=2026-01-02T03:04:05Z 10")
	f.Fuzz(func(t *testing.T, line string) {
		req, err := ParseHistoryRequest(strings.Fields(line))
		if err == nil && (req.Limit <= 0 || req.Limit > irctext.MaxHistoryLimit) {
			t.Fatalf("limit %d out of range", req.Limit)
		}
	})
}
