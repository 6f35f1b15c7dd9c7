// Package mapping is mxircd's pure translation between IRC and Matrix:
// names, modes, message text. It does no I/O, so every rule here is
// table-tested and fuzzed in isolation.
package mapping

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// ChannelName is the IRC channel for a room: its canonical alias when it has
// one, else its room ID. Both start with a character in CHANTYPES.
func ChannelName(roomID id.RoomID, alias id.RoomAlias) string {
	// An alias always starts with '#'; one that starts with '!' would let a
	// room's canonical alias pose as another room's ID.
	if strings.HasPrefix(string(alias), "#") && validChannel(string(alias)) {
		return string(alias)
	}
	return string(roomID)
}

func validChannel(name string) bool {
	return len(name) > 1 && (name[0] == '#' || name[0] == '!') && !strings.ContainsAny(name, " ,\x07\x00\r\n")
}

// RoomTarget is what a channel name given by a client points at in Matrix:
// an alias to resolve, or a room ID.
type RoomTarget struct {
	Alias  id.RoomAlias
	RoomID id.RoomID
	Local  string // the alias or room ID without sigil and server
	Server string // the server part, for "via" when joining by room ID
}

// ParseChannel reads a channel name typed on IRC. "#name" without a server
// means an alias on ownServer; a room ID must carry its server.
func ParseChannel(name, ownServer string) (RoomTarget, bool) {
	if !validChannel(name) {
		return RoomTarget{}, false
	}
	local, server, hasServer := strings.Cut(name[1:], ":")
	if local == "" {
		return RoomTarget{}, false
	}
	switch name[0] {
	case '#':
		if !hasServer {
			server = ownServer
		}
		if server == "" {
			return RoomTarget{}, false
		}
		return RoomTarget{Alias: id.NewRoomAlias(local, server), Local: local, Server: server}, true
	default:
		if !hasServer || server == "" {
			return RoomTarget{}, false
		}
		return RoomTarget{RoomID: id.RoomID(name), Local: local, Server: server}, true
	}
}

// ParseAccount turns what a user typed as their account ("@alice:example.org",
// "alice:example.org" or "alice") into a user ID. A bare name is on
// defaultServer. Localparts are lowercased, as homeservers do on
// registration, so "Alice" and "alice" are the same account here too.
func ParseAccount(account, defaultServer string) (id.UserID, bool) {
	account = strings.TrimPrefix(account, "@")
	local, server, hasServer := strings.Cut(account, ":")
	if !hasServer {
		server = defaultServer
	}
	if local == "" || server == "" || strings.ContainsAny(account, " \x00@/") {
		return "", false
	}
	return id.NewUserID(strings.ToLower(local), server), true
}

// SplitClientName separates the client name from an account as typed in
// SASL or USER: "alice@laptop" and "@alice:example.org@phone" name a
// client after the last "@", while "@alice:example.org" names none (""). A
// client name is 1 to 32 letters, digits, '-', '_' or '.'; ok is false when
// the part after "@" is not one.
func SplitClientName(account string) (acct, client string, ok bool) {
	i := strings.LastIndexByte(account, '@')
	if i <= 0 {
		return account, "", true
	}
	client = account[i+1:]
	if len(client) == 0 || len(client) > 32 {
		return account, "", false
	}
	for _, r := range client {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return account, "", false
		}
	}
	return account[:i], client, true
}

// UserHost is the user and host part of a Matrix user's IRC hostmask:
// nick!localpart@server.
func UserHost(user id.UserID) (string, string) {
	local, server, err := user.Parse()
	if err != nil || local == "" {
		return "matrix", "unknown"
	}
	return ircSafe(local), ircSafe(server)
}

// AccountName is the IRC account name of a Matrix user: the localpart
// alone for a user of shortServer (the server a login without ":server"
// means), as a short alias drops its server, else the full Matrix ID.
func AccountName(user id.UserID, shortServer string) string {
	if local, server, err := user.Parse(); err == nil && shortServer != "" && server == shortServer && local != "" {
		return local
	}
	return string(user)
}

// ircSafe replaces bytes that would break a hostmask or a nick.
func ircSafe(s string) string {
	if !strings.ContainsAny(s, " !@,*?\x00\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(" !@,*?\x00\r\n", r) {
			return '_'
		}
		return r
	}, s)
}

