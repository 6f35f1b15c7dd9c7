package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Automatic registration ([autoregister]): a connection without a login
// gets a Matrix account of its own on the configured homeserver, named
// after its nick, and is then served like any logged-in connection. The
// account's password is made here and shown to the user once, so that it
// can come back to the account; nobody else can, as a taken localpart is
// never reused (the next free nick_2, nick_3 ... is registered instead).

// AutoRegisterConfig is how accounts are registered for connections
// without a login.
type AutoRegisterConfig struct {
	// SharedSecret registers with the homeserver's shared-secret admin
	// API (/_synapse/admin/v1/register; Synapse, and Dendrite with
	// client_api.registration_shared_secret).
	SharedSecret string
	// RegistrationToken answers the m.login.registration_token stage.
	// With neither, registration must be open (m.login.dummy).
	RegistrationToken string
	// KeepFor is how long an account registered for a connection is
	// kept after its last client leaves; then it is deactivated
	// (autoreg_keep.go). 0 keeps accounts forever.
	KeepFor time.Duration
	// PasswordKey (32 bytes, see AutoRegisterKeyFrom) seals the
	// registered accounts' passwords in the store, which the gateway
	// needs to deactivate them. nil: accounts are not recorded, and so
	// kept forever.
	PasswordKey []byte
}

// ErrNoLocalpart says a nick has nothing a Matrix localpart can be made of.
var ErrNoLocalpart = errors.New("your nick has no letters or digits a Matrix account name can be made of; pick another nick")

// maxAutoSuffix bounds the nick_2, nick_3 ... tried when a name is taken.
const maxAutoSuffix = 20

// AutoLocalpart makes a Matrix localpart of an IRC nick: lower case, and
// only the characters the localpart grammar allows (a-z 0-9 . _ = - /),
// others dropped. "" when nothing is left.
func AutoLocalpart(nick string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(nick) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '=', r == '-':
			b.WriteRune(r)
		case r == '[' || r == '{':
			b.WriteByte('_')
		case r == ']' || r == '}' || r == '|' || r == '\\' || r == '^' || r == '`':
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "._=-")
}

// AutoRegister registers an account named after nick on the homeserver
// and attaches client to its session. It returns the attachment and the
// account's password, to be shown to the user. Reader goroutine.
func (m *Manager) AutoRegister(ctx context.Context, nick string, client Client) (*Attachment, string, error) {
	base := AutoLocalpart(nick)
	if base == "" {
		return nil, "", ErrNoLocalpart
	}
	hs := m.cfg.Homeserver
	if hs == "" {
		var err error
		if hs, err = homeserverFor(ctx, &m.cfg, id.NewUserID(base, m.cfg.ServerName)); err != nil {
			return nil, "", err
		}
	}
	password := randomPassword()
	var user id.UserID
	for i := 1; i <= maxAutoSuffix; i++ {
		localpart := base
		if i > 1 {
			localpart += "_" + strconv.Itoa(i)
		}
		u, err := m.registerAccount(ctx, hs, localpart, password)
		if errors.Is(err, mautrix.MUserInUse) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("the homeserver did not register an account for you: %s", registerErrorText(err))
		}
		user = u
		break
	}
	if user == "" {
		return nil, "", fmt.Errorf("the account names %s to %s_%d are all taken on the homeserver; pick another nick", base, base, maxAutoSuffix)
	}
	m.log.Info("registered an account for a connection without a login", "user", user)
	m.keepRegistered(ctx, user, password)
	creds, err := m.auth.Password(ctx, user.String(), password, "")
	if err != nil {
		m.keepLeft(user)
		return nil, "", fmt.Errorf("logging in to the account just registered (%s): %w", user, err)
	}
	m.nameAfterNick(ctx, creds, nick)
	a, err := m.Start(ctx, creds, client)
	if err != nil {
		m.keepLeft(user)
		return nil, "", err
	}
	return a, password, nil
}

