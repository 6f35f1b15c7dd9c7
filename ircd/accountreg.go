package ircd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// Account registration (IRCv3 draft/account-registration): with
// Config.AccountRegistration and a Backend that is an AccountRegisterer,
// a client may make a lasting account of the name it chooses with
// REGISTER <account> <email|*> <password>, before connection registration
// or while it is login-pending (lurkers included), and is then logged in
// to it as if SASL had succeeded. The Backend registers and logs in; ircd
// checks who may ask, limits how often, and answers as the spec says.
// There is no verification step, so VERIFY only ever refuses.

// AccountRegisterer is a Backend that can register the account a client
// asks for (REGISTER).
type AccountRegisterer interface {
	// RegisterAccount registers account with password and binds the
	// connection to it, returning its Handler. Reader goroutine; ctx ends
	// with the connection or the login timeout. A refusal the client can
	// act on is a *RegisterError; any other error is the homeserver or
	// the gateway failing, its text shown to the client as it is.
	RegisterAccount(ctx context.Context, account, password string, c *Conn) (Handler, error)
}

// The FAIL REGISTER codes a RegisterError may carry.
const (
	RegisterAccountExists        = "ACCOUNT_EXISTS"
	RegisterBadAccountName       = "BAD_ACCOUNT_NAME"
	RegisterWeakPassword         = "WEAK_PASSWORD"
	RegisterUnacceptablePassword = "UNACCEPTABLE_PASSWORD"
)

// RegisterError is a refusal of REGISTER with its FAIL code; Err's text
// is what the client is told.
type RegisterError struct {
	Code string
	Err  error
}

func (e *RegisterError) Error() string { return e.Err.Error() }
func (e *RegisterError) Unwrap() error { return e.Err }

const (
	accountRegistrationCap = "draft/account-registration"
	// The client names the account (custom-account-name), may register
	// before connection registration (before-connect), and needs no
	// e-mail address (no email-required).
	accountRegistrationCapValue = "before-connect,custom-account-name"
)

// Per connection, REGISTER may reach the homeserver this often: enough to
// try a few names, not to probe many.
const (
	registerConnBurst    = 5
	registerConnInterval = 10 * time.Second
)

// accountRegisterer is the Backend as an AccountRegisterer, when REGISTER
// is offered.
func (s *Server) accountRegisterer() (AccountRegisterer, bool) {
	if !s.cfg.AccountRegistration {
		return nil, false
	}
	ar, ok := s.backend.(AccountRegisterer)
	return ar, ok
}

// capOffered says whether the server offers the capability name to
// this connection.
func (c *Conn) capOffered(name string) bool {
	if name == accountRegistrationCap {
		_, ok := c.srv.accountRegisterer()
		return ok
	}
	return capSupported(name)
}

// authenticatedAs is the account the connection is logged in to, "" while
// it has none (a lurker reads through a session that is not its own).
// Reader goroutine.
func (c *Conn) authenticatedAs() string {
	if c.handler != nil && c.lurk == nil {
		return c.handler.Account()
	}
	return c.reg.loggedInAs
}

// failParam makes a client's word safe as a middle parameter of FAIL.
func failParam(s string) string {
	if s == "" || strings.HasPrefix(s, ":") || strings.ContainsAny(s, " \r\n\x00") {
		return "*"
	}
	return s
}

