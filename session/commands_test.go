package session

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

// A handler's returned error is sent by the session's dispatcher: as its
// numeric, or as FAIL or a NOTICE by the standard-replies rule, inside the
// command's labeled response when it has one.
func TestCommandErrorReplies(t *testing.T) {
	labeled := map[string]bool{"labeled-response": true, "batch": true}
	std := map[string]bool{"labeled-response": true, "batch": true, "standard-replies": true}
	for _, tc := range []struct {
		name string
		caps map[string]bool
		line string
		want []string // each line sent, as Command and Params (the test recorder leaves the nick out of its own numerics)
	}{
		// (A room ID is answered at once; an alias is looked up first,
		// to tell 403 from 442.)
		{"numeric", nil, "TOPIC !nowhere:x", []string{"442 !nowhere:x You're not on that channel"}},
		{"labeled numeric", labeled, "@label=a TOPIC !nowhere:x", []string{"442 me !nowhere:x You're not on that channel label=a"}},
		// (A bare nick would be looked up on the homeserver; one with a
		// server part that is no Matrix ID cannot be anyone.)
		{"two numerics in a batch", labeled, "@label=w WHOIS ghost:nowhere", []string{
			"BATCH +lr labeled-response label=w", "401 me ghost:nowhere No such nick/channel batch=lr",
			"318 me ghost:nowhere End of /WHOIS list batch=lr", "BATCH -lr"}},
		{"FAIL without a numeric", std, "ALWAYSON maybe", []string{"FAIL ALWAYSON INVALID_PARAMS MAYBE ALWAYSON takes ON, OFF or DEFAULT"}},
		{"NOTICE without standard-replies", nil, "ALWAYSON maybe", []string{"NOTICE ALWAYSON takes ON, OFF or DEFAULT"}},
		{"FAIL for a command whose specification wants it", nil, "REDACT #nowhere $x",
			[]string{"FAIL REDACT INVALID_TARGET #nowhere No such channel or query"}},
		{"too few parameters", nil, "KICK #nowhere", []string{"461 KICK Not enough parameters"}},
		{"not in the table", nil, "FROBNICATE", []string{"421 FROBNICATE Unknown command"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := unstartedSession(t)
			s.synced = true
			conn := &capRecorder{caps: tc.caps}
			conn.nick = "me"
			a := newAttachment(s, conn, "")
			s.clients[a] = true
			m, err := irc.ParseMessage(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			s.handleCommand(a, m)
			var got []string
			for _, l := range conn.all() {
				line := strings.Join(append([]string{l.Command}, l.Params...), " ")
				for _, k := range []string{"label", "batch"} {
					if v, ok := l.Tags[k]; ok {
						line += " " + k + "=" + v
					}
				}
				got = append(got, line)
			}
			// Batch names are counted; only their shape matters here.
			joined := strings.Join(got, "\n")
			for _, ref := range []string{"+lr", "-lr", "=lr"} {
				joined = replaceRef(joined, ref)
			}
			if want := strings.Join(tc.want, "\n"); joined != want {
				t.Errorf("sent\n%s\nwant\n%s", joined, want)
			}
		})
	}
}

// replaceRef cuts the counter off each batch name that follows prefix.
func replaceRef(s, prefix string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(prefix)])
		s = s[i+len(prefix):]
		j := 0
		for j < len(s) && s[j] != ' ' && s[j] != '\n' {
			j++
		}
		s = s[j:]
	}
}
