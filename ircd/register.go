package ircd

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// registration is the state a connection collects before it is welcomed.
// Only the reader goroutine touches it.
type registration struct {
	nickSet    bool
	userSet    bool
	pass       string
	capPaused  bool // CAP LS or REQ seen, CAP END not yet
	saslMech   string
	saslBuf    []byte
	loggedInAs string // account name after a successful SASL login
}

// supportedCaps lists every capability this server implements, with its
// value for CAP LS 302. A capability is listed only once it fully works.
var supportedCaps = []struct{ name, value string }{
	// A Matrix user's account (their ID) and user@host never change, so
	// account-notify and chghost are complete with nothing to send.
	{"account-notify", ""},
	{"account-tag", ""},
	{"away-notify", ""},
	{"batch", ""},
	{"cap-notify", ""},
	{"chghost", ""},
	{accountRegistrationCap, accountRegistrationCapValue}, // only when offered (capOffered)
	{"draft/channel-rename", ""},
	{"draft/chathistory", ""},
	{"draft/event-playback", ""},
	{"draft/message-redaction", ""},
	{multilineCap, multilineCapValue},
	{"draft/no-implicit-names", ""},
	{"draft/read-marker", ""},
	{"echo-message", ""},
	{"extended-join", ""},
	{"extended-monitor", ""},
	{"invite-notify", ""},
	{"labeled-response", ""},
	{"message-tags", ""},
	{"multi-prefix", ""},
	{"sasl", "PLAIN"},
	{"server-time", ""},
	{"setname", ""},
	{"standard-replies", ""},
	{"userhost-in-names", ""},
}

func capSupported(name string) bool {
	for _, c := range supportedCaps {
		if c.name == name {
			return true
		}
	}
	return false
}

func (c *Conn) handleCap(m *irc.Message) error {
	sub := strings.ToUpper(m.Params[0])
	switch sub {
	case "LS":
		if !c.registered.Load() {
			c.reg.capPaused = true
		}
		version := 301
		if len(m.Params) > 1 {
			if v, err := strconv.Atoi(m.Params[1]); err == nil && v >= 302 {
				version = 302
			}
		}
		if version >= 302 {
			// cap-notify is implied by CAP LS 302.
			c.mu.Lock()
			c.caps["cap-notify"] = true
			c.mu.Unlock()
		}
		var list []string
		for _, sc := range supportedCaps {
			if !c.capOffered(sc.name) {
				continue
			}
			if sc.name == "sasl" {
				sc.value = c.saslMechs()
			}
			if sc.value != "" && version >= 302 {
				list = append(list, sc.name+"="+sc.value)
			} else {
				list = append(list, sc.name)
			}
		}
		// sts has no meaning without its value, which 301 cannot carry;
		// it is not in supportedCaps, so CAP REQ sts is refused.
		if sts := c.srv.cfg.STS; sts != nil && version >= 302 {
			if v := sts(c.nc); v != "" {
				list = append(list, "sts="+v)
			}
		}
		c.sendCap("LS", strings.Join(list, " "))
	case "LIST":
		c.mu.Lock()
		var list []string
		for _, sc := range supportedCaps {
			if c.caps[sc.name] {
				list = append(list, sc.name)
			}
		}
		c.mu.Unlock()
		c.sendCap("LIST", strings.Join(list, " "))
	case "REQ":
		if len(m.Params) < 2 {
			return errNeedMoreParams("CAP")
		}
		if !c.registered.Load() {
			c.reg.capPaused = true
		}
		req := strings.Fields(m.Params[1])
		// A request is granted whole or not at all.
		for _, name := range req {
			if !c.capOffered(strings.TrimPrefix(name, "-")) {
				c.sendCap("NAK", m.Params[1])
				return nil
			}
		}
		c.mu.Lock()
		for _, name := range req {
			if n, ok := strings.CutPrefix(name, "-"); ok {
				delete(c.caps, n)
			} else {
				c.caps[name] = true
			}
		}
		c.mu.Unlock()
		c.sendCap("ACK", m.Params[1])
	case "END":
		if !c.registered.Load() {
			c.reg.capPaused = false
			c.tryRegister()
		}
	default:
		return ircreply.Numeric(errInvalidCapCmd, m.Params[0], "Invalid CAP command")
	}
	return nil
}

func (c *Conn) sendCap(sub, list string) {
	c.reply(&irc.Message{
		Prefix:  &irc.Prefix{Name: c.srv.cfg.ServerName},
		Command: "CAP",
		Params:  []string{c.Nick(), sub, list},
	})
}

// maxSASLBytes bounds the base64 a client may send for one SASL exchange.
const maxSASLBytes = 4096

