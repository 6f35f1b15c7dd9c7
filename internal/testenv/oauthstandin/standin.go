// Package oauthstandin is a STAND-IN for the Matrix Authentication Service,
// for tests only. It is not an OAuth 2.0 server anyone should run.
//
// Dendrite, the only homeserver the test rig can run, implements neither
// the Matrix OAuth 2.0 API nor SSO. This package puts a reverse proxy in
// front of a real Dendrite that answers, as the spec (v1.15+) and the RFCs
// describe:
//
//   - GET /_matrix/client/v1/auth_metadata (RFC 8414 metadata, with the
//     device_authorization_endpoint of RFC 8628),
//   - dynamic client registration (RFC 7591) for public clients
//     (token_endpoint_auth_method "none"),
//   - the device authorization endpoint (RFC 8628 section 3.1) with the
//     scopes urn:matrix:client:api:* and urn:matrix:client:device:<ID>,
//   - the token endpoint with the device_code grant (authorization_pending,
//     slow_down, access_denied, expired_token, invalid_grant) and the
//     refresh_token grant (rotating the refresh token),
//   - revocation (RFC 7009),
//
// and, with Options.SSO, legacy SSO as the client-server API describes
// it (GET /login listing m.login.sso and m.login.token,
// /login/sso/redirect, and POST /login with m.login.token), and forwards
// every other request to Dendrite, so that the gateway is
// configured with the proxy's URL as its homeserver and everything after
// login runs against the real homeserver.
//
// What a real authorization server does in a browser, a test does by
// calling Approve or Deny with the user code. On approval the stand-in logs
// in to Dendrite with m.login.password (the account's password, the device
// ID from the scope) and hands out the access token Dendrite minted; a
// refresh logs in again with the same device ID (Dendrite then invalidates
// the previous access token) and rotates the refresh token; revoking logs
// the Dendrite token out, which ends the device, as ending a session in the
// real service does. What an identity provider does in a browser for SSO,
// a test does by SignInSSO (the browser is signed in as that account): the
// redirect endpoint then sends the browser back with a login token, which
// m.login.token trades for a token the stand-in gets from Dendrite by
// logging in with the account's password as the device asked for. The authorization code grant is listed in the
// metadata, as the spec requires, but not implemented: its endpoint says so.
package oauthstandin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// The Matrix scope tokens and grant types, spelled out here rather than
// taken from the gateway's package, so that a typo there fails a test.
const (
	scopeAPI          = "urn:matrix:client:api:*"
	scopeDevicePrefix = "urn:matrix:client:device:"
	grantDeviceCode   = "urn:ietf:params:oauth:grant-type:device_code"
	grantRefreshToken = "refresh_token"
	grantAuthCode     = "authorization_code"
)

// slowDownStep is RFC 8628's increase of the interval on slow_down.
const slowDownStep = 5 * time.Second

// pollSlack forgives a poll that arrives this much before the interval is
// over: the client counts from when it sent its last poll, the server from
// when it received it.
const pollSlack = 250 * time.Millisecond

// Options change what the stand-in hands out.
type Options struct {
	// CodeLifetime is the device codes' expires_in (default 10 minutes).
	CodeLifetime time.Duration
	// Interval is the polling interval it asks for (default 1 second;
	// RFC 8628's default of 5 would make tests slow).
	Interval time.Duration
	// AccessTokenLifetime is the expires_in of access tokens (default 5
	// minutes). Dendrite's tokens do not expire by themselves; see
	// ExpireAccessToken.
	AccessTokenLifetime time.Duration
	// NoOAuth answers auth_metadata 404, as a homeserver without OAuth
	// 2.0 does.
	NoOAuth bool
	// SSO serves legacy SSO: GET /login lists m.login.sso and
	// m.login.token, and the redirect and m.login.token work.
	SSO bool
	// NoPassword leaves m.login.password out of GET /login, as the
	// Matrix Authentication Service does when password login is off.
	NoPassword bool
}

