// Package ircd is the IRC side of mxircd: listeners, connections with a
// bounded reader and a byte-limited send queue, registration with CAP and
// SASL, the command table and the replies that need no Matrix knowledge.
// Everything Matrix-specific is behind Backend and Handler.
package ircd

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"gopkg.in/irc.v4"
)

// LoginRequest is what a client presented to log in.
type LoginRequest struct {
	Account    string // SASL authcid or USER name, as the client typed it
	Password   string
	RemoteAddr net.Addr
	// CertFP, when set, logs in by the TLS client certificate of this
	// fingerprint (SASL EXTERNAL) instead of a password; Account is then
	// the authorization identity the client asked for, "" if none.
	CertFP string
}

// ErrInvalidCredentials is what a Backend returns (wrapped or not) when the
// account or password is wrong, as opposed to the homeserver being unwell.
var ErrInvalidCredentials = errors.New("invalid credentials")

// Backend logs clients in to the Matrix side and answers the commands
// that need it.
type Backend interface {
	// Commands declares the commands the Backend's Handlers answer, by
	// name; ircd checks registration and parameters before passing one to
	// HandleCommand. Called once, by NewServer.
	Commands() map[string]Command
	// Login authenticates req and binds the connection to its account. It is
	// called on the connection's reader goroutine; ctx ends with the
	// connection or the login timeout. Errors are shown to the client:
	// ErrInvalidCredentials as a failed login, anything else as a
	// homeserver problem with the error text.
	Login(ctx context.Context, req LoginRequest, c *Conn) (Handler, error)
	// StartLogin begins a login that the user finishes in a web browser
	// (LOGIN; browserlogin.go) at the homeserver server names: "" for the
	// default one, a server name or a Matrix ID. It returns once the
	// homeserver has said how (bounded by the Backend), with what to show
	// the user; ctx ends with the connection, or when the login is given
	// up, and then BrowserLogin.Wait returns. Reader goroutine. Errors are
	// shown to the client as they are.
	StartLogin(ctx context.Context, server string, c *Conn) (*BrowserLogin, error)
	// LoginWays says how the default homeserver lets users in, for the
	// greeting of a login-pending connection: with a password (Login), in
	// a browser (StartLogin), or both. It must answer quickly (a cached
	// answer, or a short timeout). Reader goroutine.
	LoginWays(ctx context.Context) (password, browser bool)
}

// Handler is a logged-in connection's link to its Matrix session. The
// methods are called on the connection's reader goroutine and must not block
// on the network.
type Handler interface {
	// Attach is called once, right after the welcome burst.
	Attach()
	// HandleCommand takes a command that needs the Matrix side.
	HandleCommand(m *irc.Message)
	// Detach is called once when the connection ends, attached or not.
	Detach()
	// Account is the name the client is logged in as (the Matrix ID).
	Account() string
}

// ownNicker is a Handler that knows the nick its account is seen under, so
// the welcome can give it at once rather than a NICK after it (irssi sends
// "MODE <nick> +i" with the nick of 001).
type ownNicker interface {
	// OwnNick is that nick, or "" to keep the client's. Any goroutine.
	OwnNick() string
}

