// Package irctext holds the IRC side's rules for text that know nothing of
// Matrix: how nicks and channel names compare (CASEMAPPING), how the
// arguments of a command typed to the service nick split, and the limits
// ISUPPORT announces. ircd and session both use it; mapping may too.
package irctext

// Casefold maps a nick or channel name to its comparison key under
// CASEMAPPING=ascii. Only ASCII letters fold: Matrix IDs are otherwise
// case-sensitive, and folding "[]\~" as rfc1459 does would merge names that
// Matrix keeps apart.
func Casefold(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			// Not strings.ToLower: it folds non-ASCII letters too (even
			// "\u212A" KELVIN SIGN to "k") and rewrites invalid UTF-8.
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}

// SilenceLimit is the most users an account's SILENCE list (its Matrix
// ignore list) may hold through IRC (ISUPPORT SILENCE).
const SilenceLimit = 1000

// MaxHistoryLimit is the most messages one CHATHISTORY request returns
// (ISUPPORT CHATHISTORY).
const MaxHistoryLimit = 100

// Match says whether name matches an IRC mask, case-insensitively as
// Casefold: * stands for any run of bytes, ? for any one byte.
func Match(mask, name string) bool {
	mask, name = Casefold(mask), Casefold(name)
	// The usual greedy matcher: on a mismatch, go back to just after the
	// last *, which takes one more byte.
	m, n := 0, 0
	star, retry := -1, 0
	for n < len(name) {
		switch {
		case m < len(mask) && (mask[m] == '?' || mask[m] == name[n]):
			m++
			n++
		case m < len(mask) && mask[m] == '*':
			star, retry = m, n
			m++
		case star >= 0:
			retry++
			m, n = star+1, retry
		default:
			return false
		}
	}
	for m < len(mask) && mask[m] == '*' {
		m++
	}
	return m == len(mask)
}
