package session

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// makeVerifier builds a verifier the way hashPassword does, with a chosen
// salt and iteration count, so tests need not pay for 100,000 iterations.
func makeVerifier(t testing.TB, password, salt string, iter int) string {
	t.Helper()
	key, err := pbkdf2.Key(sha256.New, password, []byte(salt), iter, pbkdf2KeyLen)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", verifierPrefix, iter, enc.EncodeToString([]byte(salt)), enc.EncodeToString(key))
}

func TestHashPasswordRoundTrip(t *testing.T) {
	// Each hashPassword or checkPassword is a full 100,000-iteration PBKDF2
	// (slow under -race), so the list stays short.
	for i, password := range []string{"correct horse battery staple", "", "pässwörd \x00 with $ and NUL"} {
		v, err := hashPassword(password)
		if err != nil {
			t.Fatalf("hashPassword(%q): %v", password, err)
		}
		if !checkPassword(v, password) {
			t.Errorf("checkPassword(hashPassword(%q)) = false", password)
		}
		if i == 0 {
			if strings.Contains(v, password) {
				t.Errorf("verifier %q holds the password", v)
			}
			for _, wrong := range []string{password + "x", "Correct horse battery staple", ""} {
				if checkPassword(v, wrong) {
					t.Errorf("checkPassword accepted %q for the verifier of %q", wrong, password)
				}
			}
		}
	}
}

