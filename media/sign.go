package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// A link's payload, before base64url:
//
//	byte 0     format version (payloadVersion)
//	byte 1     flags (flagSameServer: the mxc server is the user's server name
//	           and is not repeated)
//	uvarint    expiry, unix seconds
//	uvarint    length of the user ID, then the user ID
//	[uvarint   length of the mxc server, then the server, unless flagSameServer]
//	rest       the media ID
//
// IRC lines are 512 bytes, so links are kept short: a binary payload, the
// server name usually folded into the user ID, and the MAC truncated to 128
// bits (RFC 2104 §5 allows truncation to half the hash length).
const (
	payloadVersion = 1
	flagSameServer = 1 << 0

	macSize = 16
	// macContext separates these MACs from anything else the key might be
	// (mis)used for.
	macContext = "mxircd media link v1\x00"

	// Limits keep decoding cheap; real IDs are far shorter.
	maxIDLen      = 255
	maxPayloadLen = 3*maxIDLen + 2 + 3*binary.MaxVarintLen64
)

// Strict, so that each payload and MAC has exactly one encoding.
var b64 = base64.RawURLEncoding.Strict()

var errMalformed = errors.New("malformed link")

// claims is what a link grants: downloading Media as User until Expiry.
type claims struct {
	User   id.UserID
	Media  id.ContentURI
	Expiry int64 // unix seconds
}

func (c claims) encode() []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+3*(1+len(c.User))+len(c.Media.FileID))
	flags := byte(0)
	same := userServer(c.User) == c.Media.Homeserver
	if same {
		flags |= flagSameServer
	}
	b = append(b, payloadVersion, flags)
	b = binary.AppendUvarint(b, uint64(c.Expiry))
	b = appendString(b, string(c.User))
	if !same {
		b = appendString(b, c.Media.Homeserver)
	}
	return append(b, c.Media.FileID...)
}

func decodeClaims(b []byte) (claims, error) {
	var c claims
	if len(b) < 2 || b[0] != payloadVersion || b[1]&^flagSameServer != 0 {
		return c, errMalformed
	}
	flags := b[1]
	b = b[2:]
	exp, n := binary.Uvarint(b)
	if n <= 0 || exp > 1<<62 {
		return c, errMalformed
	}
	b = b[n:]
	c.Expiry = int64(exp)
	var user, server string
	var ok bool
	if user, b, ok = readString(b); !ok {
		return c, errMalformed
	}
	c.User = id.UserID(user)
	if flags&flagSameServer != 0 {
		server = userServer(c.User)
	} else if server, b, ok = readString(b); !ok {
		return c, errMalformed
	}
	c.Media = id.ContentURI{Homeserver: server, FileID: string(b)}
	if !validUser(c.User) || !validMXC(c.Media) {
		return c, errMalformed
	}
	return c, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readString(b []byte) (s string, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, false
	}
	b = b[k:]
	return string(b[:n]), b[n:], true
}

// userServer is the server name of a user ID ("" if it has none).
func userServer(u id.UserID) string {
	_, server, ok := strings.Cut(string(u), ":")
	if !ok {
		return ""
	}
	return server
}

// mac is the truncated HMAC-SHA256 of payload under key.
func mac(key, payload []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(macContext))
	h.Write(payload)
	return h.Sum(nil)[:macSize]
}

// sign returns the two path segments of a link: payload and MAC, base64url.
func sign(key []byte, c claims) (payload, sig string) {
	p := c.encode()
	return b64.EncodeToString(p), b64.EncodeToString(mac(key, p))
}

// verify checks the MAC in constant time and only then parses the payload,
// so nothing about an unsigned payload is ever revealed. Every failure is
// errMalformed.
func verify(key []byte, payload, sig string) (claims, error) {
	// Length checks before decoding bound the work an attacker can cause.
	if len(sig) != b64.EncodedLen(macSize) || len(payload) > b64.EncodedLen(maxPayloadLen) {
		return claims{}, errMalformed
	}
	p, err := b64.DecodeString(payload)
	if err != nil {
		return claims{}, errMalformed
	}
	s, err := b64.DecodeString(sig)
	if err != nil {
		return claims{}, errMalformed
	}
	if !hmac.Equal(s, mac(key, p)) {
		return claims{}, errMalformed
	}
	return decodeClaims(p)
}

// validUser accepts what can be signed and looked up: a non-empty "@local:server"
// of sane length without control characters.
func validUser(u id.UserID) bool {
	s := string(u)
	return len(s) <= maxIDLen && strings.HasPrefix(s, "@") && userServer(u) != "" &&
		utf8.ValidString(s) && !strings.ContainsFunc(s, isControl)
}

// validMXC accepts content URIs that can be put into a download path without
// changing its meaning: the server is a host name or IP literal with an
// optional port, the media ID a single path segment that is not a dot
// segment. The spec's media ID grammar is [A-Za-z0-9_-]; older servers made
// IDs outside it, so anything else that is safe is escaped, not refused.
func validMXC(m id.ContentURI) bool {
	if m.Homeserver == "" || len(m.Homeserver) > maxIDLen || strings.Trim(m.Homeserver, ".") == "" {
		return false
	}
	for _, r := range m.Homeserver {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-:[]", r)) {
			return false
		}
	}
	f := m.FileID
	if f == "" || f == "." || f == ".." || len(f) > maxIDLen || !utf8.ValidString(f) {
		return false
	}
	return !strings.ContainsFunc(f, func(r rune) bool { return isControl(r) || r == '/' || r == '\\' || r == ' ' })
}

func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 || r == utf8.RuneError }