func (c *Conn) handleRegister(m *irc.Message) error {
	name, email, password := m.Params[0], m.Params[1], m.Params[2]
	if name == "*" && (c.registered.Load() || c.reg.nickSet) {
		name = c.Nick()
	}
	ar, ok := c.srv.accountRegisterer()
	if !ok {
		return ircreply.Fail("REGISTER", "DISALLOWED", failParam(name),
			"This server does not make accounts with REGISTER; log in with SASL PLAIN, or /msg "+c.srv.cfg.ServiceNick+" HELP")
	}
	if account := c.authenticatedAs(); account != "" {
		return ircreply.Fail("REGISTER", "ALREADY_AUTHENTICATED", failParam(account), "You are already logged in as "+account)
	}
	if !c.registered.Load() && !c.reg.nickSet {
		return ircreply.Fail("REGISTER", "NEED_NICK", "*", "Send NICK before REGISTER")
	}
	if c.registerLimit == nil {
		c.registerLimit = rate.NewLimiter(rate.Every(registerConnInterval), registerConnBurst)
	}
	if !c.registerLimit.Allow() {
		return ircreply.Fail("REGISTER", "TEMPORARILY_UNAVAILABLE", failParam(name),
			"Too many REGISTER attempts from this connection; wait a minute and try again")
	}
	done, ok := c.srv.takeRegistration(c.RemoteAddr())
	if !ok {
		return ircreply.Fail("REGISTER", "TEMPORARILY_UNAVAILABLE", failParam(name),
			"Too many accounts were registered from your address lately; try again later")
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.LoginTimeout)
	h, err := ar.RegisterAccount(ctx, name, password, c)
	cancel()
	done(err == nil)
	if err != nil {
		var refusal *RegisterError
		if errors.As(err, &refusal) {
			c.logger().Info("REGISTER refused", "account", name, "code", refusal.Code, "err", err)
			return ircreply.Fail("REGISTER", refusal.Code, failParam(name), capitalize(err.Error()))
		}
		c.logger().Warn("REGISTER failed", "account", name, "err", err)
		return ircreply.Fail("REGISTER", "TEMPORARILY_UNAVAILABLE", failParam(name),
			"Could not register the account: "+err.Error())
	}
	c.loggedIn(h)
	account := h.Account()
	c.logger().Info("registered and logged in with REGISTER")
	text := "Account " + account + " registered; you are logged in to it. Next time log in with SASL PLAIN (or PASS) as " + account + " and this password"
	if email != "*" {
		text += " (the e-mail address is not kept: Matrix registration here needs none)"
	}
	c.reply(&irc.Message{Prefix: &irc.Prefix{Name: c.srv.cfg.ServerName}, Command: "REGISTER", Params: []string{"SUCCESS", account, text}})
	if c.pending.Load() {
		c.finishPending(false) // 900, and the account's burst
		return nil
	}
	// Before registration, as SASL: the welcome and the burst follow
	// when it completes.
	c.reg.loggedInAs = account
	c.replyNumeric(irc.RPL_LOGGEDIN, loggedInMask(c, account), account, "You are now logged in as "+account)
	return nil
}

// handleVerify answers VERIFY: REGISTER needs no verification here, so
// there is never a code to check.
func (c *Conn) handleVerify(m *irc.Message) error {
	name := m.Params[0]
	if _, ok := c.srv.accountRegisterer(); !ok {
		return ircreply.Fail("VERIFY", "DISALLOWED", failParam(name), "This server does not make accounts with REGISTER")
	}
	if account := c.authenticatedAs(); account != "" {
		return ircreply.Fail("VERIFY", "ALREADY_AUTHENTICATED", failParam(account), "You are already logged in as "+account)
	}
	return ircreply.Fail("VERIFY", "INVALID_CODE", failParam(name),
		"There is nothing to verify: REGISTER makes the account at once, with no code")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// registerLimit is one address's budget of accounts made with REGISTER.
type registerLimit struct {
	lim      *rate.Limiter
	inFlight int // registrations in progress, each holding a token
}

// takeRegistration reserves one of the accounts addr may still make; ok
// is false when none is left. Otherwise the caller calls done once the
// homeserver has answered, saying whether an account was made: only
// those use up the budget, so a taken name or a weak password costs
// nothing, while registrations in progress at once all count. Reader
// goroutine.
func (s *Server) takeRegistration(addr net.Addr) (done func(created bool), ok bool) {
	key := addressKey(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.registrations == nil {
		s.registrations = map[string]*registerLimit{}
	}
	r := s.registrations[key]
	if r == nil {
		if len(s.registrations) > 10000 {
			for k, old := range s.registrations {
				if old.inFlight == 0 && old.lim.Tokens() >= float64(s.cfg.RegistrationBurst) {
					delete(s.registrations, k)
				}
			}
		}
		r = &registerLimit{lim: rate.NewLimiter(rate.Every(s.cfg.RegistrationInterval), s.cfg.RegistrationBurst)}
		s.registrations[key] = r
	}
	if r.lim.Tokens()-float64(r.inFlight) < 1 {
		return nil, false
	}
	r.inFlight++
	var once sync.Once
	return func(created bool) {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			r.inFlight--
			if created {
				r.lim.Allow()
			}
		})
	}, true
}

// addressKey names the client an address belongs to: its IP, or its /64
// for IPv6, where one client commonly holds a whole /64.
func addressKey(addr net.Addr) string {
	ip, err := netip.ParseAddr(hostOf(addr))
	if err != nil {
		return hostOf(addr)
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}
