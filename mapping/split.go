package mapping

import (
	"strings"
	"unicode/utf8"
)

// ircLineMax is the RFC 1459 limit on one line, CRLF included.
const ircLineMax = 512

// minLineBudget keeps LineBudget usable when a pathological prefix or target
// would otherwise leave almost no room for text; relaying in tiny pieces is
// still better than not relaying at all.
const minLineBudget = 16

// SplitText breaks one message text into chunks that each fit in max bytes, for IRC lines.
// It splits first at newlines (each line of a multi-line Matrix body becomes its own chunk; "\r\n" and "\r" count as newlines; empty lines are dropped),
// then long lines at the last space before the limit (the space is dropped), and when a word is longer than max, at a UTF-8 rune boundary.
// No chunk is ever empty or longer than max bytes, no rune is ever cut, and concatenating the chunks with the separators that were removed gives back the input (modulo dropped empty lines and the newline normalisation).
// max < 4 is treated as 4 so a rune always fits. Invalid UTF-8 bytes are each treated as one-byte runes (never produce a chunk that splits inside a valid multi-byte sequence).
func SplitText(text string, max int) []string {
	// utf8.UTFMax is the longest encoding of one rune, so a hard split can
	// always make progress without cutting one.
	if max < utf8.UTFMax {
		max = utf8.UTFMax
	}
	var chunks []string
	for len(text) > 0 {
		// "\r\n" needs no special case: splitting at "\r" and "\n" separately
		// leaves an empty line between them, which is dropped like any other.
		// Both are ASCII, so cutting at them can never split a rune.
		line := text
		if i := strings.IndexAny(text, "\r\n"); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		chunks = appendLine(chunks, line, max)
	}
	return chunks
}

// appendLine splits one newline-free line and appends its chunks.
func appendLine(chunks []string, line string, max int) []string {
	for len(line) > max {
		// A space at index max is still usable: the chunk before it is
		// exactly max bytes and the space itself is dropped. Index 0 is not,
		// since it would yield an empty chunk.
		if sp := strings.LastIndexByte(line[:max+1], ' '); sp > 0 {
			chunks = append(chunks, line[:sp])
			line = line[sp+1:]
			continue
		}
		cut := runeCut(line, max)
		chunks = append(chunks, line[:cut])
		line = line[cut:]
	}
	if line != "" {
		chunks = append(chunks, line)
	}
	return chunks
}

// runeCut returns the largest rune boundary in s that is at most max bytes
// and greater than zero. It walks forward with utf8.DecodeRuneInString rather
// than backing up over continuation bytes, because stray continuation bytes
// in invalid input are runes of their own and would otherwise be skipped
// past or, with nothing but continuation bytes, leave no boundary at all.
func runeCut(s string, max int) int {
	cut := 0
	for cut < len(s) {
		_, size := utf8.DecodeRuneInString(s[cut:])
		if cut+size > max {
			break
		}
		cut += size
	}
	return cut
}

// LineBudget returns how many bytes of text fit in "PRIVMSG <target> :<text>\r\n" sent with the given source prefix (":nick!user@host ") within the 512-byte IRC line limit, never less than 16.
// prefix is the bare "nick!user@host"; the leading ':' and trailing space of the wire form are counted here, and are tolerated if the caller includes them.
// PRIVMSG is counted because it is longer than NOTICE, so one budget serves both.
func LineBudget(prefix, target string) int {
	prefix = strings.TrimSuffix(strings.TrimPrefix(prefix, ":"), " ")
	overhead := len(":") + len(prefix) + len(" PRIVMSG ") + len(target) + len(" :") + len("\r\n")
	if n := ircLineMax - overhead; n > minLineBudget {
		return n
	}
	return minLineBudget
}

// SplitConcat cuts one line into pieces of at most max bytes whose plain
// concatenation is the line, for draft/multiline-concat: each cut is just
// after the last space before the limit (the space stays with the piece
// before it), else at a rune boundary. An empty line is one empty piece.
func SplitConcat(line string, max int) []string {
	max = maxInt(max, 4)
	var out []string
	for len(line) > max {
		cut := strings.LastIndexByte(line[:max], ' ') + 1
		if cut == 0 {
			cut = max
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			if cut == 0 {
				// No rune starts in the budget (invalid UTF-8):
				// cut at the budget rather than emit nothing forever.
				cut = max
			}
		}
		out = append(out, line[:cut])
		line = line[cut:]
	}
	return append(out, line)
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