// nameAfterNick gives an account just registered its nick, as typed, for
// a display name: "coolNick" stays coolNick to everyone (the localpart is
// lower case) and the client keeps the nick it asked for. Not fatal: the
// account works under its localpart without it.
func (m *Manager) nameAfterNick(ctx context.Context, creds *Credentials, nick string) {
	if creds.Account == nil {
		return
	}
	cli, err := newClient(&m.cfg, creds.Account.Homeserver, creds.User, creds.Account.AccessToken)
	if err == nil {
		err = cli.SetDisplayName(ctx, nick)
	}
	if err != nil {
		m.log.Warn("could not set the display name of an account just registered", "user", creds.User, "err", err)
		return
	}
	creds.displayName = nick
}

// registerAccount registers localpart with password, without logging in.
func (m *Manager) registerAccount(ctx context.Context, hs, localpart, password string) (id.UserID, error) {
	cli, err := newClient(&m.cfg, hs, "", "")
	if err != nil {
		return "", err
	}
	ar := m.cfg.AutoRegister
	if ar.SharedSecret != "" {
		return registerSharedSecret(ctx, cli, ar.SharedSecret, localpart, password)
	}
	req := &mautrix.ReqRegister[any]{Username: localpart, Password: password, InhibitLogin: true}
	resp, uia, err := cli.Register(ctx, req)
	if err == nil && resp == nil && uia != nil {
		// The first answer is the flows (a 401 that mautrix hands back
		// without an error): go through the stage in its UIA session.
		if ar.RegistrationToken != "" {
			req.Auth = map[string]any{"type": "m.login.registration_token", "token": ar.RegistrationToken, "session": uia.Session}
		} else {
			req.Auth = mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: uia.Session}
		}
		resp, _, err = cli.Register(ctx, req)
	}
	if err == nil && resp == nil {
		err = errors.New("the homeserver asks for a registration step this gateway cannot do (configure autoregister.shared_secret or autoregister.registration_token)")
	}
	if err != nil {
		return "", err
	}
	return resp.UserID, nil
}

// registerSharedSecret registers through the shared-secret admin API: a
// nonce, then the user signed with the secret (HMAC-SHA1).
func registerSharedSecret(ctx context.Context, cli *mautrix.Client, secret, localpart, password string) (id.UserID, error) {
	u := cli.BuildURL(mautrix.SynapseAdminURLPath{"v1", "register"})
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if _, err := cli.MakeRequest(ctx, http.MethodGet, u, nil, &nonce); err != nil {
		return "", err
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(nonce.Nonce + "\x00" + localpart + "\x00" + password + "\x00notadmin"))
	body := map[string]any{
		"nonce": nonce.Nonce, "username": localpart, "password": password,
		"admin": false, "mac": hex.EncodeToString(mac.Sum(nil)),
	}
	var resp struct {
		UserID id.UserID `json:"user_id"`
	}
	if _, err := cli.MakeRequest(ctx, http.MethodPost, u, body, &resp); err != nil {
		if errors.Is(err, mautrix.MForbidden) {
			return "", errors.New("the homeserver did not accept this gateway's shared secret (autoregister.shared_secret)")
		}
		return "", err
	}
	return resp.UserID, nil
}

// registerErrorText says in plain words why the homeserver refused.
func registerErrorText(err error) string {
	switch {
	case errors.Is(err, mautrix.MForbidden):
		return "registration is closed or needs something this gateway cannot give (" + plainError(err) + ")"
	case errors.Is(err, mautrix.MLimitExceeded):
		return "too many registrations just now; try again in a while"
	case errors.Is(err, mautrix.MInvalidUsername):
		return "your nick does not make a valid account name there; pick another nick"
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.Response != nil && httpErr.Response.StatusCode == http.StatusUnauthorized {
		return "the homeserver did not accept this gateway's registration secret or token"
	}
	return plainError(err)
}

// randomPassword is a password of 24 random characters.
func randomPassword() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