func (c *Conn) handleAuthenticate(m *irc.Message) error {
	if (c.registered.Load() && !c.pending.Load()) || c.reg.loggedInAs != "" {
		return ircreply.Numeric(irc.ERR_SASLALREADY, "You have already authenticated")
	}
	if !c.HasCap("sasl") {
		return ircreply.Numeric(irc.ERR_SASLFAIL, "SASL authentication failed: request the sasl capability first")
	}
	arg := m.Params[0]
	if arg == "*" {
		c.resetSASL()
		return ircreply.Numeric(irc.ERR_SASLABORTED, "SASL authentication aborted")
	}
	if c.reg.saslMech == "" {
		mech := strings.ToUpper(arg)
		if mech != "PLAIN" && (mech != "EXTERNAL" || !c.externalOffered()) {
			c.replyNumeric(irc.RPL_SASLMECHS, c.saslMechs(), "are available SASL mechanisms")
			return ircreply.Numeric(irc.ERR_SASLFAIL, "SASL authentication failed: unsupported mechanism")
		}
		c.reg.saslMech = mech
		c.reply(&irc.Message{Command: "AUTHENTICATE", Params: []string{"+"}})
		return nil
	}
	if len(arg) > 400 {
		c.resetSASL()
		return ircreply.Numeric(irc.ERR_SASLTOOLONG, "SASL message too long")
	}
	if arg != "+" {
		c.reg.saslBuf = append(c.reg.saslBuf, arg...)
	}
	if len(c.reg.saslBuf) > maxSASLBytes {
		// 905 is for one line over 400 bytes; too much in all fails the
		// exchange, as the SASL spec and irctest expect.
		c.resetSASL()
		return ircreply.Numeric(irc.ERR_SASLFAIL, "SASL authentication failed: more than "+strconv.Itoa(maxSASLBytes)+" bytes of SASL data")
	}
	if len(arg) == 400 {
		return nil // more chunks follow
	}
	mech := c.reg.saslMech
	payload, err := base64.StdEncoding.DecodeString(string(c.reg.saslBuf))
	c.resetSASL()
	if err != nil {
		return ircreply.Numeric(irc.ERR_SASLFAIL, "SASL authentication failed: invalid base64")
	}
	if mech == "EXTERNAL" {
		if !c.saslExternal(string(payload)) {
			return nil
		}
	} else if !c.saslPlain(payload) {
		return nil
	}
	if c.pending.Load() {
		c.finishPending(true)
		return nil
	}
	account := c.handler.Account()
	c.reg.loggedInAs = account
	c.replyNumeric(irc.RPL_LOGGEDIN, loggedInMask(c, account), account, "You are now logged in as "+account)
	c.replyNumeric(irc.RPL_SASLSUCCESS, "SASL authentication successful")
	return nil
}

// saslPlain logs in with a PLAIN message, replying to a failure itself.
func (c *Conn) saslPlain(payload []byte) bool {
	parts := bytes.Split(payload, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		c.replyNumeric(irc.ERR_SASLFAIL, "SASL authentication failed: malformed PLAIN message")
		return false
	}
	authzid, authcid, password := string(parts[0]), string(parts[1]), string(parts[2])
	if authzid != "" && authzid != authcid {
		c.replyNumeric(irc.ERR_SASLFAIL, "SASL authentication failed: cannot log in as another user")
		return false
	}
	return c.login(authcid, password, irc.ERR_SASLFAIL)
}

// loggedInMask is 900's nick!user@host. SASL usually comes before USER,
// so it is the user and host others see (selfPrefix).
func loggedInMask(c *Conn, account string) string {
	return c.selfPrefix().String()
}

func (c *Conn) resetSASL() {
	c.reg.saslMech = ""
	c.reg.saslBuf = nil
}

// login asks the backend to log the client in. On failure it sends failCode
// (904 for SASL, 464 for PASS) or a homeserver error and returns false.
func (c *Conn) login(account, password, failCode string) bool {
	msg, ok := c.tryLogin(account, password)
	switch {
	case ok:
		return true
	case failCode == irc.ERR_SASLFAIL || msg == msgInvalidCredentials || msg == msgTooManyFailures:
		c.replyNumeric(failCode, msg)
	default:
		c.replyNotice(msg)
	}
	return false
}

const (
	msgInvalidCredentials = "Invalid account or password"
	msgTooManyFailures    = "Too many failed logins from your address; try again later"
)

// tryLogin asks the backend to log the client in, counting failures
// against the address. On success the connection is loggedIn; on failure it returns
// what to tell the client.
func (c *Conn) tryLogin(account, password string) (string, bool) {
	return c.tryLoginRequest(LoginRequest{Account: account, Password: password})
}

// tryLoginRequest is tryLogin for any kind of LoginRequest.
func (c *Conn) tryLoginRequest(req LoginRequest) (string, bool) {
	account := req.Account
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.LoginTimeout)
	defer cancel()
	done, ok := c.srv.takeLoginToken(ctx, c.RemoteAddr())
	if !ok {
		return msgTooManyFailures, false
	}
	failed := false
	defer func() { done(failed) }()
	req.RemoteAddr = c.RemoteAddr()
	h, err := c.srv.backend.Login(ctx, req, c)
	switch {
	case err == nil:
		c.loggedIn(h)
		return "", true
	case errors.Is(err, ErrInvalidCredentials):
		failed = true
		c.logger().Info("login refused", "account", account, "err", err)
		return msgInvalidCredentials, false
	case errors.Is(err, context.DeadlineExceeded):
		c.logger().Warn("login failed", "account", account, "err", err)
		return "Login failed: the homeserver did not answer in time", false
	default:
		c.logger().Warn("login failed", "account", account, "err", err)
		return "Login failed: " + err.Error(), false
	}
}

