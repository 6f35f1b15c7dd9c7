package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Account registration (IRCv3 draft/account-registration, REGISTER): a
// client names the account it wants and its password, and the gateway
// registers exactly that account on the homeserver, the way
// [autoregister] does (registerAccount: shared secret, registration token
// or open registration), then logs the connection in to it. Unlike an
// automatic account, the name is the user's choice: a taken name is
// refused, never replaced by name_2.

// Why REGISTER was refused, for the IRC side to pick its FAIL code. Each
// is wrapped in an error whose text says it in words a user understands.
var (
	// ErrAccountExists: the name is taken on the homeserver.
	ErrAccountExists = errors.New("account name taken")
	// ErrBadAccountName: the name cannot be a Matrix localpart here.
	ErrBadAccountName = errors.New("bad account name")
	// ErrWeakPassword: the homeserver finds the password too weak.
	ErrWeakPassword = errors.New("weak password")
	// ErrUnacceptablePassword: the password cannot be used for another
	// reason (not UTF-8, empty).
	ErrUnacceptablePassword = errors.New("unacceptable password")
)

// refusal is a reason to refuse REGISTER (errors.Is it) with its own
// words for the user.
type refusal struct {
	reason error
	text   string
}

func (e *refusal) Error() string        { return e.text }
func (e *refusal) Is(target error) bool { return target == e.reason }

func refuse(reason error, format string, args ...any) error {
	return &refusal{reason: reason, text: fmt.Sprintf(format, args...)}
}

// maxUserIDLength is the longest a Matrix user ID may be (the spec's
// 255 bytes, "@" and ":server" included).
const maxUserIDLength = 255

// RegisterLocalpart is the localpart REGISTER makes of the account name a
// client gave: the name in lower case (Matrix IDs are), or the localpart
// of a full Matrix ID on this gateway's server. It fails, wrapping
// ErrBadAccountName, when the name cannot be a localpart.
func (m *Manager) RegisterLocalpart(name string) (string, error) {
	localpart := strings.ToLower(name)
	if rest, ok := strings.CutPrefix(localpart, "@"); ok {
		lp, server, found := strings.Cut(rest, ":")
		if !found || m.cfg.ServerName == "" || server != strings.ToLower(m.cfg.ServerName) {
			where := "this gateway's homeserver"
			if m.cfg.ServerName != "" {
				where = m.cfg.ServerName
			}
			return "", refuse(ErrBadAccountName, "accounts can only be registered on %s; give the name alone, such as %q", where, lp)
		}
		localpart = lp
	}
	switch {
	case localpart == "":
		return "", refuse(ErrBadAccountName, "give a name for the account")
	case strings.HasPrefix(localpart, "_"):
		return "", refuse(ErrBadAccountName, "names starting with _ are reserved for bridges and bots; pick another")
	case len(localpart)+2+len(m.cfg.ServerName) > maxUserIDLength:
		return "", refuse(ErrBadAccountName, "that name is too long for a Matrix ID; pick a shorter one")
	}
	for _, r := range localpart {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._=-/+", r)) {
			return "", refuse(ErrBadAccountName, "a Matrix account name may only have letters a-z, digits and . _ = - / + (%q is not allowed)", r)
		}
	}
	return localpart, nil
}

// RegisterAccount registers the account name (see RegisterLocalpart) with
// password on the homeserver and attaches client to its session, as a
// login would. Refusals wrap ErrAccountExists, ErrBadAccountName,
// ErrWeakPassword or ErrUnacceptablePassword; any other error is the
// homeserver or the gateway failing, in plain words. Reader goroutine.
func (m *Manager) RegisterAccount(ctx context.Context, name, password string, client Client) (*Attachment, error) {
	localpart, err := m.RegisterLocalpart(name)
	if err != nil {
		return nil, err
	}
	switch {
	case password == "":
		return nil, refuse(ErrUnacceptablePassword, "give a password")
	case !utf8.ValidString(password):
		return nil, refuse(ErrUnacceptablePassword, "the password is not valid UTF-8, so SASL could not log in with it; use another")
	}
	hs := m.cfg.Homeserver
	if hs == "" {
		if hs, err = homeserverFor(ctx, &m.cfg, id.NewUserID(localpart, m.cfg.ServerName)); err != nil {
			return nil, err
		}
	}
	user, err := m.registerAccount(ctx, hs, localpart, password)
	if err != nil {
		return nil, registrationRefusal(err)
	}
	m.log.Info("registered an account asked for with REGISTER", "user", user)
	creds, err := m.auth.Password(ctx, user.String(), password, remoteHost(client))
	if err != nil {
		return nil, fmt.Errorf("the account %s was made, but logging in to it failed (%s); log in with SASL PLAIN or IDENTIFY", user, plainError(err))
	}
	if name != localpart && strings.EqualFold(name, localpart) {
		// "Alice" stays Alice to everyone, and the client keeps its nick.
		m.nameAfterNick(ctx, creds, name)
	}
	return m.Start(ctx, creds, client)
}

// registrationRefusal sorts a homeserver's refusal to register into the
// reasons a client can act on, in plain words.
func registrationRefusal(err error) error {
	var httpErr mautrix.HTTPError
	code, text := "", ""
	if errors.As(err, &httpErr) && httpErr.RespError != nil {
		code, text = httpErr.RespError.ErrCode, httpErr.RespError.Err
	}
	switch {
	case errors.Is(err, mautrix.MUserInUse):
		return refuse(ErrAccountExists, "that account name is taken; pick another")
	case errors.Is(err, mautrix.MInvalidUsername):
		return refuse(ErrBadAccountName, "the homeserver does not accept that account name (%s)", text)
	case errors.Is(err, mautrix.MExclusive):
		return refuse(ErrBadAccountName, "that name is reserved on the homeserver (for a bridge); pick another")
	case code == "M_WEAK_PASSWORD" || strings.HasPrefix(code, "M_PASSWORD_"):
		// Dendrite: "password too weak: min 8 characters"; Synapse's
		// password policy: M_PASSWORD_TOO_SHORT, M_PASSWORD_NO_DIGIT ...
		return refuse(ErrWeakPassword, "the homeserver finds that password too weak (%s); choose a longer one", text)
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("the homeserver did not answer in time; try again later")
	}
	return errors.New(registerErrorText(err))
}

// remoteHost is the client's address without its port, "" if unknown.
func remoteHost(client Client) string {
	ra, ok := client.(interface{ RemoteAddr() net.Addr })
	if !ok || ra.RemoteAddr() == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(ra.RemoteAddr().String())
	if err != nil {
		return ra.RemoteAddr().String()
	}
	return host
}
