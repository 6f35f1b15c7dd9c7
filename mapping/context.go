package mapping

import (
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// snippetLen bounds the quoted context shown for replies, reactions and
// deletions: enough to recognise a message, short enough for one line.
const snippetLen = 60

// Snippet is a one-line, shortened form of a message for quoting.
func Snippet(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if len(text) <= snippetLen {
		return text
	}
	cut := snippetLen
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return strings.TrimRight(text[:cut], " ") + "…"
}

// ReplyFallback reads the quote an older client put at the start of a
// reply's body ("> <@bob:example.org> original\n> more\n\nreply") and
// returns whom it quotes, the quoted text and the reply without it. ok is
// false when the body has no such fallback.
func ReplyFallback(body string) (sender id.UserID, quoted, rest string, ok bool) {
	if !strings.HasPrefix(body, "> ") {
		return "", "", body, false
	}
	var quoteLines []string
	lines := strings.Split(body, "\n")
	i := 0
	for ; i < len(lines) && strings.HasPrefix(lines[i], ">"); i++ {
		quoteLines = append(quoteLines, strings.TrimPrefix(strings.TrimPrefix(lines[i], ">"), " "))
	}
	if i < len(lines) && lines[i] == "" {
		i++
	}
	first := quoteLines[0]
	if strings.HasPrefix(first, "* ") {
		first = first[2:] // "> * <@bob:x> waves" quotes an emote
	}
	if strings.HasPrefix(first, "<") {
		if end := strings.Index(first, ">"); end > 0 {
			sender = id.UserID(first[1:end])
			quoteLines[0] = strings.TrimSpace(first[end+1:])
		}
	}
	return sender, strings.Join(quoteLines, " "), strings.Join(lines[i:], "\n"), true
}
