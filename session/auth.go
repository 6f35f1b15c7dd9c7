package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// Login lives here, apart from the sessions: an Authenticator checks what
// a client presents and returns Credentials, the account and the Matrix
// access token to use; Manager.Start only finds or starts the account's
// session with them. Each way in is one method of Authenticator returning
// Credentials: Password (the Matrix password, rechecked with the
// homeserver in auth_recheck.go, or the account's app password) and Cert
// (a TLS client certificate, auth_cert.go); the OAuth device grant and an
// SSO login token are the same shape.
//
// A login holds the account's login lock from the moment its account is
// known until its session is started or found, so two clients logging in
// at once share one session and one Matrix device. The lock goes with
// Credentials: whoever gets Credentials must Start them or Release them.

// Authenticator checks credentials against the store and the homeserver.
// Any goroutine may use it.
type Authenticator struct {
	cfg       *Config
	store     store.Store
	log       *slog.Logger
	passwords *passwordCache // recently verified passwords
	failures  *accountFailures
	lockUser  func(id.UserID) (unlock func())
	browser   *browserLogins // LOGIN: OAuth 2.0 device grant and SSO (auth_browser.go)
}

// Credentials is a login that succeeded: the account, with an access token
// that the homeserver gave or that the store kept.
type Credentials struct {
	User id.UserID
	// ClientName is the client's name ("laptop" of alice@laptop), "" if none.
	ClientName string
	Account    *store.Account
	// stored says the token came from the store rather than a login just
	// now, so the homeserver may have revoked it since.
	stored bool
	// renew gets a new token when the stored one is refused; nil when
	// this way of logging in cannot (an app password is not the Matrix
	// password).
	renew func(ctx context.Context) error
	// grant is the OAuth grant a browser login has just stored, for a
	// session already running to renew its token through.
	grant *store.OAuthGrant
	// displayName is the name just given to an account registered for
	// this login (autoreg.go), "" when not known.
	displayName string
	unlock      func()
}

// Release gives up the account's login lock without starting a session.
// Safe to call more than once.
func (c *Credentials) Release() {
	if c.unlock != nil {
		c.unlock()
		c.unlock = nil
	}
}

// parseAccount splits what a client typed as its account ("alice",
// "@alice:example.org", "alice@laptop") into the Matrix ID and client name.
func (au *Authenticator) parseAccount(account string) (id.UserID, string, error) {
	account, clientName, ok := mapping.SplitClientName(account)
	if !ok {
		return "", "", fmt.Errorf("%w: a client name after @ is 1 to 32 letters, digits, '-', '_' or '.'", ErrInvalidCredentials)
	}
	user, ok := mapping.ParseAccount(account, au.cfg.ServerName)
	if !ok {
		if au.cfg.ServerName == "" && !strings.Contains(account, ":") {
			return "", "", fmt.Errorf("%w: give your full Matrix ID (@name:server)", ErrInvalidCredentials)
		}
		return "", "", fmt.Errorf("%w: %q is not a Matrix ID", ErrInvalidCredentials, account)
	}
	return user, clientName, nil
}

// Password logs in with what SASL PLAIN, PASS and IDENTIFY carry: the
// account's Matrix password, or its app password (PASSWORD SET). A
// password the gateway has verified before costs no homeserver request;
// any other is tried on the homeserver, which is the judge of Matrix
// passwords. It may take as long as the homeserver does, bounded by ctx.
// from is the client's host, for the account's failed-login budget
// (accountlimit.go); "" if unknown.
func (au *Authenticator) Password(ctx context.Context, account, password, from string) (creds *Credentials, err error) {
	user, clientName, err := au.parseAccount(account)
	if err != nil {
		return nil, err
	}
	done, err := au.failures.take(user, from)
	if err != nil {
		return nil, err
	}
	defer func() { done(errors.Is(err, ErrInvalidCredentials), err == nil) }()
	return au.password(ctx, user, clientName, password)
}

func (au *Authenticator) password(ctx context.Context, user id.UserID, clientName, password string) (*Credentials, error) {
	creds := &Credentials{User: user, ClientName: clientName, unlock: au.lockUser(user)}
	ok := false
	defer func() {
		if !ok {
			creds.Release()
		}
	}()
	acct, err := au.store.Account(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		acct = &store.Account{UserID: user}
	} else if err != nil {
		return nil, fmt.Errorf("loading account: %w", err)
	}
	creds.Account = acct
	renew := func(ctx context.Context) error { return au.matrixPassword(ctx, acct, user, password) }
	matrixMatch, confirmed := false, time.Time{}
	if acct.AccessToken != "" {
		matrixMatch, confirmed = au.passwords.verify(user.String(), acct.PasswordHash, password)
	}
	switch {
	case matrixMatch:
		// The homeserver may have stopped taking it since (auth_recheck.go).
		fresh, err := au.recheck(ctx, acct, user, password, confirmed)
		if err != nil {
			return nil, err
		}
		creds.stored, creds.renew = !fresh, renew
	case acct.AccessToken != "" && au.appPassword(user, acct, password):
		// The app password unlocks the stored token only: it cannot
		// log in to the homeserver again.
		creds.stored = true
	case acct.AccessToken == "" && acct.AppPasswordHash != "" && au.appPassword(user, acct, password):
		return nil, fmt.Errorf("the gateway has no Matrix session for %s any more (it was logged out), and an app password cannot start one: log in once with your Matrix password", user)
	default:
		if err := au.matrixPassword(ctx, acct, user, password); err != nil {
			return nil, err
		}
	}
	ok = true
	return creds, nil
}