// Config holds the IRC side's settings. Zero values get defaults in
// NewServer (DefaultConfig).
type Config struct {
	ServerName string // source of server lines, e.g. "mxircd"
	Network    string // NETWORK in ISUPPORT
	Version    string
	MOTD       []string // nil sends 422 (no MOTD)
	Created    time.Time

	MaxSendQ            int           // bytes queued for one client before it is dropped
	FloodRate           float64       // lines per second a client may send after its burst
	FloodBurst          int           // lines a client may send at once
	FloodDisconnect     time.Duration // how long a client may stay throttled before it is dropped
	PingInterval        time.Duration // idle time before the server pings
	PingTimeout         time.Duration // time to answer that ping
	RegistrationTimeout time.Duration
	LoginTimeout        time.Duration
	WriteTimeout        time.Duration
	FailedLoginRate     float64 // failed logins per second allowed per address, after the burst
	FailedLoginBurst    int
	// ServiceNick is the service the login-pending state points to
	// (NickServ is an alias).
	ServiceNick string
	// LoginPendingTimeout is how long a connection that registered
	// without credentials may stay to log in; negative refuses such a
	// connection at once (464).
	LoginPendingTimeout time.Duration
	// Guests lets a connection without credentials read public rooms
	// until it logs in (a lurker), when the Backend is a Lurker; it is
	// then bound by GuestIdleTimeout instead of LoginPendingTimeout.
	Guests bool
	// GuestIdleTimeout drops a lurker that has sent nothing but PING and
	// PONG for this long (default 30 minutes).
	GuestIdleTimeout time.Duration
	// AutoRegister gives a connection without a login an account of its
	// own, when the Backend is an AutoRegisterer (autoreg.go).
	AutoRegister bool
	// AccountRegistration offers REGISTER (draft/account-registration),
	// when the Backend is an AccountRegisterer (accountreg.go).
	AccountRegistration bool
	// One client address may make RegistrationBurst accounts with
	// REGISTER at once, and one more each RegistrationInterval.
	RegistrationBurst    int
	RegistrationInterval time.Duration

	// STS, if set, gives the value of the sts capability (IRCv3 Strict
	// Transport Security) for a connection, such as "port=6697" on a
	// plaintext one or "duration=86400" on TLS; "" leaves it out.
	STS func(nc net.Conn) string
	// ClientCert, if set, says whether a connection can carry a TLS
	// client certificate (then SASL EXTERNAL is offered on it) and the
	// fingerprint of the one the client presented, "" if none.
	ClientCert func(nc net.Conn) (fingerprint string, ok bool)

	Logger *slog.Logger
}

// DefaultConfig is the IRC side's settings where none are given: NewServer
// takes each zero field of its Config from here, and the gateway's
// configuration starts from it. The one place these defaults live.
func DefaultConfig() Config {
	return Config{
		ServerName:           "mxircd",
		Network:              "Matrix",
		Version:              "mxircd",
		MaxSendQ:             1 << 20,
		FloodRate:            5,
		FloodBurst:           40,
		FloodDisconnect:      60 * time.Second,
		PingInterval:         2 * time.Minute,
		PingTimeout:          2 * time.Minute,
		RegistrationTimeout:  time.Minute,
		LoginTimeout:         30 * time.Second,
		WriteTimeout:         30 * time.Second,
		FailedLoginRate:      0.2,
		FailedLoginBurst:     10,
		ServiceNick:          "mxircd",
		LoginPendingTimeout:  5 * time.Minute,
		GuestIdleTimeout:     30 * time.Minute,
		RegistrationBurst:    3,
		RegistrationInterval: 10 * time.Minute,
	}
}

func (cfg *Config) setDefaults() {
	d := DefaultConfig()
	cfg.ServerName = cmp.Or(cfg.ServerName, d.ServerName)
	cfg.Network = cmp.Or(cfg.Network, d.Network)
	cfg.Version = cmp.Or(cfg.Version, d.Version)
	if cfg.Created.IsZero() {
		cfg.Created = time.Now()
	}
	cfg.MaxSendQ = cmp.Or(cfg.MaxSendQ, d.MaxSendQ)
	cfg.FloodRate = cmp.Or(cfg.FloodRate, d.FloodRate)
	cfg.FloodBurst = cmp.Or(cfg.FloodBurst, d.FloodBurst)
	cfg.FloodDisconnect = cmp.Or(cfg.FloodDisconnect, d.FloodDisconnect)
	cfg.PingInterval = cmp.Or(cfg.PingInterval, d.PingInterval)
	cfg.PingTimeout = cmp.Or(cfg.PingTimeout, d.PingTimeout)
	cfg.RegistrationTimeout = cmp.Or(cfg.RegistrationTimeout, d.RegistrationTimeout)
	cfg.LoginTimeout = cmp.Or(cfg.LoginTimeout, d.LoginTimeout)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, d.WriteTimeout)
	cfg.LoginPendingTimeout = cmp.Or(cfg.LoginPendingTimeout, d.LoginPendingTimeout)
	cfg.GuestIdleTimeout = cmp.Or(cfg.GuestIdleTimeout, d.GuestIdleTimeout)
	cfg.ServiceNick = cmp.Or(cfg.ServiceNick, d.ServiceNick)
	cfg.FailedLoginRate = cmp.Or(cfg.FailedLoginRate, d.FailedLoginRate)
	cfg.FailedLoginBurst = cmp.Or(cfg.FailedLoginBurst, d.FailedLoginBurst)
	cfg.RegistrationBurst = cmp.Or(cfg.RegistrationBurst, d.RegistrationBurst)
	cfg.RegistrationInterval = cmp.Or(cfg.RegistrationInterval, d.RegistrationInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

// Server accepts IRC connections on any number of listeners.
type Server struct {
	cfg     Config
	backend Backend
	log     *slog.Logger

	mu        sync.Mutex
	conns     map[*Conn]struct{}
	listeners map[net.Listener]struct{}
	closing   bool
	failures  map[string]*loginLimit // failed logins by remote IP
	guests    map[string]bool        // nicks given to lurkers (lurk.go)
	anonNicks map[string]*Conn       // nicks held by connections without a login (autoreg.go)
	// registrations are the accounts REGISTER made lately, by client
	// address (accountreg.go).
	registrations map[string]*registerLimit
	isupport      *ISupport
	commands      map[string]Command // read-only after NewServer
	users         int                // registered connections not closing (lusers.go)
	maxUsers      int                // the most users at once since start
	connsDone     sync.WaitGroup
	stats         stats // counters for metrics (stats.go)
}

func NewServer(cfg Config, backend Backend) *Server {
	cfg.setDefaults()
	return &Server{
		cfg:       cfg,
		backend:   backend,
		log:       cfg.Logger,
		conns:     map[*Conn]struct{}{},
		listeners: map[net.Listener]struct{}{},
		failures:  map[string]*loginLimit{},
		isupport:  defaultISupport(&cfg),
		commands:  commandTable(backend),
	}
}

// Serve accepts connections on ln until ln is closed or the server shuts
// down. It returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.startConn(nc)
	}
}

