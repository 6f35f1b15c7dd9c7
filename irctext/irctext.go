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
