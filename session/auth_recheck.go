package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// A stored verifier says only that a password was the account's Matrix
// password when it was stored: a password changed in another Matrix client
// without logging out the other devices (Element offers that) leaves the
// gateway's token valid, so the verifier and the token would let the old
// password in for ever. So a password that matches the verifier is asked
// of the homeserver again once the homeserver last accepted it longer than
// Config.PasswordRecheck ago (in this process: a restart asks again).
//
// The question must not make a new device, nor give the running session a
// new token (that would break the transaction IDs of sends in flight), so
// it is not a login. Matrix has no endpoint that only checks a password;
// the nearest is user-interactive authentication on DELETE
// /devices/{id} for a device ID that no client has: the homeserver checks
// the password, then deletes nothing. (Dendrite's /account/password is no
// use: it takes an empty new_password and sets it.) An answer the gateway
// cannot read falls back to a login with the account's device, which
// answers the question at the price of a new token.
const (
	// DefaultPasswordRecheck: a client that reconnects (flaky network,
	// several clients attaching at once) costs no homeserver request for
	// five minutes; a password changed elsewhere stops working here
	// within five minutes of the change.
	DefaultPasswordRecheck = 5 * time.Minute
	// passwordOutageGrace: while the homeserver cannot answer, a password
	// it accepted less than this long ago is still taken, so a client
	// reconnecting during a short outage gets its bouncer; anything older
	// is refused until the homeserver can be asked.
	passwordOutageGrace = time.Hour
	// passwordCheckDevice is the device ID deleted to have the password
	// checked. The gateway never logs in with it; a device of that name
	// (made by someone on purpose) is never deleted: see askPassword.
	passwordCheckDevice id.DeviceID = "MXIRCD_PASSWORD_CHECK"
)

// passwordVerdict is what the homeserver said of a password.
type passwordVerdict int

const (
	passwordUnclear   passwordVerdict = iota // ask by logging in
	passwordAccepted                         // it is the account's password
	passwordRefused                          // it is not (or the account is gone)
	homeserverTrouble                        // no answer: down, overloaded, slow
)

// recheck makes sure password, which matches the account's stored
// verifier, is still what the homeserver takes, when it last said so
// longer than Config.PasswordRecheck ago. fresh says it had to log in,
// so acct holds a new token. A refusal drops the verifier. Called with the
// account's login lock held.
func (au *Authenticator) recheck(ctx context.Context, acct *store.Account, user id.UserID, password string, confirmed time.Time) (fresh bool, err error) {
	if !confirmed.IsZero() && time.Since(confirmed) < au.cfg.PasswordRecheck {
		return false, nil
	}
	hs := acct.Homeserver
	if au.cfg.Homeserver != "" { // as matrixPassword: the configuration wins
		hs = au.cfg.Homeserver
	}
	cli, err := newClient(au.cfg, hs, user, acct.AccessToken)
	if err != nil {
		return false, err
	}
	verdict, err := askPassword(ctx, cli, password)
	switch verdict {
	case passwordAccepted:
		au.passwords.remember(user.String(), acct.PasswordHash, password, time.Now())
		return false, nil
	case passwordRefused:
		au.log.Info("the homeserver no longer accepts the stored password", "user", user, "err", err)
		au.dropVerifier(ctx, acct, user)
		return false, fmt.Errorf("%w: the homeserver no longer accepts this password", ErrInvalidCredentials)
	case homeserverTrouble:
		if !confirmed.IsZero() && time.Since(confirmed) < passwordOutageGrace {
			au.log.Warn("cannot recheck the password with the homeserver; taking the one it accepted lately", "user", user, "accepted", confirmed, "err", err)
			return false, nil
		}
		au.log.Warn("cannot recheck the password with the homeserver", "user", user, "err", err)
		return false, fmt.Errorf("the homeserver could not check your password just now (%s); try again in a minute", plainError(err))
	}
	au.log.Info("cannot tell from the homeserver's answer whether the password is right; logging in", "user", user, "err", err)
	if err := au.matrixPassword(ctx, acct, user, password); err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			au.dropVerifier(ctx, acct, user)
		}
		return false, err
	}
	return true, nil
}

// dropVerifier forgets the account's Matrix password verifier, in the store
// and in memory, after the homeserver refused the password it stands for:
// the next login with it asks the homeserver. A failure to write only
// costs that question next time, so it is logged, not returned.
func (au *Authenticator) dropVerifier(ctx context.Context, acct *store.Account, user id.UserID) {
	au.passwords.forget(user.String())
	if err := au.store.ClearPasswordVerifier(ctx, user, acct.PasswordHash); err != nil {
		au.log.Error("could not forget the refused password's verifier", "user", user, "err", err)
	}
	acct.PasswordHash = ""
}

// askPassword has the homeserver check the account's password through
// user-interactive authentication on the deletion of a device that does
// not exist (see passwordCheckDevice). Request goroutine of a login.
func askPassword(ctx context.Context, cli *mautrix.Client, password string) (passwordVerdict, error) {
	// The device must not exist, or the check would delete it.
	_, err := cli.GetDeviceInfo(ctx, passwordCheckDevice)
	switch {
	case err == nil:
		return passwordUnclear, fmt.Errorf("the account has a device named %s", passwordCheckDevice)
	case errors.Is(err, mautrix.MNotFound):
	case unanswered(err):
		return homeserverTrouble, err
	default: // a refused token, among others
		return passwordUnclear, err
	}
	auth := map[string]any{
		"type":       mautrix.AuthTypePassword,
		"identifier": mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: cli.UserID.String()},
		"user":       cli.UserID.String(),
		"password":   password,
	}
	_, err = cli.MakeFullRequest(ctx, mautrix.FullRequest{
		Method:           http.MethodDelete,
		URL:              cli.BuildClientURL("v3", "devices", passwordCheckDevice),
		RequestJSON:      map[string]any{"auth": auth},
		SensitiveContent: true,
	})
	switch {
	case err == nil:
		return passwordAccepted, nil
	case errors.Is(err, mautrix.MForbidden), errors.Is(err, mautrix.MUserDeactivated):
		return passwordRefused, err
	case unanswered(err):
		return homeserverTrouble, err
	}
	// A challenge for other stages, a refused token, a 404 before the
	// check: none says whether the password is right.
	return passwordUnclear, err
}

// unanswered says the homeserver could not answer err's request: it was
// not reached, failed (5xx), was too slow, or asked to slow down.
func unanswered(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, mautrix.MLimitExceeded) {
		return true
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) {
		return httpErr.Response == nil || httpErr.Response.StatusCode >= 500
	}
	return true
}