func TestHashPasswordFormat(t *testing.T) {
	v, err := hashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(v, "$")
	if len(parts) != 4 || parts[0] != verifierPrefix || parts[1] != strconv.Itoa(pbkdf2Iterations) {
		t.Fatalf("verifier %q: want %s$%d$salt$key", v, verifierPrefix, pbkdf2Iterations)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[2])
	if err != nil || len(salt) != 16 {
		t.Errorf("salt %q: %d bytes, %v; want 16", parts[2], len(salt), err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[3])
	if err != nil || len(key) != pbkdf2KeyLen {
		t.Errorf("key %q: %d bytes, %v; want %d", parts[3], len(key), err, pbkdf2KeyLen)
	}
}

func TestHashPasswordSalted(t *testing.T) {
	a, err1 := hashPassword("same password")
	b, err2 := hashPassword("same password")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if a == b {
		t.Fatalf("two verifiers of one password are equal: %q", a)
	}
	if strings.Split(a, "$")[2] == strings.Split(b, "$")[2] {
		t.Errorf("two verifiers share a salt: %q, %q", a, b)
	}
}

func TestCheckPasswordOtherIterations(t *testing.T) {
	for _, iter := range []int{1, 1000, 4096} {
		v := makeVerifier(t, "hunter2", "0123456789abcdef", iter)
		if !checkPassword(v, "hunter2") {
			t.Errorf("verifier with %d iterations did not verify: %q", iter, v)
		}
		if checkPassword(v, "hunter3") {
			t.Errorf("verifier with %d iterations accepted a wrong password", iter)
		}
	}
}

// A known answer (RFC 7914 §11, PBKDF2-HMAC-SHA256) pins the verifier format:
// the key length comes from the stored key, not from pbkdf2KeyLen.
func TestCheckPasswordKnownAnswer(t *testing.T) {
	key, _ := hex.DecodeString("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc" +
		"49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
	enc := base64.RawStdEncoding
	v := verifierPrefix + "$1$" + enc.EncodeToString([]byte("salt")) + "$" + enc.EncodeToString(key)
	if !checkPassword(v, "passwd") {
		t.Errorf("RFC 7914 vector did not verify")
	}
	if checkPassword(v, "Passwd") {
		t.Errorf("RFC 7914 vector verified the wrong password")
	}
}

func TestCheckPasswordMalformed(t *testing.T) {
	good := makeVerifier(t, "pw", "0123456789abcdef", 1000)
	if !checkPassword(good, "pw") {
		t.Fatalf("baseline verifier %q does not verify", good)
	}
	parts := strings.Split(good, "$")
	salt, key := parts[2], parts[3]
	with := func(prefix, iter, salt, key string) string {
		return strings.Join([]string{prefix, iter, salt, key}, "$")
	}
	cases := []struct{ name, verifier string }{
		{"empty", ""},
		{"garbage", "x"},
		{"only dollars", "$$$"},
		{"three parts", strings.Join(parts[:3], "$")},
		{"five parts", good + "$extra"},
		{"wrong prefix", with("pbkdf2-sha1", "1000", salt, key)},
		{"prefix case", with("PBKDF2-SHA256", "1000", salt, key)},
		{"empty prefix", with("", "1000", salt, key)},
		{"empty iterations", with(verifierPrefix, "", salt, key)},
		{"non-numeric iterations", with(verifierPrefix, "abc", salt, key)},
		{"hex iterations", with(verifierPrefix, "0x3e8", salt, key)},
		{"fractional iterations", with(verifierPrefix, "1000.0", salt, key)},
		{"spaced iterations", with(verifierPrefix, " 1000", salt, key)},
		{"zero iterations", with(verifierPrefix, "0", salt, key)},
		{"negative iterations", with(verifierPrefix, "-1000", salt, key)},
		{"too many iterations", with(verifierPrefix, "10000001", salt, key)},
		{"huge iterations", with(verifierPrefix, "99999999999", salt, key)},
		{"overflowing iterations", with(verifierPrefix, "99999999999999999999999", salt, key)},
		{"bad base64 salt", with(verifierPrefix, "1000", "!!!!", key)},
		{"padded base64 salt", with(verifierPrefix, "1000", salt+"==", key)},
		{"URL base64 salt", with(verifierPrefix, "1000", "-_-_", key)},
		{"bad base64 key", with(verifierPrefix, "1000", salt, "****")},
		{"wrong key", with(verifierPrefix, "1000", salt, strings.Repeat("A", len(key)))},
		{"empty key", with(verifierPrefix, "1000", salt, "")},
		{"other salt", with(verifierPrefix, "1000", base64.RawStdEncoding.EncodeToString([]byte("fedcba9876543210")), key)},
		{"other iterations", with(verifierPrefix, "1001", salt, key)},
		{"trailing space", good + " "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, password := range []string{"pw", ""} {
				if checkPassword(c.verifier, password) {
					t.Errorf("checkPassword(%q, %q) = true", c.verifier, password)
				}
			}
		})
	}
}

// The verifier comes from the store, but a damaged row must never panic or
// verify. Iteration counts are kept small so the fuzzer stays fast.
func FuzzCheckPassword(f *testing.F) {
	f.Add(makeVerifier(f, "pw", "0123456789abcdef", 10), "pw")
	f.Add("", "")
	f.Add("pbkdf2-sha256$1$$", "")
	f.Add("pbkdf2-sha256$1$c2FsdA$AA", "x")
	f.Fuzz(func(t *testing.T, verifier, password string) {
		if parts := strings.Split(verifier, "$"); len(parts) > 1 {
			if n, err := strconv.Atoi(parts[1]); err == nil && n > 100 {
				t.Skip("too many iterations for a fuzz run")
			}
			if len(parts) > 3 && len(parts[3]) > 256 {
				t.Skip("key too long for a fuzz run")
			}
		}
		ok := checkPassword(verifier, password)
		if ok && !strings.HasPrefix(verifier, verifierPrefix+"$") {
			t.Fatalf("checkPassword(%q, %q) verified without the prefix", verifier, password)
		}
	})
}

func TestPasswordCache(t *testing.T) {
	v1, err := hashPassword("right")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := hashPassword("new")
	if err != nil {
		t.Fatal(err)
	}
	c := newPasswordCache()
	ok := func(ok bool, _ time.Time) bool { return ok }
	if ok(c.check("@a:x", v1, "right")) {
		t.Fatal("an empty cache accepted a password")
	}
	if !ok(c.verify("@a:x", v1, "right")) || !ok(c.check("@a:x", v1, "right")) {
		t.Fatal("a verified password was not remembered")
	}
	for _, tc := range []struct{ user, verifier, password string }{
		{"@a:x", v1, "wrong"},
		{"@b:x", v1, "right"}, // another account
		{"@a:x", v2, "right"}, // the verifier changed since
	} {
		if ok(c.check(tc.user, tc.verifier, tc.password)) {
			t.Errorf("check(%q, %q) passed from the cache", tc.user, tc.password)
		}
	}
	if ok(c.verify("@a:x", v1, "wrong")) || ok(c.verify("@a:x", "", "right")) {
		t.Fatal("verify accepted a wrong password or an empty verifier")
	}
	if !ok(c.check("@a:x", v1, "right")) {
		t.Fatal("a failed attempt evicted the remembered password")
	}
	// Only the homeserver's acceptance is a confirmation; the stored
	// verifier alone is not, so a restart asks the homeserver again.
	if _, confirmed := c.verify("@a:x", v1, "right"); !confirmed.IsZero() {
		t.Errorf("a password checked only against the verifier is confirmed at %v", confirmed)
	}
	at := time.Now()
	c.remember("@a:x", v1, "right", at)
	if _, confirmed := c.verify("@a:x", v1, "right"); !confirmed.Equal(at) {
		t.Errorf("confirmed at %v, want %v", confirmed, at)
	}
	c.forget("@a:x")
	if ok(c.check("@a:x", v1, "right")) {
		t.Error("a forgotten password is still remembered")
	}
}

func BenchmarkPasswordCheck(b *testing.B) {
	v, err := hashPassword("secret")
	if err != nil {
		b.Fatal(err)
	}
	c := newPasswordCache()
	b.Run("pbkdf2", func(b *testing.B) {
		for b.Loop() {
			checkPassword(v, "secret")
		}
	})
	c.verify("@a:x", v, "secret")
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			c.verify("@a:x", v, "secret")
		}
	})
}
