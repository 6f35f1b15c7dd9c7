// Package oauth is the gateway's side of logging in to a Matrix homeserver
// through its OAuth 2.0 authorization server (Matrix spec v1.15+, the
// Matrix Authentication Service on matrix.org): discovery from
// /_matrix/client/v1/auth_metadata, dynamic client registration (RFC 7591),
// the device authorization grant (RFC 8628), refreshing tokens and revoking
// them (RFC 7009).
//
// It holds no state of its own and imports no session code: the caller
// stores the client_id it registered (once per homeserver) and the refresh
// token of each account, and never shows the refresh token to anyone.
//
// A login goes: Discover, Register (or the stored client_id), Start, show
// the user the DeviceGrant's VerificationURI and UserCode, Poll until the
// user approves (Tokens), declines (ErrDenied) or the code runs out
// (ErrExpired). Later, Refresh trades the refresh token for new tokens, and
// Revoke ends the grant.
package oauth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The scope tokens and grant types of the Matrix OAuth 2.0 API.
const (
	// ScopeAPI asks for full access to the client-server API.
	ScopeAPI = "urn:matrix:client:api:*"
	// ScopeDevicePrefix followed by a device ID asks for that device: the
	// homeserver creates it, or reuses it when it exists.
	ScopeDevicePrefix = "urn:matrix:client:device:"

	GrantDeviceCode   = "urn:ietf:params:oauth:grant-type:device_code"
	GrantRefreshToken = "refresh_token"
)

// MetadataPath is where a homeserver that delegates login to an OAuth 2.0
// server serves that server's metadata.
const MetadataPath = "/_matrix/client/v1/auth_metadata"

// maxBody bounds every response read: metadata is a few kilobytes.
const maxBody = 1 << 20

var (
	// ErrNotSupported: the homeserver does not log in through OAuth 2.0
	// (auth_metadata answered 404 M_UNRECOGNIZED, or not at all).
	ErrNotSupported = errors.New("the homeserver does not offer OAuth 2.0 login")
	// ErrNoDeviceGrant: it does, but not with the device authorization
	// grant, which is the only one an IRC client can follow.
	ErrNoDeviceGrant = errors.New("the homeserver's login service does not offer device login")

	// ErrPending is authorization_pending: the user has not answered yet.
	ErrPending = errors.New("the login has not been approved yet")
	// ErrSlowDown is slow_down: poll less often (the grant's Interval has
	// already been raised by PollOnce).
	ErrSlowDown = errors.New("the login service asked to be polled less often")
	// ErrDenied is access_denied: the user declined.
	ErrDenied = errors.New("the login was declined")
	// ErrExpired is expired_token: the code ran out before it was approved.
	ErrExpired = errors.New("the login code expired before it was approved")
	// ErrInvalidGrant is invalid_grant: the device code or refresh token is
	// unknown, used up or revoked. For a refresh token it means the login
	// has ended and the user must log in again.
	ErrInvalidGrant = errors.New("the login is no longer valid")
	// ErrUnknownClient is invalid_client: the server does not know the
	// client_id (any more); Clients.Forget it and register again.
	ErrUnknownClient = errors.New("the login service does not know this gateway")
)

// Error is an OAuth 2.0 error response (RFC 6749 section 5.2). It matches
// the Err* values above with errors.Is by its Code.
type Error struct {
	Status      int // HTTP status
	Code        string
	Description string
}

func (e *Error) Error() string {
	if e.Description != "" {
		return fmt.Sprintf("oauth: %s (%s, HTTP %d)", e.Code, e.Description, e.Status)
	}
	return fmt.Sprintf("oauth: %s (HTTP %d)", e.Code, e.Status)
}

func (e *Error) Is(target error) bool {
	switch e.Code {
	case "authorization_pending":
		return target == ErrPending
	case "slow_down":
		return target == ErrSlowDown
	case "access_denied":
		return target == ErrDenied
	case "expired_token":
		return target == ErrExpired
	case "invalid_grant":
		return target == ErrInvalidGrant
	case "invalid_client":
		return target == ErrUnknownClient
	}
	return false
}

// Metadata is the authorization server metadata (RFC 8414) as the Matrix
// spec serves it. Only the fields this package uses are kept.
type Metadata struct {
	Issuer                      string   `json:"issuer"`
	AuthorizationEndpoint       string   `json:"authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint"`
	RevocationEndpoint          string   `json:"revocation_endpoint"`
	RegistrationEndpoint        string   `json:"registration_endpoint"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint,omitempty"`
	GrantTypesSupported         []string `json:"grant_types_supported"`
	AccountManagementURI        string   `json:"account_management_uri,omitempty"`
}

// SupportsDeviceGrant says whether the server offers RFC 8628.
func (m *Metadata) SupportsDeviceGrant() bool {
	if m.DeviceAuthorizationEndpoint == "" {
		return false
	}
	for _, g := range m.GrantTypesSupported {
		if g == GrantDeviceCode {
			return true
		}
	}
	return false
}

