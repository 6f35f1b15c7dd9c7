package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ClientInfo describes the gateway to the authorization server, which
// shows it to the user who approves a login.
type ClientInfo struct {
	// Name is shown to the user ("mxircd on irc.example.org").
	Name string
	// URI is a web page about the client. The spec requires https.
	URI string
}

// DefaultClientInfo is how the gateway presents itself unless configured
// otherwise.
var DefaultClientInfo = ClientInfo{Name: "mxircd", URI: "https://github.com/mxircd/mxircd"}

// registration is the RFC 7591 client metadata the gateway registers with:
// a public native client (no secret: an IRC gateway's secret would be no
// safer than a phone app's) that uses the device grant and refreshes.
type registration struct {
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri"`
	ApplicationType         string   `json:"application_type"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	// Empty, not left out: left out means ["code"] (RFC 7591), which
	// needs the authorization code grant the gateway does not use.
	ResponseTypes []string `json:"response_types"`
}

// Register registers the gateway as a client of the authorization server
// (dynamic client registration, RFC 7591) and returns its client_id. Do it
// once per homeserver and store the client_id.
func Register(ctx context.Context, hc *http.Client, md *Metadata, info ClientInfo) (clientID string, err error) {
	body, err := json.Marshal(registration{
		ClientName:              info.Name,
		ClientURI:               info.URI,
		ApplicationType:         "native",
		TokenEndpointAuthMethod: "none",
		GrantTypes:              []string{GrantDeviceCode, GrantRefreshToken},
		ResponseTypes:           []string{},
	})
	if err != nil {
		return "", fmt.Errorf("oauth: register: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, md.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("oauth: register: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	var resp struct {
		ClientID string `json:"client_id"`
	}
	if err := do(hc, req, &resp); err != nil {
		return "", fmt.Errorf("oauth: registering the client: %w", err)
	}
	if resp.ClientID == "" {
		return "", fmt.Errorf("oauth: registering the client: no client_id in the answer")
	}
	return resp.ClientID, nil
}

// Client talks to one authorization server as one registered client. It is
// safe for concurrent use; a DeviceGrant is not.
type Client struct {
	HTTP     *http.Client // nil: http.DefaultClient
	Metadata *Metadata
	ClientID string
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Tokens are what the token endpoint hands out. AccessToken goes to the
// homeserver; RefreshToken is a secret of the gateway: stored, never shown.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	// Expires is when the access token stops working, zero when the
	// server did not say.
	Expires time.Time
	Scope   string
}

// DeviceID is the device the tokens act as, from their scope.
func (t Tokens) DeviceID() string { return DeviceIDFromScope(t.Scope) }

// GoString keeps the tokens out of %#v.
func (t Tokens) GoString() string { return t.String() }

// LogValue keeps the tokens out of logs.
func (t Tokens) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expires", t.Expires), slog.String("scope", t.Scope))
}

// String keeps the tokens out of anything that formats them with %v.
func (t Tokens) String() string {
	return fmt.Sprintf("oauth.Tokens{scope %q, expires %s}", t.Scope, t.Expires.Format(time.RFC3339))
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

func (c *Client) tokens(r *tokenResponse, sent time.Time) (*Tokens, error) {
	if r.AccessToken == "" {
		return nil, fmt.Errorf("oauth: token endpoint answered without an access token")
	}
	// Bearer is the only type Matrix uses; the name is case-insensitive.
	if !strings.EqualFold(r.TokenType, "bearer") {
		return nil, fmt.Errorf("oauth: token endpoint answered with token type %q, not Bearer", r.TokenType)
	}
	t := &Tokens{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, Scope: r.Scope}
	if r.ExpiresIn > 0 {
		// Counted from when the request was sent, so it errs early.
		t.Expires = sent.Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	return t, nil
}

// Refresh trades a refresh token for new tokens (refresh token grant). The
// returned Tokens hold the refresh token to use next time: a new one when
// the server rotated it (the old one is then dead: store the new one before
// anything else), or the same one when it did not. ErrInvalidGrant means the
// login is over.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	sent := c.now()
	var r tokenResponse
	err := postForm(ctx, c.HTTP, c.Metadata.TokenEndpoint, url.Values{
		"grant_type":    {GrantRefreshToken},
		"refresh_token": {refreshToken},
		"client_id":     {c.ClientID},
	}, &r)
	if err != nil {
		return nil, fmt.Errorf("oauth: refreshing the access token: %w", err)
	}
	t, err := c.tokens(&r, sent)
	if err != nil {
		return nil, err
	}
	if t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, nil
}

// Revoke revokes a token (RFC 7009). hint is "refresh_token",
// "access_token" or "". Revoking a token the server does not know succeeds,
// as the RFC says; revoking the refresh token ends the login.
func (c *Client) Revoke(ctx context.Context, token, hint string) error {
	form := url.Values{"token": {token}, "client_id": {c.ClientID}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	if err := postForm(ctx, c.HTTP, c.Metadata.RevocationEndpoint, form, nil); err != nil {
		return fmt.Errorf("oauth: revoking a token: %w", err)
	}
	return nil
}
