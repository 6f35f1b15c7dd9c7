package session

import (
	"bytes"
	"testing"
	"time"
)

// The password of an auto-registered account is stored sealed: only the
// key derived from the pickle key opens it, only for its own account,
// and the sealed bytes do not contain it.
func TestSealPassword(t *testing.T) {
	pickle := bytes.Repeat([]byte{7}, 32)
	key := AutoRegisterKeyFrom(pickle)
	if bytes.Equal(key, pickle) || bytes.Equal(key, OutboxKeyFrom(pickle)) {
		t.Fatal("the password key is the pickle key or the outbox key")
	}
	const user, password = "@anon:example.org", "s3cret-Password-0123456789"
	sealed, err := sealPassword(key, user, password)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(password)) || bytes.Contains(sealed, []byte(password[:8])) {
		t.Fatalf("sealed password %x holds the plaintext", sealed)
	}
	again, err := sealPassword(key, user, password)
	if err != nil || bytes.Equal(again, sealed) {
		t.Errorf("sealing twice gave the same bytes (%v): the nonce is not fresh", err)
	}
	if got, err := openPassword(key, user, sealed); err != nil || got != password {
		t.Fatalf("openPassword = %q, %v; want the password", got, err)
	}
	if got, err := openPassword(AutoRegisterKeyFrom(bytes.Repeat([]byte{8}, 32)), user, sealed); err == nil {
		t.Errorf("another key opened it: %q", got)
	}
	if got, err := openPassword(key, "@other:example.org", sealed); err == nil {
		t.Errorf("another account's row opened it: %q", got)
	}
	if _, err := openPassword(key, user, sealed[:5]); err == nil {
		t.Error("a truncated sealed password opened")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := openPassword(key, user, tampered); err == nil {
		t.Error("a tampered sealed password opened")
	}
}

func TestKeepPeriod(t *testing.T) {
	for _, tc := range []struct{ keepFor, want time.Duration }{
		{0, time.Second},
		{2 * time.Second, time.Second},
		{30 * time.Second, 3 * time.Second},
		{24 * time.Hour, time.Minute},
	} {
		if got := keepPeriod(tc.keepFor); got != tc.want {
			t.Errorf("keepPeriod(%v) = %v, want %v", tc.keepFor, got, tc.want)
		}
	}
}