// Server is a running stand-in.
type Server struct {
	// URL is the base URL to configure as the homeserver: the proxy.
	URL string

	hs   *testenv.Homeserver
	opts Options
	srv  *httptest.Server

	mu       sync.Mutex
	clients  map[string]*client // by client_id
	grants   map[string]*grant  // by device_code
	byCode   map[string]*grant  // by normalised user code
	sessions map[string]*session
	refresh  map[string]*session // by refresh token
	access   map[string]*session // by access token

	failPolls int // device-grant polls still to answer 503 (FailPolls)

	ssoUser     *testenv.Account       // who the browser is signed in as (SignInSSO)
	loginTokens map[string]*loginToken // SSO login tokens, by token

	answersMu sync.Mutex     // not mu: errors are answered with and without it
	answers   map[string]int // OAuth error codes answered, by code
}

type client struct {
	id         string
	grantTypes []string
}

type grant struct {
	deviceCode, userCode string
	clientID             string
	scope                string
	deviceID             string
	expires              time.Time
	interval             time.Duration
	lastPoll             time.Time
	denied               bool
	approved             *session
	exchanged            bool
	polls                int  // token requests for this grant
	slowDown             bool // answer the next poll slow_down (SlowDownNext)
}

// loginToken is an SSO login token (m.login.token), good once, briefly.
type loginToken struct {
	acct    *testenv.Account
	expires time.Time
	used    bool
}

// session is one approved login: one device of one account.
type session struct {
	clientID     string
	user         id.UserID
	localpart    string
	password     string
	deviceID     string
	scope        string
	accessToken  string
	refreshToken string
}

// Start starts a stand-in in front of hs, stopped when the test ends.
func Start(t testing.TB, hs *testenv.Homeserver, opts Options) *Server {
	t.Helper()
	if opts.CodeLifetime <= 0 {
		opts.CodeLifetime = 10 * time.Minute
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.AccessTokenLifetime <= 0 {
		opts.AccessTokenLifetime = 5 * time.Minute
	}
	target, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatalf("oauthstandin: homeserver URL: %v", err)
	}
	s := &Server{
		hs:       hs,
		opts:     opts,
		clients:  map[string]*client{},
		grants:   map[string]*grant{},
		byCode:   map[string]*grant{},
		sessions: map[string]*session{},
		refresh:  map[string]*session{},
		access:   map[string]*session{},
		answers:  map[string]int{},

		loginTokens: map[string]*loginToken{},
	}
	mux := http.NewServeMux()
	if opts.NoOAuth {
		mux.HandleFunc("GET /_matrix/client/v1/auth_metadata", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{"errcode": "M_UNRECOGNIZED", "error": "this homeserver has no OAuth 2.0 (oauthstandin NoOAuth)"})
		})
	} else {
		mux.HandleFunc("GET /_matrix/client/v1/auth_metadata", s.metadata)
	}
	mux.HandleFunc("GET /_matrix/client/v3/login", s.loginFlows)
	if opts.SSO {
		mux.HandleFunc("GET /_matrix/client/v3/login/sso/redirect", s.ssoRedirect)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux.HandleFunc("POST /_matrix/client/v3/login", func(w http.ResponseWriter, r *http.Request) { s.postLogin(w, r, proxy) })
	mux.HandleFunc("POST /oauth2/registration", s.register)
	mux.HandleFunc("POST /oauth2/device", s.deviceAuthorization)
	mux.HandleFunc("GET /oauth2/device/verify", s.verifyPage)
	mux.HandleFunc("POST /oauth2/token", s.token)
	mux.HandleFunc("POST /oauth2/revoke", s.revoke)
	mux.HandleFunc("GET /oauth2/authorize", s.authorize)
	mux.Handle("/", proxy)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

func (s *Server) endpoint(path string) string { return s.URL + path }

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                     s.URL + "/",
		"authorization_endpoint":                     s.endpoint("/oauth2/authorize"),
		"token_endpoint":                             s.endpoint("/oauth2/token"),
		"revocation_endpoint":                        s.endpoint("/oauth2/revoke"),
		"registration_endpoint":                      s.endpoint("/oauth2/registration"),
		"device_authorization_endpoint":              s.endpoint("/oauth2/device"),
		"response_types_supported":                   []string{"code"},
		"grant_types_supported":                      []string{grantAuthCode, grantRefreshToken, grantDeviceCode},
		"response_modes_supported":                   []string{"query", "fragment"},
		"code_challenge_methods_supported":           []string{"S256"},
		"revocation_endpoint_auth_methods_supported": []string{"none"},
		"token_endpoint_auth_methods_supported":      []string{"none"},
	})
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "oauthstandin: the authorization code grant is not implemented by this test stand-in; use the device grant", http.StatusNotImplemented)
}

