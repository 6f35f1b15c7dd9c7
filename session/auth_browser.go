package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/oauth"
	"github.com/mxircd/mxircd/store"
)

// Logging in in a web browser (LOGIN to the service), for accounts that
// have no Matrix password: the OAuth 2.0 device authorization grant
// (package oauth) where the homeserver offers it, else SSO (m.login.sso,
// auth_sso.go) where it offers that and the gateway has an HTTP listener.
// A browser login starts with what to show the user, then waits on a
// goroutine of the IRC side's until the user has approved (Credentials),
// declined, or let the code expire, or until the connection ends (its
// context), which stops the polling.
//
// Which account logs in is known only once the user has approved, but the
// device must be asked for before: the account named in LOGIN (or the
// client's nick on the default server) gives its stored device, so that
// one account keeps one device. An approval as an account whose stored
// device is another is undone (the grant revoked, the token logged out)
// and the user told to name the account.

// BrowserLogin is a login the user finishes in a web browser.
type BrowserLogin struct {
	// Lines tell the user what to do: the link, the code, until when.
	Lines   []string
	Expires time.Time
	wait    func() (*Credentials, error)
}

// browserLogins is what browser logins share across the gateway.
type browserLogins struct {
	clients *oauth.Clients
	sso     *ssoStates // nil: no HTTP listener, so no SSO
	waiting atomic.Int64

	waysMu sync.Mutex
	ways   loginWays
	waysAt time.Time // when ways was found out; zero: never
	waysOK bool      // ways is the homeserver's answer, not a guess
}

// loginWays is how a homeserver lets users in.
type loginWays struct {
	password, device, sso bool
}

// loginWaysTTL is how long the default homeserver's login ways are kept;
// a failed look is tried again sooner.
const (
	loginWaysTTL       = 5 * time.Minute
	loginWaysRetry     = 30 * time.Second
	browserStartBudget = 30 * time.Second
)

func newBrowserLogins(cfg *Config, st store.Store) *browserLogins {
	b := &browserLogins{clients: &oauth.Clients{HTTP: cfg.HTTPClient, Info: oauth.DefaultClientInfo, Store: st}}
	if cfg.SSOBaseURL != "" {
		b.sso = newSSOStates(strings.TrimRight(cfg.SSOBaseURL, "/"), cfg.SSOLinkTTL)
	}
	return b
}

// BrowserLoginsWaiting is how many browser logins are waiting for their
// user (polling, or waiting for the SSO callback). Any goroutine.
func (m *Manager) BrowserLoginsWaiting() int { return int(m.auth.browser.waiting.Load()) }

// LoginWays says whether the default homeserver takes passwords and
// whether it offers a login in a browser that this gateway can follow.
// The answer is kept for a few minutes; while the homeserver cannot be
// asked, it is password only. Any goroutine.
func (m *Manager) LoginWays(ctx context.Context) (password, browser bool) {
	au := m.auth
	if au.cfg.Homeserver == "" && au.cfg.ServerName == "" {
		return true, true // every account names its own homeserver
	}
	b := au.browser
	b.waysMu.Lock()
	defer b.waysMu.Unlock()
	ttl := loginWaysRetry
	if b.waysOK {
		ttl = loginWaysTTL
	}
	if b.waysAt.IsZero() || time.Since(b.waysAt) > ttl {
		// Under the lock: one look at a time, the others wait for it.
		ways, err := au.homeserverWays(ctx, "")
		b.waysAt, b.waysOK = time.Now(), err == nil
		if err != nil {
			m.log.Info("could not find out how the homeserver lets users in", "err", err)
			ways = loginWays{password: true}
		}
		b.ways = ways
	}
	return b.ways.password, b.ways.device || b.ways.sso && b.sso != nil
}

// homeserverWays asks a homeserver (by base URL; "" for the default) how
// it lets users in.
func (au *Authenticator) homeserverWays(ctx context.Context, hs string) (loginWays, error) {
	var ways loginWays
	if hs == "" {
		var err error
		if hs, err = au.homeserverOf(ctx, au.cfg.ServerName); err != nil {
			return ways, err
		}
	}
	md, err := oauth.Discover(ctx, au.cfg.HTTPClient, hs)
	switch {
	case err == nil:
		ways.device = md.SupportsDeviceGrant()
	case !errors.Is(err, oauth.ErrNotSupported):
		return ways, err
	}
	flows, err := au.loginFlows(ctx, hs)
	if err != nil {
		return ways, err
	}
	ways.password = flows.HasFlow(mautrix.AuthTypePassword)
	ways.sso = flows.HasFlow(mautrix.AuthTypeSSO)
	return ways, nil
}

