package mapping

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mxircd/mxircd/irctext"
)

// TimeFormat is the IRCv3 server-time format, also used by CHATHISTORY and
// MARKREAD timestamps.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders Unix milliseconds as an IRCv3 timestamp.
func FormatTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(TimeFormat) }

// ParseTime reads an IRCv3 timestamp into Unix milliseconds. It accepts
// any RFC 3339 time, since clients differ in the fraction they send.
func ParseTime(s string) (int64, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// HistoryRef is one anchor of a CHATHISTORY request: "*" (none), a
// message ID or a time.
type HistoryRef struct {
	MsgID string
	TS    int64 // Unix milliseconds
	Star  bool
}

// HistoryRequest is a parsed CHATHISTORY command.
type HistoryRequest struct {
	Sub    string // LATEST, BEFORE, AFTER, AROUND, BETWEEN or TARGETS
	Target string // empty for TARGETS
	From   HistoryRef
	To     HistoryRef // BETWEEN and TARGETS only
	Limit  int
}

// HistoryError is a CHATHISTORY failure as a standard reply code
// (INVALID_PARAMS, UNKNOWN_COMMAND, INVALID_MSGREFTYPE) and its context.
type HistoryError struct {
	Code    string
	Context []string
	Text    string
}

func (e *HistoryError) Error() string { return e.Text }

// ParseHistoryRequest checks a CHATHISTORY command's parameters. The limit
// is capped at irctext.MaxHistoryLimit.
func ParseHistoryRequest(params []string) (*HistoryRequest, error) {
	if len(params) == 0 {
		return nil, &HistoryError{Code: "INVALID_PARAMS", Context: []string{"*"}, Text: "Missing subcommand"}
	}
	req := &HistoryRequest{Sub: strings.ToUpper(params[0])}
	want := map[string]int{"LATEST": 4, "BEFORE": 4, "AFTER": 4, "AROUND": 4, "BETWEEN": 5, "TARGETS": 4}[req.Sub]
	if want == 0 {
		return nil, &HistoryError{Code: "INVALID_PARAMS", Context: []string{params[0]}, Text: "Unknown subcommand " + params[0]}
	}
	if len(params) < want {
		return nil, &HistoryError{Code: "INVALID_PARAMS", Context: []string{req.Sub}, Text: fmt.Sprintf("CHATHISTORY %s needs %d parameters", req.Sub, want-1)}
	}
	refs := params[2 : want-1]
	if req.Sub == "TARGETS" {
		refs = params[1 : want-1]
	} else {
		req.Target = params[1]
	}
	limit, err := strconv.Atoi(params[want-1])
	if err != nil || limit <= 0 {
		return nil, &HistoryError{Code: "INVALID_PARAMS", Context: []string{req.Sub}, Text: "Invalid limit " + params[want-1]}
	}
	req.Limit = min(limit, irctext.MaxHistoryLimit)
	for i, raw := range refs {
		ref, err := parseHistoryRef(req.Sub, raw, req.Sub == "LATEST")
		if err != nil {
			return nil, err
		}
		if req.Sub == "TARGETS" && ref.MsgID != "" {
			return nil, &HistoryError{Code: "INVALID_PARAMS", Context: []string{req.Sub, raw}, Text: "TARGETS takes timestamps"}
		}
		if i == 0 {
			req.From = ref
		} else {
			req.To = ref
		}
	}
	return req, nil
}

func parseHistoryRef(sub, raw string, starOK bool) (HistoryRef, error) {
	if raw == "*" && starOK {
		return HistoryRef{Star: true}, nil
	}
	kind, value, ok := strings.Cut(raw, "=")
	switch {
	case ok && kind == "msgid" && value != "":
		return HistoryRef{MsgID: value}, nil
	case ok && kind == "timestamp":
		if ms, ok := ParseTime(value); ok {
			return HistoryRef{TS: ms}, nil
		}
		return HistoryRef{}, &HistoryError{Code: "INVALID_PARAMS", Context: []string{sub, raw}, Text: "Invalid timestamp " + value}
	}
	return HistoryRef{}, &HistoryError{Code: "INVALID_MSGREFTYPE", Context: []string{sub, raw}, Text: "Message references are msgid= or timestamp="}
}