func (c *Conn) handleNickPreReg(m *irc.Message) error {
	nick := m.Params[0]
	if !ValidNick(nick) {
		return ircreply.Numeric(irc.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname")
	}
	c.storeNick(nick) // not registered yet: the reader's to write
	c.reg.nickSet = true
	c.tryRegister()
	return nil
}

func (c *Conn) handleUser(m *irc.Message) error {
	if c.registered.Load() || c.reg.userSet {
		return errAlreadyRegistered
	}
	if m.Params[0] == "" || m.Params[3] == "" {
		// Neither may be empty (modern.ircdocs.horse); the client may
		// send USER again.
		return errNeedMoreParams("USER")
	}
	c.mu.Lock()
	c.user = m.Params[0]
	c.realname = m.Params[3]
	c.mu.Unlock()
	c.reg.userSet = true
	c.tryRegister()
	return nil
}

func (c *Conn) handlePass(m *irc.Message) error {
	if c.registered.Load() {
		return errAlreadyRegistered
	}
	c.reg.pass = m.Params[0]
	return nil
}

var errAlreadyRegistered = ircreply.Numeric(irc.ERR_ALREADYREGISTERED, "You may not reregister")

// tryRegister completes registration once NICK, USER and the CAP
// negotiation are done, logging in with PASS when SASL was not used.
func (c *Conn) tryRegister() {
	if c.registered.Load() || !c.reg.nickSet || !c.reg.userSet || c.reg.capPaused {
		return
	}
	if c.handler == nil {
		ar, _ := c.srv.backend.(AutoRegisterer)
		switch {
		case c.reg.pass == "" && c.srv.cfg.AutoRegister && ar != nil:
			if !c.srv.claimAnonNick(c, c.Nick()) {
				c.refuseTakenNick()
				return
			}
			if !c.autoRegister(ar) {
				return
			}
		case c.reg.pass == "":
			if c.srv.cfg.LoginPendingTimeout < 0 {
				c.replyNumeric(irc.ERR_PASSWDMISMATCH,
					"This server needs your Matrix login: use SASL PLAIN, or PASS with your Matrix ID as the USER name")
				c.Close("Matrix login required")
				return
			}
			c.enterPending()
			return
		default:
			pass := c.reg.pass
			c.reg.pass = ""
			if !c.login(c.Username(), pass, irc.ERR_PASSWDMISMATCH) {
				c.Close("Login failed")
				return
			}
		}
	}
	c.reg.pass = ""
	if on, ok := c.handler.(ownNicker); ok {
		if nick := on.OwnNick(); nick != "" && ValidNick(nick) {
			c.storeNick(nick)
		}
	}
	c.registered.Store(true)
	c.srv.count(c)
	c.sendWelcome()
	c.handler.Attach()
}

func (c *Conn) sendWelcome() {
	cfg := &c.srv.cfg
	nick := c.Nick()
	c.replyNumeric(irc.RPL_WELCOME, "Welcome to the "+cfg.Network+" IRC network, "+nick)
	c.replyNumeric(irc.RPL_YOURHOST, "Your host is "+cfg.ServerName+", running version "+cfg.Version)
	c.replyNumeric(irc.RPL_CREATED, "This server was created "+cfg.Created.UTC().Format("Mon Jan 2 2006 at 15:04:05 UTC"))
	c.replyNumeric(irc.RPL_MYINFO, cfg.ServerName, cfg.Version, UserModes, ChannelModes)
	for _, params := range c.srv.isupport.lines() {
		c.replyNumeric(irc.RPL_ISUPPORT, append(params, "are supported by this server")...)
	}
	c.sendMOTD()
}

func (c *Conn) sendMOTD() {
	cfg := &c.srv.cfg
	if len(cfg.MOTD) == 0 {
		c.replyNumeric(irc.ERR_NOMOTD, "MOTD File is missing")
		return
	}
	c.replyNumeric(irc.RPL_MOTDSTART, "- "+cfg.ServerName+" Message of the day - ")
	for _, line := range cfg.MOTD {
		c.replyNumeric(irc.RPL_MOTD, "- "+line)
	}
	c.replyNumeric(irc.RPL_ENDOFMOTD, "End of /MOTD command.")
}

// ValidNick reports whether a client may take nick as its own. It is
// stricter than the nicks mxircd derives for Matrix users, so a client's
// own nick can never look like one of theirs ("name:server").
func ValidNick(nick string) bool {
	if nick == "" || len(nick) > NickLen {
		return false
	}
	switch nick[0] {
	case '#', '!', '&', '+', '~', '%', '@', ':', '$', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return false
	}
	for _, r := range nick {
		switch {
		case r <= ' ', r == 0x7f:
			return false
		case strings.ContainsRune(",*?!@:", r):
			return false
		}
	}
	return true
}