func (au *Authenticator) loginFlows(ctx context.Context, hs string) (*mautrix.RespLoginFlows, error) {
	cli, err := newClient(au.cfg, hs, "", "")
	if err != nil {
		return nil, err
	}
	flows, err := cli.GetLoginFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking %s how it lets users in: %s", hs, matrixErrorText(err))
	}
	return flows, nil
}

// homeserverOf is the client-server API base URL for accounts on server:
// the configured homeserver, or the one the server's .well-known names.
func (au *Authenticator) homeserverOf(ctx context.Context, server string) (string, error) {
	if au.cfg.Homeserver != "" {
		return au.cfg.Homeserver, nil
	}
	return homeserverFor(ctx, au.cfg, id.NewUserID("x", server))
}

// StartBrowserLogin begins a browser login at the homeserver server names
// ("" for the default, a server name or a Matrix ID); nick is the
// client's, the account guessed when server names none. It returns once
// the homeserver has given what to show; the login waits until ctx ends.
// Any goroutine.
func (m *Manager) StartBrowserLogin(ctx context.Context, server, nick string, client Client) (*BrowserLogin, func() (*Attachment, error), error) {
	bl, err := m.auth.StartBrowserLogin(ctx, server, nick)
	if err != nil {
		return nil, nil, err
	}
	wait := func() (*Attachment, error) {
		creds, err := bl.wait()
		if err != nil {
			return nil, err
		}
		return m.Start(ctx, creds, client)
	}
	return bl, wait, nil
}

// StartBrowserLogin is Manager.StartBrowserLogin's check of what the user
// presents. Any goroutine.
func (au *Authenticator) StartBrowserLogin(ctx context.Context, server, nick string) (*BrowserLogin, error) {
	startCtx, cancel := context.WithTimeout(ctx, browserStartBudget)
	defer cancel()
	hs, guess, err := au.browserTarget(startCtx, server, nick)
	if err != nil {
		return nil, err
	}
	ways, err := au.homeserverWays(startCtx, hs)
	if err != nil {
		return nil, fmt.Errorf("could not ask %s how it lets users in: %s", hs, err)
	}
	deviceID := au.deviceFor(startCtx, guess)
	switch {
	case ways.device:
		return au.startDeviceLogin(ctx, startCtx, hs, deviceID)
	case ways.sso && au.browser.sso != nil:
		return au.startSSOLogin(ctx, hs, deviceID)
	case ways.sso:
		return nil, fmt.Errorf("%s lets users in through its web page (SSO), for which this gateway needs a web address of its own ([http] listen), which its operator has not set", hs)
	}
	return nil, fmt.Errorf("%s offers no login in a web browser; log in with /msg %s IDENTIFY <Matrix ID> <password>", hs, au.cfg.ServiceNick)
}

// browserTarget finds the homeserver LOGIN's argument names, and the
// account it names or the nick suggests (which may be ""). A gateway with
// a fixed homeserver and server name logs in only there.
func (au *Authenticator) browserTarget(ctx context.Context, server, nick string) (string, id.UserID, error) {
	var guess id.UserID
	switch {
	case server == "":
		if au.cfg.Homeserver == "" && au.cfg.ServerName == "" {
			return "", "", fmt.Errorf("say where your account is: LOGIN @you:example.org (or LOGIN example.org)")
		}
		if u, ok := mapping.ParseAccount(nick, au.cfg.ServerName); ok && au.cfg.ServerName != "" {
			guess = u
		}
		server = au.cfg.ServerName
	case strings.HasPrefix(server, "@"):
		u, ok := mapping.ParseAccount(server, au.cfg.ServerName)
		if !ok {
			return "", "", fmt.Errorf("%q is not a Matrix ID (@name:server)", server)
		}
		guess, server = u, u.Homeserver()
	default:
		if !validServerName(server) {
			return "", "", fmt.Errorf("%q is neither a Matrix ID (@name:server) nor a server name (example.org)", server)
		}
	}
	if au.cfg.Homeserver != "" && au.cfg.ServerName != "" && !strings.EqualFold(server, au.cfg.ServerName) {
		return "", "", fmt.Errorf("this gateway logs in to accounts on %s only", au.cfg.ServerName)
	}
	hs, err := au.homeserverOf(ctx, server)
	if err != nil {
		return "", "", err
	}
	return hs, guess, nil
}

// validServerName accepts a Matrix server name: a host name or IP literal,
// with an optional port.
func validServerName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return false
		}
	}
	return true
}

// deviceFor is the device a browser login asks for: the stored one of the
// account guessed, or a new one.
func (au *Authenticator) deviceFor(ctx context.Context, guess id.UserID) string {
	if guess != "" {
		if acct, err := au.store.Account(ctx, guess); err == nil && oauth.ValidDeviceID(acct.DeviceID) {
			return acct.DeviceID
		}
	}
	return oauth.NewDeviceID()
}

