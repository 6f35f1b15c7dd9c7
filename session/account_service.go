package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/store"
)

// The service's account commands: PASSWORD, STATUS, DEVICES, LOGOUT,
// ALWAYSON and IDENTIFY (which only a connection that is not logged in
// needs; see ircd's login-pending state).

// serviceArgs splits args, answering a malformed line itself.
func serviceArgs(reply func(string), args string) ([]string, bool) {
	words, err := irctext.SplitArgs(args)
	if err != nil {
		reply("Cannot read that: " + err.Error() + ".")
		return nil, false
	}
	return words, true
}

// secure says whether the client's connection is TLS or from this
// machine, as the IRC side reports it.
func (a *Attachment) secure() bool {
	sc, ok := a.client.(interface{ Secure() bool })
	return ok && sc.Secure()
}

// App passwords are between 8 and 256 bytes: long enough not to be
// guessed from the failed-login allowance, short enough for one SASL line.
const (
	minAppPassword = 8
	maxAppPassword = 256
)

func (s *Session) servicePassword(a *Attachment, out output, reply func(string), args string) {
	words, ok := serviceArgs(reply, args)
	if !ok {
		return
	}
	usage := "Usage: " + serviceCommands["PASSWORD"].usage
	if len(words) == 0 {
		reply(usage)
		return
	}
	var password string
	switch strings.ToUpper(words[0]) {
	case "SET":
		if len(words) != 2 {
			reply(usage + " (quote a password with spaces)")
			return
		}
		password = words[1]
		switch {
		case !a.secure():
			reply("Not over this connection: it is neither TLS nor from this machine, so the password could be read on the way. Connect with TLS and try again.")
			return
		case len(password) < minAppPassword || len(password) > maxAppPassword || !utf8.ValidString(password):
			reply(fmt.Sprintf("An app password is %d to %d bytes of text.", minAppPassword, maxAppPassword))
			return
		}
	case "CLEAR":
		if len(words) != 1 {
			reply(usage)
			return
		}
	default:
		reply(usage)
		return
	}
	user := s.user
	auth := s.mgr.auth
	s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
		err := auth.SetAppPassword(ctx, user, password)
		return func() {
			switch {
			case errors.Is(err, store.ErrNotFound):
				reply("Your account is not stored on this gateway yet; try again in a moment.")
			case err != nil:
				s.log.Error("could not save the app password", "err", err)
				reply("Could not save it: the gateway's database failed.")
			case password == "":
				reply("Your app password is removed. SASL PLAIN and IDENTIFY take your Matrix password only.")
			default:
				reply(fmt.Sprintf("Your app password is set. SASL PLAIN, PASS and IDENTIFY now take it for %s, as well as your Matrix password if you have one.", user))
			}
		}
	})
}

func (s *Session) serviceStatus(a *Attachment, _ output, reply func(string), args string) {
	if args != "" {
		reply("Usage: " + serviceCommands["STATUS"].usage)
		return
	}
	reply(fmt.Sprintf("Account %s, device %s of this gateway, on homeserver %s.", s.user, s.cli.DeviceID, s.cli.HomeserverURL))
	switch {
	case !s.synced:
		reply("Sync: the first sync is still running.")
	case s.syncBroken:
		reply("Sync: cannot reach the homeserver; retrying in the background.")
	default:
		reply("Sync: up to date, following new events.")
	}
	reply(fmt.Sprintf("Rooms: %d joined, %d invitations. IRC clients attached: %d. Always-on: %s.",
		len(s.rooms), len(s.invites), len(s.clients), onOff(s.alwaysOn.Load())))
	if s.olm.Load() != nil {
		reply("Encryption: on; encrypted rooms are readable (VERIFY makes this device trusted).")
	} else if s.mgr.cfg.CryptoStore != nil && !s.synced {
		reply("Encryption: starting.")
	} else {
		reply("Encryption: off for this gateway; encrypted rooms cannot be read.")
	}
	if s.lastError == "" {
		reply("Last error: none.")
	} else {
		reply(fmt.Sprintf("Last error: %s (%s ago).", s.lastError, time.Since(s.lastErrorAt).Round(time.Second)))
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func (s *Session) serviceAlwaysOn(a *Attachment, out output, reply func(string), args string) {
	words, ok := serviceArgs(reply, args)
	if !ok {
		return
	}
	if len(words) > 1 {
		reply("Usage: " + serviceCommands["ALWAYSON"].usage)
		return
	}
	arg := ""
	if len(words) == 1 {
		arg = words[0]
	}
	s.alwaysOnCommand(a, out, arg, reply, func(_, text string) { reply(text + ".") }, reply)
}

func (s *Session) serviceIdentify(_ *Attachment, _ output, reply func(string), _ string) {
	reply(fmt.Sprintf("You are logged in already, as %s.", s.user))
}

func (s *Session) serviceDevices(a *Attachment, out output, reply func(string), args string) {
	words, ok := serviceArgs(reply, args)
	if !ok {
		return
	}
	usage := "Usage: " + serviceCommands["DEVICES"].usage
	cli, own := s.cli, s.cli.DeviceID
	switch {
	case len(words) == 0:
		s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
			resp, err := cli.GetDevicesInfo(ctx)
			return func() {
				if err != nil {
					reply("Cannot list your devices: " + matrixErrorText(err))
					return
				}
				devices := resp.Devices
				sort.Slice(devices, func(i, j int) bool { return devices[i].LastSeenTS > devices[j].LastSeenTS })
				reply(fmt.Sprintf("Your account has %d devices, most recently seen first:", len(devices)))
				for _, d := range devices {
					reply(describeDevice(d, own))
				}
			}
		})
	case strings.EqualFold(words[0], "DELETE") && (len(words) == 2 || len(words) == 3):
		target := id.DeviceID(words[1])
		if target == own {
			reply("That is this gateway's own device: LOGOUT logs it out.")
			return
		}
		password := ""
		if len(words) == 3 {
			password = words[2]
		}
		s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
			err := deleteDevice(ctx, cli, target, password)
			return func() {
				switch {
				case errors.Is(err, errNeedPassword):
					reply(fmt.Sprintf("The homeserver wants your Matrix password to log out a device: DEVICES DELETE %s <password>", target))
				case errors.Is(err, mautrix.MForbidden) && password != "":
					reply("Not deleted: the homeserver did not accept that password.")
				case errors.Is(err, mautrix.MNotFound):
					reply(fmt.Sprintf("Your account has no device %q (DEVICES lists them).", target))
				case err != nil:
					reply("Not deleted: " + matrixErrorText(err))
				default:
					reply(fmt.Sprintf("Device %s is logged out of your account.", target))
				}
			}
		})
	default:
		reply(usage)
	}
}

