package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// SSO (m.login.sso), for homeservers that offer it but not OAuth 2.0: the
// service gives the user a link to the gateway's HTTP listener
// (SSOStartPath), which sends the browser to the homeserver's
// /login/sso/redirect with the gateway's callback (SSOCallbackPath) as
// redirectUrl; the homeserver sends the browser back there with a
// loginToken, which the gateway trades for an access token with
// m.login.token. Link and callback carry a state value that ties them to
// the waiting IRC connection: 32 random bytes, good once (the callback
// takes it whatever comes of it), for Config.SSOLinkTTL, and gone when
// the connection stops waiting.

// The paths under Config.SSOBaseURL that SSOHandler serves.
const (
	SSOStartPath    = "/login/sso/start"
	SSOCallbackPath = "/login/sso/callback"
)

// ssoStates are the SSO logins waiting for their callback, by state.
type ssoStates struct {
	base string
	ttl  time.Duration

	mu      sync.Mutex
	byState map[string]*ssoWait
}

// ssoWait is one IRC connection waiting for its SSO callback.
type ssoWait struct {
	hs, deviceID string
	expires      time.Time
	result       chan ssoResult // unbuffered: taken only by the waiter
	gone         chan struct{}  // closed when the waiter stops waiting
}

type ssoResult struct {
	creds *Credentials
	err   error
}

func newSSOStates(base string, ttl time.Duration) *ssoStates {
	return &ssoStates{base: base, ttl: ttl, byState: map[string]*ssoWait{}}
}

// newState is an unguessable state value, URL-safe.
func newState() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (st *ssoStates) peek(state string) *ssoWait {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.byState[state]
}

// take removes the state: a callback uses it once, whatever comes of it.
func (st *ssoStates) take(state string) *ssoWait {
	st.mu.Lock()
	defer st.mu.Unlock()
	w := st.byState[state]
	delete(st.byState, state)
	return w
}

func (st *ssoStates) remove(state string, w *ssoWait) {
	st.mu.Lock()
	if st.byState[state] == w {
		delete(st.byState, state)
	}
	st.mu.Unlock()
}

