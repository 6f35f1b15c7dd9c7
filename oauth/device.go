package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// defaultInterval is RFC 8628's polling interval when the server names none.
const defaultInterval = 5 * time.Second

// slowDownStep is how much each slow_down adds to the interval (RFC 8628
// section 3.5), for this and every later request.
const slowDownStep = 5 * time.Second

// maxBackoff bounds the wait after a failed request (network, 5xx).
const maxBackoff = time.Minute

// DeviceGrant is a device authorization request in progress (RFC 8628
// section 3.2). Show the user VerificationURI and UserCode (or
// VerificationURIComplete, which holds both) and until when they work.
// DeviceCode is a secret between the gateway and the server. A DeviceGrant
// is polled by one goroutine at a time.
type DeviceGrant struct {
	VerificationURI         string
	VerificationURIComplete string // "" when the server gives none
	UserCode                string
	// ExpiresIn is how long the codes work, as the server said; Expires
	// is when, counted from when the request was sent.
	ExpiresIn time.Duration
	Expires   time.Time
	// Interval is the least time between two polls; slow_down raises it.
	Interval time.Duration
	// DeviceID is the Matrix device the grant asks for.
	DeviceID string

	DeviceCode string
	lastPoll   time.Time
}

type deviceResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// Start asks for a device authorization for the given Matrix device (the
// account's device when it has one, so that one account keeps one device;
// NewDeviceID otherwise). It returns ErrNoDeviceGrant when the server has no
// device authorization endpoint.
func (c *Client) Start(ctx context.Context, deviceID string) (*DeviceGrant, error) {
	if !c.Metadata.SupportsDeviceGrant() {
		return nil, ErrNoDeviceGrant
	}
	if !ValidDeviceID(deviceID) {
		return nil, fmt.Errorf("oauth: device ID %q cannot go into a scope", deviceID)
	}
	sent := c.now()
	var r deviceResponse
	err := postForm(ctx, c.HTTP, c.Metadata.DeviceAuthorizationEndpoint, url.Values{
		"client_id": {c.ClientID},
		"scope":     {DeviceScope(deviceID)},
	}, &r)
	if err != nil {
		return nil, fmt.Errorf("oauth: starting a device login: %w", err)
	}
	if r.DeviceCode == "" || r.UserCode == "" || r.VerificationURI == "" || r.ExpiresIn <= 0 {
		return nil, fmt.Errorf("oauth: starting a device login: the answer lacks device_code, user_code, verification_uri or expires_in")
	}
	g := &DeviceGrant{
		VerificationURI:         r.VerificationURI,
		VerificationURIComplete: r.VerificationURIComplete,
		UserCode:                r.UserCode,
		ExpiresIn:               time.Duration(r.ExpiresIn) * time.Second,
		Interval:                time.Duration(r.Interval) * time.Second,
		DeviceID:                deviceID,
		DeviceCode:              r.DeviceCode,
	}
	g.Expires = sent.Add(g.ExpiresIn)
	if g.Interval <= 0 {
		g.Interval = defaultInterval
	}
	return g, nil
}

// PollOnce asks the token endpoint once whether the user has answered. It
// returns the tokens on approval; ErrPending while the user has not
// answered; ErrSlowDown when polled too often (it has raised g.Interval);
// ErrDenied, ErrExpired or ErrInvalidGrant when the grant is over. Poll is
// what callers normally want.
func (c *Client) PollOnce(ctx context.Context, g *DeviceGrant) (*Tokens, error) {
	sent := c.now()
	g.lastPoll = sent
	var r tokenResponse
	err := postForm(ctx, c.HTTP, c.Metadata.TokenEndpoint, url.Values{
		"grant_type":  {GrantDeviceCode},
		"device_code": {g.DeviceCode},
		"client_id":   {c.ClientID},
	}, &r)
	if errors.Is(err, ErrSlowDown) {
		g.Interval += slowDownStep
	}
	if err != nil {
		return nil, err
	}
	t, err := c.tokens(&r, sent)
	if err != nil {
		return nil, err
	}
	if t.Scope == "" {
		// RFC 6749 5.1: no scope means the scope asked for.
		t.Scope = DeviceScope(g.DeviceID)
	}
	if got := t.DeviceID(); got != g.DeviceID {
		return nil, fmt.Errorf("oauth: the login service granted device %q, not %q", got, g.DeviceID)
	}
	return t, nil
}

// Poll waits for the user to answer, polling the token endpoint every
// g.Interval (raised by every slow_down) until the tokens come, or the user
// declines (ErrDenied), or the codes expire (ErrExpired), or ctx ends (its
// error). A failed request (network, server error) is tried again later,
// waiting longer each time, until the codes expire.
func (c *Client) Poll(ctx context.Context, g *DeviceGrant) (*Tokens, error) {
	backoff := time.Duration(0)
	for {
		wait := g.Interval + backoff
		if !g.lastPoll.IsZero() {
			// Count from the last poll, which PollOnce may have made.
			wait -= c.now().Sub(g.lastPoll)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		tok, err := c.PollOnce(ctx, g)
		switch {
		case err == nil:
			return tok, nil
		case errors.Is(err, ErrPending), errors.Is(err, ErrSlowDown):
			backoff = 0
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case Temporary(err):
			backoff = min(max(2*backoff, g.Interval), maxBackoff)
		default:
			return nil, err
		}
		// The server says expired_token itself; this only stops a server
		// that never does from being polled forever.
		if c.now().After(g.Expires.Add(g.Interval + backoff)) {
			return nil, ErrExpired
		}
	}
}