func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "oauthstandin: a test stand-in. Logins are approved by the test (Approve), not here. Code: %s\n", r.URL.Query().Get("user_code"))
}

// register is RFC 7591 section 3 with the Matrix spec's rules on client
// metadata.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var md struct {
		ClientName              string   `json:"client_name"`
		ClientURI               string   `json:"client_uri"`
		ApplicationType         string   `json:"application_type"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		GrantTypes              []string `json:"grant_types"`
		ResponseTypes           []string `json:"response_types"`
		RedirectURIs            []string `json:"redirect_uris"`
	}
	// Absent arrays take RFC 7591's defaults; present but empty stays empty.
	md.GrantTypes = []string{grantAuthCode}
	md.ResponseTypes = []string{"code"}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&md); err != nil {
		s.oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON object of client metadata")
		return
	}
	bad := func(desc string) { s.oauthError(w, http.StatusBadRequest, "invalid_client_metadata", desc) }
	u, err := url.Parse(md.ClientURI)
	switch {
	case md.ClientURI == "":
		bad("client_uri is required")
		return
	case err != nil || u.Scheme != "https" || u.Host == "":
		bad("client_uri must be an https URL")
		return
	case u.User != nil:
		bad("client_uri must not hold a user or password")
		return
	}
	if md.ApplicationType == "" {
		md.ApplicationType = "web"
	}
	if md.ApplicationType != "web" && md.ApplicationType != "native" {
		bad("application_type must be web or native")
		return
	}
	if md.TokenEndpointAuthMethod == "" {
		md.TokenEndpointAuthMethod = "client_secret_basic"
	}
	if md.TokenEndpointAuthMethod != "none" {
		bad("this stand-in registers public clients only (token_endpoint_auth_method none)")
		return
	}
	for _, g := range md.GrantTypes {
		if g != grantAuthCode && g != grantRefreshToken && g != grantDeviceCode {
			bad(fmt.Sprintf("grant type %q is not supported", g))
			return
		}
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			bad(fmt.Sprintf("response type %q is not supported", rt))
			return
		}
	}
	// RFC 7591 section 2.1: response types and grant types must agree.
	if slices.Contains(md.ResponseTypes, "code") != slices.Contains(md.GrantTypes, grantAuthCode) {
		bad("response type code goes with, and only with, the authorization_code grant")
		return
	}
	if slices.Contains(md.GrantTypes, grantAuthCode) && len(md.RedirectURIs) == 0 {
		s.oauthError(w, http.StatusBadRequest, "invalid_redirect_uri", "the authorization_code grant needs redirect_uris")
		return
	}
	c := &client{id: "standin-" + randomHex(8), grantTypes: md.GrantTypes}
	s.mu.Lock()
	s.clients[c.id] = c
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"client_id":                  c.id,
		"client_id_issued_at":        time.Now().Unix(),
		"client_name":                md.ClientName,
		"client_uri":                 md.ClientURI,
		"application_type":           md.ApplicationType,
		"token_endpoint_auth_method": md.TokenEndpointAuthMethod,
		"grant_types":                md.GrantTypes,
		"response_types":             md.ResponseTypes,
		"redirect_uris":              md.RedirectURIs,
	})
}

// deviceAuthorization is RFC 8628 section 3.1 and 3.2.
func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if !s.form(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[r.PostForm.Get("client_id")]
	if c == nil {
		s.oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	if !slices.Contains(c.grantTypes, grantDeviceCode) {
		s.oauthError(w, http.StatusBadRequest, "unauthorized_client", "the client did not register the device_code grant")
		return
	}
	scope := r.PostForm.Get("scope")
	deviceID, err := checkScope(scope)
	if err != nil {
		s.oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	g := &grant{
		deviceCode: randomHex(24),
		userCode:   newUserCode(),
		clientID:   c.id,
		scope:      scope,
		deviceID:   deviceID,
		expires:    time.Now().Add(s.opts.CodeLifetime),
		interval:   s.opts.Interval,
	}
	s.grants[g.deviceCode] = g
	s.byCode[normaliseUserCode(g.userCode)] = g
	verify := s.endpoint("/oauth2/device/verify")
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               g.deviceCode,
		"user_code":                 g.userCode,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + url.QueryEscape(g.userCode),
		"expires_in":                int64(s.opts.CodeLifetime / time.Second),
		"interval":                  int64(s.opts.Interval / time.Second),
	})
}

// checkScope insists on the Matrix API scope and exactly one device scope
// whose ID is made of RFC 3986 unreserved characters; it returns that ID.
func checkScope(scope string) (string, error) {
	var api bool
	var deviceID string
	for _, tok := range strings.Fields(scope) {
		switch {
		case tok == scopeAPI:
			api = true
		case strings.HasPrefix(tok, scopeDevicePrefix):
			if deviceID != "" {
				return "", errors.New("more than one device scope")
			}
			deviceID = strings.TrimPrefix(tok, scopeDevicePrefix)
			if deviceID == "" || strings.IndexFunc(deviceID, func(c rune) bool { return !isUnreserved(c) }) >= 0 {
				return "", fmt.Errorf("device ID %q is not made of unreserved characters", deviceID)
			}
		case tok == "openid":
		default:
			return "", fmt.Errorf("unknown scope %q", tok)
		}
	}
	if !api {
		return "", fmt.Errorf("scope %s is required", scopeAPI)
	}
	if deviceID == "" {
		return "", errors.New("a device scope is required")
	}
	return deviceID, nil
}

func isUnreserved(c rune) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// token is the token endpoint (RFC 6749 section 3.2, RFC 8628 section 3.4).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if !s.form(w, r) {
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case grantDeviceCode:
		s.deviceToken(w, r)
	case grantRefreshToken:
		s.refreshToken(w, r)
	case "":
		s.oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is missing")
	default:
		s.oauthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant type %q is not supported here", gt))
	}
}

func (s *Server) deviceToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[r.PostForm.Get("client_id")] == nil {
		s.oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	g := s.grants[r.PostForm.Get("device_code")]
	if g == nil || g.clientID != r.PostForm.Get("client_id") || g.exchanged {
		s.oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or used device_code")
		return
	}
	g.polls++
	if s.failPolls > 0 {
		s.failPolls--
		s.oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the stand-in was told to fail this poll")
		return
	}
	now := time.Now()
	if now.After(g.expires) {
		s.oauthError(w, http.StatusBadRequest, "expired_token", "the device code has expired")
		return
	}
	if g.denied {
		s.oauthError(w, http.StatusBadRequest, "access_denied", "the user declined")
		return
	}
	last := g.lastPoll
	g.lastPoll = now
	if g.slowDown || !last.IsZero() && now.Sub(last) < g.interval-pollSlack {
		g.slowDown = false
		g.interval += slowDownStep
		s.oauthError(w, http.StatusBadRequest, "slow_down", fmt.Sprintf("poll at most every %v", g.interval))
		return
	}
	if g.approved == nil {
		s.oauthError(w, http.StatusBadRequest, "authorization_pending", "the user has not answered yet")
		return
	}
	g.exchanged = true
	s.writeTokens(w, g.approved)
}

func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sess := s.refresh[r.PostForm.Get("refresh_token")]
	clientID := r.PostForm.Get("client_id")
	switch {
	case s.clients[clientID] == nil:
		s.mu.Unlock()
		s.oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	case sess == nil || sess.clientID != clientID:
		s.mu.Unlock()
		s.oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or revoked refresh token")
		return
	}
	// The old refresh token dies now, before the slow login, so that two
	// concurrent refreshes with it cannot both succeed.
	delete(s.refresh, sess.refreshToken)
	s.mu.Unlock()

	token, err := s.login(r.Context(), sess)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.refresh[sess.refreshToken] = sess // nothing happened; try again
		s.oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "logging in to the homeserver failed: "+err.Error())
		return
	}
	if s.sessions[sess.user.String()+"|"+sess.deviceID] != sess {
		// Revoked while the login ran: the token just minted must not
		// outlive the session either.
		go s.logout(context.Background(), sess.user, token)
		s.oauthError(w, http.StatusBadRequest, "invalid_grant", "revoked")
		return
	}
	delete(s.access, sess.accessToken)
	sess.accessToken = token
	sess.refreshToken = randomHex(24)
	s.access[sess.accessToken] = sess
	s.refresh[sess.refreshToken] = sess
	s.writeTokens(w, sess)
}

func (s *Server) writeTokens(w http.ResponseWriter, sess *session) {
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  sess.accessToken,
		"token_type":    "Bearer",
		"expires_in":    int64(s.opts.AccessTokenLifetime / time.Second),
		"refresh_token": sess.refreshToken,
		"scope":         sess.scope,
	})
}

// revoke is RFC 7009: a known token of this client ends its session; an
// unknown token is answered 200 all the same.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if !s.form(w, r) {
		return
	}
	token, clientID := r.PostForm.Get("token"), r.PostForm.Get("client_id")
	if token == "" {
		s.oauthError(w, http.StatusBadRequest, "invalid_request", "token is missing")
		return
	}
	s.mu.Lock()
	if s.clients[clientID] == nil {
		s.mu.Unlock()
		s.oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	sess := s.refresh[token]
	if sess == nil {
		sess = s.access[token]
	}
	if sess != nil && sess.clientID != clientID {
		s.mu.Unlock()
		s.oauthError(w, http.StatusBadRequest, "unauthorized_client", "the token was issued to another client")
		return
	}
	if sess != nil {
		s.endLocked(sess)
	}
	s.mu.Unlock()
	if sess != nil {
		if err := s.logout(r.Context(), sess.user, sess.accessToken); err != nil {
			s.oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "logging out of the homeserver failed: "+err.Error())
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) endLocked(sess *session) {
	delete(s.refresh, sess.refreshToken)
	delete(s.access, sess.accessToken)
	if key := sess.user.String() + "|" + sess.deviceID; s.sessions[key] == sess {
		delete(s.sessions, key)
	}
}

// Approve approves the login waiting with userCode (as typed: case and
// dashes do not matter) as acct: it logs in to Dendrite as the device the
// grant asks for. The next poll gets the tokens.
func (s *Server) Approve(ctx context.Context, userCode string, acct *testenv.Account) error {
	s.mu.Lock()
	g := s.byCode[normaliseUserCode(userCode)]
	switch {
	case g == nil:
		s.mu.Unlock()
		return fmt.Errorf("oauthstandin: no login waits with code %q", userCode)
	case g.approved != nil || g.denied:
		s.mu.Unlock()
		return fmt.Errorf("oauthstandin: the login with code %q was answered already", userCode)
	case time.Now().After(g.expires):
		s.mu.Unlock()
		return fmt.Errorf("oauthstandin: the code %q has expired", userCode)
	}
	sess := &session{
		clientID:  g.clientID,
		user:      acct.UserID,
		localpart: acct.Localpart,
		password:  acct.Password,
		deviceID:  g.deviceID,
		scope:     g.scope,
	}
	s.mu.Unlock()

	token, err := s.login(ctx, sess)
	if err != nil {
		return fmt.Errorf("oauthstandin: approving %q: %w", userCode, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.accessToken = token
	sess.refreshToken = randomHex(24)
	// A second login as the same device replaces the first, as in
	// Dendrite, whose token the login above has just invalidated.
	key := sess.user.String() + "|" + sess.deviceID
	if old := s.sessions[key]; old != nil {
		s.endLocked(old)
	}
	s.sessions[key] = sess
	s.access[sess.accessToken] = sess
	s.refresh[sess.refreshToken] = sess
	g.approved = sess
	return nil
}

// Deny declines the login waiting with userCode.
func (s *Server) Deny(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.byCode[normaliseUserCode(userCode)]
	if g == nil || g.approved != nil || g.denied {
		return fmt.Errorf("oauthstandin: no unanswered login with code %q", userCode)
	}
	g.denied = true
	return nil
}

// ExpireAccessToken makes the current access token of acct's device stop
// working on Dendrite, as an expired token would: it logs in as the device
// again (which invalidates the token) and throws the new token away. The
// refresh token keeps working.
func (s *Server) ExpireAccessToken(ctx context.Context, user id.UserID, deviceID string) error {
	s.mu.Lock()
	sess := s.sessions[user.String()+"|"+deviceID]
	s.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("oauthstandin: no session of %s on device %s", user, deviceID)
	}
	_, err := s.login(ctx, sess)
	return err
}

// FailPolls makes the next n polls of the device grant fail with 503
// temporarily_unavailable, as a server having trouble would.
func (s *Server) FailPolls(n int) {
	s.mu.Lock()
	s.failPolls = n
	s.mu.Unlock()
}

// SlowDownNext makes the next poll of the login waiting with userCode get
// slow_down (and raises its interval by five seconds), as a server under
// load would; a poll sooner than the raised interval gets slow_down again.
func (s *Server) SlowDownNext(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.byCode[normaliseUserCode(userCode)]
	if g == nil {
		return fmt.Errorf("oauthstandin: no login waits with code %q", userCode)
	}
	g.slowDown = true
	return nil
}

// Polls is how many times the token endpoint was asked about the login
// with userCode.
func (s *Server) Polls(userCode string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.byCode[normaliseUserCode(userCode)]; g != nil {
		return g.polls
	}
	return 0
}

// Answered is how many times the token, device or revocation endpoint has
// answered with the OAuth error code (slow_down, expired_token, ...).
func (s *Server) Answered(code string) int {
	s.answersMu.Lock()
	defer s.answersMu.Unlock()
	return s.answers[code]
}

// login logs in to Dendrite as sess's account and device and returns the
// new access token; Dendrite invalidates the device's previous one.
func (s *Server) login(ctx context.Context, sess *session) (string, error) {
	cli, err := mautrix.NewClient(s.hs.URL, "", "")
	if err != nil {
		return "", err
	}
	resp, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: sess.localpart},
		Password:                 sess.password,
		DeviceID:                 id.DeviceID(sess.deviceID),
		InitialDeviceDisplayName: "oauthstandin",
	})
	if err != nil {
		return "", err
	}
	if resp.DeviceID.String() != sess.deviceID {
		return "", fmt.Errorf("Dendrite gave device %s, not %s", resp.DeviceID, sess.deviceID)
	}
	return resp.AccessToken, nil
}

func (s *Server) logout(ctx context.Context, user id.UserID, token string) error {
	cli, err := mautrix.NewClient(s.hs.URL, user, token)
	if err != nil {
		return err
	}
	_, err = cli.Logout(ctx)
	if errors.Is(err, mautrix.MUnknownToken) {
		return nil // already gone, e.g. expired by ExpireAccessToken
	}
	return err
}

// form parses an application/x-www-form-urlencoded body, as every OAuth
// endpoint but registration takes.
func (s *Server) form(w http.ResponseWriter, r *http.Request) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return false
	}
	return true
}

func (s *Server) oauthError(w http.ResponseWriter, status int, code, desc string) {
	s.answersMu.Lock()
	s.answers[code]++
	s.answersMu.Unlock()
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	// RFC 6749 section 5.1: token answers must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// newUserCode makes an RFC 8628 section 6.1 style code: eight letters
// without vowels (no words, no lookalikes), shown as XXXX-XXXX.
func newUserCode() string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:4]) + "-" + string(b[4:])
}

func normaliseUserCode(code string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// loginFlows is GET /login: the password flow (unless NoPassword) and,
// with SSO, m.login.sso and m.login.token.
func (s *Server) loginFlows(w http.ResponseWriter, r *http.Request) {
	var flows []map[string]any
	if !s.opts.NoPassword {
		flows = append(flows, map[string]any{"type": "m.login.password"})
	}
	if s.opts.SSO {
		flows = append(flows,
			map[string]any{"type": "m.login.sso", "identity_providers": []map[string]string{{"id": "oauthstandin", "name": "oauthstandin (a test stand-in)"}}},
			map[string]any{"type": "m.login.token"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"flows": flows})
}

// SignInSSO makes the browser signed in at the identity provider as acct:
// the SSO redirect then sends it back at once with a login token for acct.
// nil signs it out.
func (s *Server) SignInSSO(acct *testenv.Account) {
	s.mu.Lock()
	s.ssoUser = acct
	s.mu.Unlock()
}

// LoginToken mints a login token for acct as the SSO redirect would.
func (s *Server) LoginToken(acct *testenv.Account) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	token := "standin-lt-" + randomHex(16)
	s.loginTokens[token] = &loginToken{acct: acct, expires: time.Now().Add(2 * time.Minute)}
	return token
}

// LoginTokenUsed says whether a login token was traded with m.login.token.
func (s *Server) LoginTokenUsed(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt := s.loginTokens[token]
	return lt != nil && lt.used
}

// ssoRedirect is GET /login/sso/redirect?redirectUrl=: signed in
// (SignInSSO), the browser goes back to redirectUrl with a loginToken
// added to its query; otherwise it gets a page that says what to do.
func (s *Server) ssoRedirect(w http.ResponseWriter, r *http.Request) {
	redirect, err := url.Parse(r.URL.Query().Get("redirectUrl"))
	if err != nil || redirect.Scheme == "" || redirect.Host == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"errcode": "M_MISSING_PARAM", "error": "redirectUrl is missing or not a URL"})
		return
	}
	s.mu.Lock()
	acct := s.ssoUser
	s.mu.Unlock()
	if acct == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "oauthstandin: a test stand-in for an identity provider. Nobody is signed in (SignInSSO).")
		return
	}
	q := redirect.Query()
	q.Set("loginToken", s.LoginToken(acct))
	redirect.RawQuery = q.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// postLogin takes POST /login with m.login.token; every other login goes
// on to Dendrite as it came.
func (s *Server) postLogin(w http.ResponseWriter, r *http.Request, proxy http.Handler) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"errcode": "M_NOT_JSON", "error": "body too large or unreadable"})
		return
	}
	var req struct {
		Type     string `json:"type"`
		Token    string `json:"token"`
		DeviceID string `json:"device_id"`
	}
	if json.Unmarshal(body, &req) != nil || req.Type != "m.login.token" || !s.opts.SSO {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	lt := s.loginTokens[req.Token]
	ok := lt != nil && !lt.used && time.Now().Before(lt.expires)
	if ok {
		lt.used = true
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusForbidden, map[string]string{"errcode": "M_FORBIDDEN", "error": "unknown, used or expired login token"})
		return
	}
	deviceID := req.DeviceID
	if deviceID == "" {
		deviceID = "STANDIN" + strings.ToUpper(randomHex(4))
	}
	sess := &session{user: lt.acct.UserID, localpart: lt.acct.Localpart, password: lt.acct.Password, deviceID: deviceID}
	token, err := s.login(r.Context(), sess)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"errcode": "M_UNKNOWN", "error": "oauthstandin: logging in to Dendrite failed: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user_id":      lt.acct.UserID,
		"access_token": token,
		"device_id":    deviceID,
		"home_server":  lt.acct.UserID.Homeserver(),
	})
}