// startSSOLogin makes the link for an SSO login and the wait for its
// callback, which ends with ctx.
func (au *Authenticator) startSSOLogin(ctx context.Context, hs, deviceID string) (*BrowserLogin, error) {
	st := au.browser.sso
	state := newState()
	w := &ssoWait{hs: hs, deviceID: deviceID, expires: time.Now().Add(st.ttl), result: make(chan ssoResult), gone: make(chan struct{})}
	st.mu.Lock()
	st.byState[state] = w
	st.mu.Unlock()
	link := st.base + SSOStartPath + "?state=" + state
	lines := []string{
		fmt.Sprintf("To log in, open %s in your web browser and sign in there.", link),
		fmt.Sprintf("The link works once, until %s UTC (%v); once you have signed in, this connection logs in by itself.",
			w.expires.UTC().Format("15:04"), st.ttl.Round(time.Second)),
	}
	wait := func() (*Credentials, error) {
		au.browser.waiting.Add(1)
		defer au.browser.waiting.Add(-1)
		defer st.remove(state, w)
		defer close(w.gone)
		timer := time.NewTimer(time.Until(w.expires))
		defer timer.Stop()
		select {
		case r := <-w.result:
			return r.creds, r.err
		case <-timer.C:
			return nil, errors.New("the link expired before you signed in; send LOGIN again for a new one")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &BrowserLogin{Lines: lines, Expires: w.expires, wait: wait}, nil
}

// SSOHandler serves SSOStartPath and SSOCallbackPath (under the path of
// Config.SSOBaseURL); nil when SSO is off. net/http goroutines.
func (m *Manager) SSOHandler() http.Handler {
	if m.auth.browser.sso == nil {
		return nil
	}
	return ssoHandler{m.auth}
}

type ssoHandler struct{ au *Authenticator }

// ssoGone is what a browser is told for a state that is not (or no
// longer) waiting.
const ssoGone = "This login link is not known: it was used already, it expired, or its IRC connection has gone. Send LOGIN to the service on IRC again for a new one."

func (h ssoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := h.au.browser.sso
	w.Header().Set("Cache-Control", "no-store")
	// The callback's URL holds the login token.
	w.Header().Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ssoPage(w, http.StatusMethodNotAllowed, "Only GET is served here.")
		return
	}
	path := r.URL.Path
	if prefix := basePath(st.base); prefix != "" {
		path = strings.TrimPrefix(path, prefix)
	}
	state := r.URL.Query().Get("state")
	switch path {
	case SSOStartPath:
		wait := st.peek(state)
		if wait == nil || time.Now().After(wait.expires) {
			ssoPage(w, http.StatusBadRequest, ssoGone)
			return
		}
		callback := st.base + SSOCallbackPath + "?state=" + url.QueryEscape(state)
		target := strings.TrimRight(wait.hs, "/") + "/_matrix/client/v3/login/sso/redirect?redirectUrl=" + url.QueryEscape(callback)
		http.Redirect(w, r, target, http.StatusFound)
	case SSOCallbackPath:
		h.callback(w, r, state)
	default:
		ssoPage(w, http.StatusNotFound, "Nothing here.")
	}
}

func (h ssoHandler) callback(w http.ResponseWriter, r *http.Request, state string) {
	wait := h.au.browser.sso.take(state)
	if wait == nil {
		ssoPage(w, http.StatusBadRequest, ssoGone)
		return
	}
	var res ssoResult
	switch token := r.URL.Query().Get("loginToken"); {
	case time.Now().After(wait.expires):
		ssoPage(w, http.StatusBadRequest, ssoGone)
		return // the waiter's timer tells the IRC side
	case token == "":
		res.err = errors.New("the homeserver sent the browser back without a login token")
	default:
		select {
		case <-wait.gone:
			ssoPage(w, http.StatusBadRequest, ssoGone)
			return
		default:
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		res.creds, res.err = h.au.ssoCredentials(ctx, wait, token)
		cancel()
	}
	select {
	case wait.result <- res:
	case <-wait.gone:
		if res.creds != nil {
			res.creds.Release()
		}
		ssoPage(w, http.StatusBadRequest, ssoGone)
		return
	}
	if res.err != nil {
		ssoPage(w, http.StatusBadGateway, "Not logged in: "+res.err.Error()+". Send LOGIN to the service on IRC to try again.")
		return
	}
	ssoPage(w, http.StatusOK, "You are logged in as "+res.creds.User.String()+" on IRC. You can close this page.")
}

// ssoCredentials trades the homeserver's login token for an access token
// of the device the login asked for.
func (au *Authenticator) ssoCredentials(ctx context.Context, wait *ssoWait, token string) (*Credentials, error) {
	cli, err := newClient(au.cfg, wait.hs, "", "")
	if err != nil {
		return nil, err
	}
	resp, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypeToken,
		Token:                    token,
		DeviceID:                 id.DeviceID(wait.deviceID),
		InitialDeviceDisplayName: au.cfg.DeviceName,
	})
	if err != nil {
		return nil, fmt.Errorf("the homeserver refused the login token: %s", matrixErrorText(err))
	}
	logout := func() {
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := newClient(au.cfg, wait.hs, resp.UserID, resp.AccessToken); err == nil {
			if _, err := out.Logout(lctx); err != nil {
				au.log.Warn("could not log out an unused SSO login", "err", err)
			}
		}
	}
	return au.browserCredentials(ctx, wait.hs, wait.deviceID, resp.AccessToken, logout, func(id.UserID) *store.OAuthGrant { return nil })
}

// basePath is the path part of a base URL, without its trailing slash.
func basePath(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/")
}

func ssoPage(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, "mxircd: "+text)
}