// NickCandidates lists the nicks a Matrix user may get, best first: the
// localpart, then "localpart:server" which is unique because the user ID is.
func NickCandidates(user id.UserID) []string {
	local, server := UserHost(user)
	short := local
	if short == "" || strings.ContainsAny(short[:1], "#!&+~%@:$-0123456789") {
		short = "_" + short
	}
	return []string{short, short + ":" + server}
}

// MaskUser reads a ban mask or target a client typed: a Matrix ID
// ("@alice:example.org") or a mask with a literal user and host
// ("*!alice@example.org") gives the user; otherwise a wildcard-free nick
// part ("alice!*@*", "alice") gives nick for the caller to look up.
func MaskUser(mask string) (user id.UserID, nick string) {
	if strings.HasPrefix(mask, "@") {
		if u := id.UserID(mask); validUserID(u) {
			return u, ""
		}
		return "", ""
	}
	nickPart, rest, hasBang := strings.Cut(mask, "!")
	if hasBang {
		local, host, ok := strings.Cut(rest, "@")
		if ok && local != "" && host != "" && !strings.ContainsAny(local+host, "*?") {
			if u := id.NewUserID(local, host); validUserID(u) {
				return u, ""
			}
		}
	}
	if nickPart != "" && !strings.ContainsAny(nickPart, "*?@") {
		return "", nickPart
	}
	return "", ""
}

func validUserID(u id.UserID) bool {
	local, server, err := u.Parse()
	return err == nil && local != "" && server != "" && !strings.ContainsAny(string(u), " \x00")
}

// maxDerivedNick bounds nicks made from display names, which Matrix allows
// to be very long.
const maxDerivedNick = 32

// NickFromDisplayName makes an IRC nick from a Matrix display name: spaces
// become '_', characters IRC gives a meaning (",*?!@:#&+%~$", controls) are
// dropped, a leading digit or '-' gets a '_' before it, and the result is
// cut at a rune boundary. It returns "" when nothing usable is left.
func NickFromDisplayName(name string) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.TrimSpace(name) {
		switch {
		case r == ' ' || r == '\t' || r == '\u00a0':
			if !underscore && b.Len() > 0 {
				b.WriteByte('_')
				underscore = true
			}
			continue
		case r < ' ' || r == 0x7f || r == utf8.RuneError || strings.ContainsRune(",*?!@:#&+%~$.\"'", r):
			continue
		case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Mn, r) && b.Len() == 0:
			// Invisible format characters would make look-alike nicks.
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxDerivedNick {
			break
		}
		b.WriteRune(r)
		underscore = false
	}
	nick := strings.TrimRight(b.String(), "_")
	if nick == "" {
		return ""
	}
	if c := nick[0]; c == '-' || ('0' <= c && c <= '9') {
		nick = "_" + nick
	}
	return nick
}

// maxReadableChannel bounds channel names made from room names.
const maxReadableChannel = 48

// ReadableChannel makes a channel name from a room's name, for rooms without
// an alias: "#" and the name with spaces as '-', without the characters
// IRC gives a meaning in channel names (",: " and controls), cut at a rune
// boundary. It never contains ':', so it cannot be mistaken for an alias.
// It returns "" when nothing usable is left.
func ReadableChannel(roomName string) string {
	var b strings.Builder
	b.WriteByte('#')
	dash := true // no leading dash
	for _, r := range strings.TrimSpace(roomName) {
		switch {
		case unicode.IsSpace(r):
			if !dash {
				b.WriteByte('-')
				dash = true
			}
			continue
		case r < ' ' || r == 0x7f || r == utf8.RuneError || strings.ContainsRune(",:#!\x07", r) || unicode.Is(unicode.Cf, r):
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxReadableChannel {
			break
		}
		b.WriteRune(r)
		dash = false
	}
	name := strings.TrimRight(b.String(), "-")
	if len(name) < 2 {
		return ""
	}
	return name
}

// ShortAlias drops ":server" from an alias on ownServer, for deployments
// where every user is on the gateway's homeserver; ParseChannel reads the
// short form back. Other aliases are returned unchanged.
func ShortAlias(alias id.RoomAlias, ownServer string) string {
	local, server, ok := strings.Cut(strings.TrimPrefix(string(alias), "#"), ":")
	if ok && server == ownServer && local != "" {
		return "#" + local
	}
	return string(alias)
}