// appPassword says whether password is the account's app password.
func (au *Authenticator) appPassword(user id.UserID, acct *store.Account, password string) bool {
	ok, _ := au.passwords.verify(appPasswordKey(user), acct.AppPasswordHash, password)
	return ok
}

// appPasswordKey keeps an account's app password apart from its Matrix
// password in the verified-password cache.
func appPasswordKey(user id.UserID) string { return user.String() + "\x00app" }

// SetAppPassword stores the verifier of a new app password for user, or
// removes the app password when password is "". The account must exist
// (it does once it has logged in). Request worker.
func (au *Authenticator) SetAppPassword(ctx context.Context, user id.UserID, password string) error {
	verifier := ""
	if password != "" {
		var err error
		if verifier, err = hashPassword(password); err != nil {
			return err
		}
	}
	return au.store.SetAppPassword(ctx, user, verifier)
}

// matrixPassword logs in to Matrix with the password, reusing the
// account's device if it has one, and stores the new token and verifier.
func (au *Authenticator) matrixPassword(ctx context.Context, acct *store.Account, user id.UserID, password string) error {
	if acct.Homeserver == "" || au.cfg.Homeserver != "" {
		hs, err := homeserverFor(ctx, au.cfg, user)
		if err != nil {
			return err
		}
		acct.Homeserver = hs
	}
	cli, err := newClient(au.cfg, acct.Homeserver, user, "")
	if err != nil {
		return err
	}
	resp, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user.String()},
		Password:                 password,
		DeviceID:                 id.DeviceID(acct.DeviceID),
		InitialDeviceDisplayName: au.cfg.DeviceName,
	})
	switch {
	case errors.Is(err, mautrix.MForbidden), errors.Is(err, mautrix.MUserDeactivated), errors.Is(err, mautrix.MInvalidUsername):
		return fmt.Errorf("%w: %s", ErrInvalidCredentials, matrixErrorText(err))
	case err != nil:
		return fmt.Errorf("homeserver login: %s", matrixErrorText(err))
	case resp.UserID != user:
		return fmt.Errorf("homeserver logged us in as %s, not %s", resp.UserID, user)
	}
	verifier, err := hashPassword(password)
	if err != nil {
		return err
	}
	acct.DeviceID = resp.DeviceID.String()
	acct.AccessToken = resp.AccessToken
	acct.PasswordHash = verifier
	if err := au.store.PutAccount(ctx, acct); err != nil {
		return fmt.Errorf("saving account: %w", err)
	}
	au.passwords.remember(user.String(), verifier, password, time.Now())
	au.log.Info("logged in to Matrix", "user", user, "device", resp.DeviceID)
	return nil
}

// checkToken asks the homeserver whose the credentials' token is, and
// renews a stored token the homeserver refuses when the way of logging in
// can; cli holds the token, and then the renewed one.
func (au *Authenticator) checkToken(ctx context.Context, creds *Credentials, cli *mautrix.Client) error {
	acct, user := creds.Account, creds.User
	who, err := cli.Whoami(ctx)
	if errors.Is(err, mautrix.MUnknownToken) && creds.stored {
		if creds.renew == nil {
			return fmt.Errorf("%w: the gateway's Matrix session of %s has ended; log in once with your Matrix password (or LOGIN) to start a new one", ErrInvalidCredentials, user)
		}
		au.log.Info("stored access token was refused, logging in again", "user", user)
		if err := creds.renew(ctx); err != nil {
			return err
		}
		cli.OAuthSetTokens("", "", acct.AccessToken, time.Time{})
		who, err = cli.Whoami(ctx)
	}
	if err != nil {
		return fmt.Errorf("checking the access token: %s", matrixErrorText(err))
	}
	if who.UserID != user {
		return fmt.Errorf("access token belongs to %s, not %s", who.UserID, user)
	}
	return nil
}

func homeserverFor(ctx context.Context, cfg *Config, user id.UserID) (string, error) {
	if cfg.Homeserver != "" {
		return cfg.Homeserver, nil
	}
	server := user.Homeserver()
	wk, err := mautrix.DiscoverClientAPIWithClient(ctx, cfg.HTTPClient, server)
	if err != nil {
		return "", fmt.Errorf("discovering the homeserver of %s: %w", server, err)
	}
	if wk == nil || wk.Homeserver.BaseURL == "" {
		return "https://" + server, nil
	}
	return wk.Homeserver.BaseURL, nil
}

func newClient(cfg *Config, homeserver string, user id.UserID, token string) (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(homeserver, user, token)
	if err != nil {
		return nil, fmt.Errorf("homeserver URL %q: %w", homeserver, err)
	}
	cli.Client = cfg.HTTPClient
	cli.UserAgent = "mxircd"
	// Retries happen in the session, where they can respect shutdown.
	cli.DefaultHTTPRetries = 0
	return cli, nil
}
