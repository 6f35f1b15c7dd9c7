package session

import (
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"
)

func sortUsers(users []id.UserID) { slices.Sort(users) }

func sortStrings(s []string) { slices.Sort(s) }

// joinLimited joins words with spaces into lines of at most max bytes.
func joinLimited(words []string, max int) []string { return joinLimitedBy(words, max, " ") }

// joinLimitedBy joins words with sep into lines of at most max bytes.
func joinLimitedBy(words []string, max int, sep string) []string {
	var lines []string
	var b strings.Builder
	for _, w := range words {
		if b.Len() > 0 && b.Len()+len(sep)+len(w) > max {
			lines = append(lines, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(w)
	}
	if b.Len() > 0 {
		lines = append(lines, b.String())
	}
	return lines
}