func (s *Server) startConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.connsDone.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic serving connection", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		c.serve()
	}()
}

func (s *Server) connDone(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsDone.Done()
}

// Shutdown stops accepting, sends every client "ERROR :reason", and waits
// (until ctx ends) for their connections to finish, which includes their
// Handler's Detach.
func (s *Server) Shutdown(ctx context.Context, reason string) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close(reason)
	}
	done := make(chan struct{})
	go func() {
		s.connsDone.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ConnCount is the number of open connections.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// takeLoginToken counts a login attempt from addr against its failed-login
// limit before the password is checked, so that attempts made at the same
// moment are all counted (issue 15: 200 at once all got checked). ok is
// false when none is left; otherwise the caller calls done once the
// check is over, saying whether the password was wrong: only failed
// attempts use up the budget, to slow password guessing without getting
// in the way of many honest users behind one address.
func (s *Server) takeLoginToken(ctx context.Context, addr net.Addr) (done func(failed bool), ok bool) {
	host := hostOf(addr)
	for {
		s.mu.Lock()
		f := s.failures[host]
		if f == nil {
			if len(s.failures) > 10000 {
				for h, old := range s.failures {
					if old.inFlight == 0 && old.lim.Tokens() >= float64(s.cfg.FailedLoginBurst) {
						delete(s.failures, h)
					}
				}
			}
			f = &loginLimit{lim: rate.NewLimiter(rate.Limit(s.cfg.FailedLoginRate), s.cfg.FailedLoginBurst)}
			s.failures[host] = f
		}
		tokens := f.lim.Tokens()
		if tokens < 1 {
			s.mu.Unlock()
			return nil, false
		}
		// A check in progress holds a token: it may yet turn out a
		// failure. Beyond them, attempts wait their turn (many honest
		// users behind one address log in at once after a restart).
		if tokens-float64(f.inFlight) >= 1 {
			f.inFlight++
			s.mu.Unlock()
			var once sync.Once
			return func(failed bool) {
				once.Do(func() {
					s.mu.Lock()
					defer s.mu.Unlock()
					f.inFlight--
					if failed {
						f.lim.Allow()
					}
					if f.changed != nil {
						close(f.changed)
						f.changed = nil
					}
				})
			}, true
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		wait := f.changed
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// loginLimit is one address's failed-login budget.
type loginLimit struct {
	lim      *rate.Limiter
	inFlight int           // checks in progress, each holding a token
	changed  chan struct{} // closed when a check ends, for attempts waiting their turn
}

func hostOf(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}