func describeDevice(d mautrix.RespDeviceInfo, own id.DeviceID) string {
	line := d.DeviceID.String()
	if d.DisplayName != "" {
		line += fmt.Sprintf(" %q", d.DisplayName)
	}
	if d.LastSeenTS > 0 {
		line += ", last seen " + time.UnixMilli(d.LastSeenTS).UTC().Format("2006-01-02 15:04 UTC")
	}
	if d.LastSeenIP != "" {
		line += " from " + d.LastSeenIP
	}
	if d.DeviceID == own {
		line += " (this gateway)"
	}
	return line
}

// errNeedPassword says the homeserver wants the account's password to go on.
var errNeedPassword = errors.New("the homeserver asks for your password")

// deleteDevice logs a device of the account out. Homeservers guard this
// with user-interactive authentication: the first request learns the
// session, the second proves the password in it. Request worker.
func deleteDevice(ctx context.Context, cli *mautrix.Client, device id.DeviceID, password string) error {
	url := cli.BuildClientURL("v3", "devices", device)
	body, err := cli.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodDelete, URL: url, RequestJSON: struct{}{}})
	var httpErr mautrix.HTTPError
	if err == nil || !errors.As(err, &httpErr) || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusUnauthorized {
		return err
	}
	var uia mautrix.RespUserInteractive
	if json.Unmarshal(body, &uia) != nil && json.Unmarshal([]byte(httpErr.ResponseBody), &uia) != nil {
		return err
	}
	if !uia.HasSingleStageFlow(mautrix.AuthTypePassword) {
		return fmt.Errorf("the homeserver wants a kind of confirmation the gateway cannot give (%v); use another Matrix client", uia.Flows)
	}
	if password == "" {
		return errNeedPassword
	}
	auth := passwordAuth(uia.Session, cli.UserID, password)
	_, err = cli.MakeFullRequest(ctx, mautrix.FullRequest{
		Method: http.MethodDelete, URL: url, RequestJSON: map[string]any{"auth": auth}, SensitiveContent: true,
	})
	return err
}

func (s *Session) serviceLogout(a *Attachment, out output, reply func(string), args string) {
	words, ok := serviceArgs(reply, args)
	if !ok {
		return
	}
	if len(words) == 0 {
		reply(fmt.Sprintf("LOGOUT logs this gateway's device (%s) out of your Matrix account: your IRC clients here are disconnected, "+
			"and the next login makes a new device. Type LOGOUT CONFIRM to go ahead.", s.cli.DeviceID))
		return
	}
	if len(words) != 1 || !strings.EqualFold(words[0], "CONFIRM") {
		reply("Usage: " + serviceCommands["LOGOUT"].usage)
		return
	}
	cli, user, st := s.cli, s.user, s.mgr.store
	s.loggingOut = true
	s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
		_, err := cli.Logout(ctx)
		if errors.Is(err, mautrix.MUnknownToken) {
			err = nil // logged out already
		}
		if err == nil {
			err = forgetDevice(ctx, st, user)
		}
		return func() {
			if err != nil {
				s.loggingOut = false
				reply("Not logged out: " + matrixErrorText(err))
				return
			}
			s.log.Info("logged out of Matrix at the user's request")
			reply("This gateway's device is logged out of your Matrix account.")
			s.shutdownClients("Logged out of Matrix (LOGOUT); log in again to come back")
			s.mgr.forget(s)
			s.cancel()
		}
	})
}

// forgetDevice drops a logged-out account's token, OAuth grant (scoped to
// the device) and device, so the next login makes a new device rather
// than reusing one whose keys the homeserver has deleted. Request worker.
func forgetDevice(ctx context.Context, st store.Store, user id.UserID) error {
	if err := st.DeleteOAuthGrant(ctx, user); err != nil {
		return err
	}
	acct, err := st.Account(ctx, user)
	if err != nil {
		return err
	}
	acct.AccessToken, acct.DeviceID = "", ""
	return st.PutAccount(ctx, acct)
}

// passwordAuth is the m.login.password stage of a user-interactive
// session, for the account's own user (device deletion, deactivation).
func passwordAuth(session string, user id.UserID, password string) map[string]any {
	return map[string]any{
		"type":       mautrix.AuthTypePassword,
		"session":    session,
		"identifier": mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user.String()},
		"user":       user.String(),
		"password":   password,
	}
}
