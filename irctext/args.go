package irctext

import (
	"errors"
	"fmt"
	"strings"
)

// SplitArgs splits the arguments of a command typed to the service nick
// as a shell would: words are separated by spaces; 'single quotes' keep
// everything, "double quotes" keep everything but \" and \\, and outside
// quotes a backslash keeps the next character. So a password with spaces
// is "my pass word".
func SplitArgs(s string) ([]string, error) {
	var (
		args   []string
		word   strings.Builder
		inWord bool
		quote  rune // the quote we are in, 0 outside
	)
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			word.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				word.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("a %c quote is not closed", quote)
	case escaped:
		return nil, errors.New("a backslash ends the line; write \\\\ for a backslash")
	}
	if inWord {
		args = append(args, word.String())
	}
	return args, nil
}