// Discover asks the homeserver at homeserverURL (the client-server API base
// URL) for its authorization server's metadata. It returns ErrNotSupported
// when the homeserver has none, and an error when the metadata lacks an
// endpoint the gateway needs or names one it must not send secrets to
// (anything but https, except http to a loopback address).
func Discover(ctx context.Context, hc *http.Client, homeserverURL string) (*Metadata, error) {
	u := strings.TrimRight(homeserverURL, "/") + MetadataPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("oauth: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpClient(hc).Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauth: discovery at %s: %w", homeserverURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("oauth: discovery at %s: %w", homeserverURL, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusMethodNotAllowed:
		// 404 M_UNRECOGNIZED is what the spec says; older servers answer a
		// bare 404 or 405 for a path they do not know.
		return nil, ErrNotSupported
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("oauth: discovery at %s: HTTP %d", homeserverURL, resp.StatusCode)
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("oauth: discovery at %s: %w", homeserverURL, err)
	}
	if err := md.validate(); err != nil {
		return nil, fmt.Errorf("oauth: discovery at %s: %w", homeserverURL, err)
	}
	return &md, nil
}

func (m *Metadata) validate() error {
	for _, ep := range []struct{ name, url string }{
		{"issuer", m.Issuer},
		{"token_endpoint", m.TokenEndpoint},
		{"revocation_endpoint", m.RevocationEndpoint},
		{"registration_endpoint", m.RegistrationEndpoint},
	} {
		if ep.url == "" {
			return fmt.Errorf("metadata without %s", ep.name)
		}
		if err := checkEndpoint(ep.url); err != nil {
			return fmt.Errorf("%s: %w", ep.name, err)
		}
	}
	if m.DeviceAuthorizationEndpoint != "" {
		if err := checkEndpoint(m.DeviceAuthorizationEndpoint); err != nil {
			return fmt.Errorf("device_authorization_endpoint: %w", err)
		}
	}
	return nil
}

// checkEndpoint refuses URLs that tokens must not be sent to in the clear.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q is plain http to a host that is not loopback", raw)
	}
	return fmt.Errorf("%q is not an https URL", raw)
}

// DeviceScope is the scope that asks for API access as the given device.
func DeviceScope(deviceID string) string {
	return ScopeAPI + " " + ScopeDevicePrefix + deviceID
}

// DeviceIDFromScope returns the device ID a scope asks for, or "" when it
// names none.
func DeviceIDFromScope(scope string) string {
	for _, tok := range strings.Fields(scope) {
		if id, ok := strings.CutPrefix(tok, ScopeDevicePrefix); ok {
			return id
		}
	}
	return ""
}

// deviceIDAlphabet is a subset of RFC 3986's unreserved characters, which
// the spec requires of a device ID in a scope; upper case and digits only,
// as Dendrite and Synapse make them, so people can read them out.
const deviceIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewDeviceID makes a device ID for an account that has none yet: 12
// characters, more than the 10 the spec asks for.
func NewDeviceID() string {
	b := make([]byte, 12)
	rand.Read(b)
	for i := range b {
		b[i] = deviceIDAlphabet[int(b[i])%len(deviceIDAlphabet)]
	}
	return string(b)
}

// ValidDeviceID says whether id may go into a device scope.
func ValidDeviceID(id string) bool {
	if id == "" {
		return false
	}
	for _, c := range id {
		if !isUnreserved(c) {
			return false
		}
	}
	return true
}

func isUnreserved(c rune) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func httpClient(hc *http.Client) *http.Client {
	if hc == nil {
		return http.DefaultClient
	}
	return hc
}

// postForm posts an application/x-www-form-urlencoded request and decodes
// a 2xx JSON answer into out (when out is not nil), or returns the OAuth
// error the server gave.
func postForm(ctx context.Context, hc *http.Client, endpoint string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return do(hc, req, out)
}

func do(hc *http.Client, req *http.Request, out any) error {
	resp, err := httpClient(hc).Do(req)
	if err != nil {
		return fmt.Errorf("oauth: %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("oauth: %s: %w", req.URL.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		return responseError(resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("oauth: %s: answer is not the JSON expected: %w", req.URL.Redacted(), err)
	}
	return nil
}

// responseError makes an *Error from an error response; a body that is not
// an OAuth error (a proxy's error page) still gives one, coded by status.
func responseError(status int, body []byte) error {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return &Error{Status: status, Code: fmt.Sprintf("http_%d", status)}
	}
	return &Error{Status: status, Code: e.Error, Description: e.Description}
}

// Temporary says whether err may go away by itself (the server or the
// network failed), so that a poll or refresh should be tried again later
// rather than given up.
func Temporary(err error) bool {
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Status >= 500 || oe.Status == http.StatusTooManyRequests
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue)
}
