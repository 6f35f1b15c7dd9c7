package session

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The gateway keeps a verifier of each account's password so that a
// reconnecting client can be checked without a new Matrix login (which would
// mint a new access token every time). The verifier is salted PBKDF2; the
// Matrix password itself is never stored.
const (
	pbkdf2Iterations = 100_000
	pbkdf2KeyLen     = 32
	verifierPrefix   = "pbkdf2-sha256"
)

func hashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, pbkdf2Iterations, pbkdf2KeyLen)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", verifierPrefix, pbkdf2Iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword reports whether password matches a verifier from
// hashPassword. A malformed or empty verifier never matches.
func checkPassword(verifier, password string) bool {
	parts := strings.Split(verifier, "$")
	if len(parts) != 4 || parts[0] != verifierPrefix {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// passwordCache remembers, in memory only, a keyed hash of the password
// each account last logged in with, next to the verifier it was checked
// against and when the homeserver last accepted it. A reconnect with the
// same password then costs one HMAC instead of 100,000 PBKDF2 rounds,
// which would dominate an always-on reconnect; a wrong password still goes
// through the slow check.
type passwordCache struct {
	key     [32]byte
	mu      sync.Mutex
	entries map[string]cachedPassword
}

type cachedPassword struct {
	verifier string // the stored verifier this entry stands for
	mac      [32]byte
	// confirmed is when the homeserver last accepted the password; zero
	// when only the stored verifier vouches for it (e.g. after a restart).
	confirmed time.Time
}

func newPasswordCache() *passwordCache {
	c := &passwordCache{entries: map[string]cachedPassword{}}
	if _, err := rand.Read(c.key[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return c
}

func (c *passwordCache) mac(user, password string) [32]byte {
	h := hmac.New(sha256.New, c.key[:])
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// check says whether password is the one last verified for user against
// verifier, and when the homeserver last accepted it. Any goroutine.
func (c *passwordCache) check(user, verifier, password string) (ok bool, confirmed time.Time) {
	mac := c.mac(user, password)
	c.mu.Lock()
	e, found := c.entries[user]
	c.mu.Unlock()
	if !found || e.verifier != verifier || subtle.ConstantTimeCompare(e.mac[:], mac[:]) != 1 {
		return false, time.Time{}
	}
	return true, e.confirmed
}

// remember records a password just verified for user; confirmed is when
// the homeserver accepted it, zero if it was only the stored verifier.
// Any goroutine.
func (c *passwordCache) remember(user, verifier, password string, confirmed time.Time) {
	mac := c.mac(user, password)
	c.mu.Lock()
	c.entries[user] = cachedPassword{verifier: verifier, mac: mac, confirmed: confirmed}
	c.mu.Unlock()
}

// forget drops what is remembered for user. Any goroutine.
func (c *passwordCache) forget(user string) {
	c.mu.Lock()
	delete(c.entries, user)
	c.mu.Unlock()
}

// verify is checkPassword with the cache in front. It also says when the
// homeserver last accepted the password (zero if not since this process
// started). Any goroutine.
func (c *passwordCache) verify(user, verifier, password string) (ok bool, confirmed time.Time) {
	if verifier == "" {
		return false, time.Time{}
	}
	if ok, confirmed := c.check(user, verifier, password); ok {
		return true, confirmed
	}
	if !checkPassword(verifier, password) {
		return false, time.Time{}
	}
	c.remember(user, verifier, password, time.Time{})
	return true, time.Time{}
}