// startDeviceLogin starts the OAuth 2.0 device authorization grant.
// startCtx bounds the start, ctx the wait.
func (au *Authenticator) startDeviceLogin(ctx, startCtx context.Context, hs, deviceID string) (*BrowserLogin, error) {
	c, err := au.browser.clients.For(startCtx, hs)
	if err != nil {
		return nil, fmt.Errorf("could not register this gateway with the login service of %s: %s", hs, err)
	}
	g, err := c.Start(startCtx, deviceID)
	if errors.Is(err, oauth.ErrUnknownClient) {
		// The login service forgot the gateway; register again.
		if ferr := au.browser.clients.Forget(startCtx, hs, c); ferr != nil {
			return nil, ferr
		}
		if c, err = au.browser.clients.For(startCtx, hs); err == nil {
			g, err = c.Start(startCtx, deviceID)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("the login service of %s did not start a login: %s", hs, err)
	}
	open := fmt.Sprintf("To log in, open %s in your web browser and enter the code %s.", g.VerificationURI, g.UserCode)
	if g.VerificationURIComplete != "" {
		open = fmt.Sprintf("To log in, open %s in your web browser and approve the code %s.", g.VerificationURIComplete, g.UserCode)
	}
	lines := []string{
		open,
		fmt.Sprintf("The code works until %s UTC (%v); once you approve, this connection logs in by itself.",
			g.Expires.UTC().Format("15:04"), g.ExpiresIn.Round(time.Second)),
	}
	wait := func() (*Credentials, error) {
		au.browser.waiting.Add(1)
		defer au.browser.waiting.Add(-1)
		tok, err := c.Poll(ctx, g)
		switch {
		case errors.Is(err, oauth.ErrDenied):
			return nil, errors.New("the login was declined")
		case errors.Is(err, oauth.ErrExpired):
			return nil, errors.New("the code expired before the login was approved; send LOGIN again for a new one")
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, fmt.Errorf("the login service of %s failed: %s", hs, err)
		}
		revoke := func() {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Revoke(rctx, tok.RefreshToken, "refresh_token"); err != nil {
				au.log.Warn("could not revoke an unused OAuth grant", "err", err)
			}
		}
		return au.browserCredentials(ctx, hs, deviceID, tok.AccessToken, revoke, func(user id.UserID) *store.OAuthGrant {
			if tok.RefreshToken == "" {
				return nil // nothing to renew with: the token lasts as long as it lasts
			}
			return &store.OAuthGrant{UserID: user, ClientID: c.ClientID, RefreshToken: tok.RefreshToken, Expires: tok.Expires}
		})
	}
	return &BrowserLogin{Lines: lines, Expires: g.Expires, wait: wait}, nil
}

// browserCredentials stores the account of a browser login's new access
// token (with its OAuth grant, if grant gives one) and returns its
// Credentials, holding the account's login lock. undo ends the new login
// when it cannot be used.
func (au *Authenticator) browserCredentials(ctx context.Context, hs, deviceID, token string, undo func(), grant func(id.UserID) *store.OAuthGrant) (*Credentials, error) {
	used := false
	defer func() {
		if !used {
			undo()
		}
	}()
	cli, err := newClient(au.cfg, hs, "", token)
	if err != nil {
		return nil, err
	}
	who, err := cli.Whoami(ctx)
	if err != nil {
		return nil, fmt.Errorf("the homeserver did not take the new login: %s", matrixErrorText(err))
	}
	if who.DeviceID != "" && who.DeviceID.String() != deviceID {
		return nil, fmt.Errorf("the homeserver logged this gateway in as device %s, not %s", who.DeviceID, deviceID)
	}
	user := who.UserID
	creds := &Credentials{User: user, unlock: au.lockUser(user)}
	defer func() {
		if !used {
			creds.Release()
		}
	}()
	acct, err := au.store.Account(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		acct = &store.Account{UserID: user}
	} else if err != nil {
		return nil, fmt.Errorf("loading account: %w", err)
	}
	if acct.DeviceID != "" && acct.DeviceID != deviceID {
		return nil, fmt.Errorf("you approved the login as %s, whose device on this gateway is %s; send LOGIN %s to log in as that device", user, acct.DeviceID, user)
	}
	acct.Homeserver, acct.DeviceID, acct.AccessToken = hs, deviceID, token
	g := grant(user)
	if g != nil {
		err = au.store.PutOAuthLogin(ctx, acct, g)
	} else if err = au.store.DeleteOAuthGrant(ctx, user); err == nil {
		// An older grant would renew the old device's token.
		err = au.store.PutAccount(ctx, acct)
	}
	if err != nil {
		return nil, fmt.Errorf("saving account: %w", err)
	}
	used = true
	creds.Account, creds.grant = acct, g
	au.log.Info("logged in to Matrix in a web browser", "user", user, "device", deviceID, "oauth", g != nil)
	return creds, nil
}
