package oauth

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestErrorIs(t *testing.T) {
	for code, want := range map[string]error{
		"authorization_pending": ErrPending,
		"slow_down":             ErrSlowDown,
		"access_denied":         ErrDenied,
		"expired_token":         ErrExpired,
		"invalid_grant":         ErrInvalidGrant,
		"invalid_client":        ErrUnknownClient,
	} {
		err := fmt.Errorf("wrapped: %w", &Error{Status: 400, Code: code})
		if !errors.Is(err, want) {
			t.Errorf("%s: not %v", code, want)
		}
		for _, other := range []error{ErrPending, ErrSlowDown, ErrDenied, ErrExpired, ErrInvalidGrant, ErrUnknownClient, ErrNotSupported} {
			if other != want && errors.Is(err, other) {
				t.Errorf("%s is also %v", code, other)
			}
		}
	}
	if errors.Is(&Error{Code: "invalid_client"}, ErrInvalidGrant) {
		t.Error("invalid_client matched ErrInvalidGrant")
	}
}

func TestResponseError(t *testing.T) {
	err := responseError(400, []byte(`{"error":"slow_down","error_description":"easy"}`))
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != "slow_down" || oe.Description != "easy" || oe.Status != 400 {
		t.Fatalf("got %#v", err)
	}
	// A proxy's HTML error page is still an error, coded by its status,
	// and temporary when the status says so.
	err = responseError(502, []byte("<html>bad gateway</html>"))
	if !errors.As(err, &oe) || oe.Code != "http_502" || !Temporary(err) {
		t.Fatalf("got %#v, temporary %v", err, Temporary(err))
	}
	if Temporary(responseError(400, []byte(`{"error":"invalid_grant"}`))) {
		t.Error("invalid_grant counted as temporary")
	}
}

func TestScopes(t *testing.T) {
	scope := DeviceScope("ABCDEFGHIJKL")
	if scope != "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJKL" {
		t.Errorf("DeviceScope = %q", scope)
	}
	if got := DeviceIDFromScope("openid " + scope); got != "ABCDEFGHIJKL" {
		t.Errorf("DeviceIDFromScope = %q", got)
	}
	if got := DeviceIDFromScope(ScopeAPI); got != "" {
		t.Errorf("DeviceIDFromScope without a device = %q", got)
	}
	seen := map[string]bool{}
	for range 100 {
		id := NewDeviceID()
		if len(id) < 10 || !ValidDeviceID(id) || strings.ToUpper(id) != id {
			t.Fatalf("NewDeviceID() = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewDeviceID repeated %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "A B", "A/B", "ÄBC", "a:b"} {
		if ValidDeviceID(bad) {
			t.Errorf("ValidDeviceID(%q) = true", bad)
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://auth.example.org/token": true,
		"http://127.0.0.1:8080/token":    true,
		"http://[::1]/token":             true,
		"http://localhost/token":         true,
		"http://auth.example.org/token":  false,
		"ftp://auth.example.org/token":   false,
		"auth.example.org/token":         false,
	} {
		if err := checkEndpoint(raw); (err == nil) != ok {
			t.Errorf("checkEndpoint(%q) = %v", raw, err)
		}
	}
}

func TestTokensStayOutOfLogs(t *testing.T) {
	tok := &Tokens{AccessToken: "secret-access", RefreshToken: "secret-refresh", Scope: DeviceScope("DEV")}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("got", "tokens", tok)
	out := b.String() + fmt.Sprint(tok) + fmt.Sprintf("%v %s %+v %#v %v", tok, tok, *tok, *tok, []Tokens{*tok})
	if strings.Contains(out, "secret") {
		t.Errorf("a token leaked into %q", out)
	}
}
