package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/netlimit"
	"github.com/mxircd/mxircd/ircd"
	"github.com/mxircd/mxircd/ircd/wsconn"
	"github.com/mxircd/mxircd/media"
	"github.com/mxircd/mxircd/metrics"
	"github.com/mxircd/mxircd/session"
	"github.com/mxircd/mxircd/store"
	mxtls "github.com/mxircd/mxircd/tls"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "mxircd-dev"

// defaultMOTD is shown when irc.motd names no file.
var defaultMOTD = []string{
	"Welcome to mxircd: your Matrix rooms are the channels of this network.",
	"JOIN #alias:server or !roomid:server to join a room; WHOIS a nick to see its Matrix ID.",
}

// gateway is one running mxircd: the store, the Matrix sessions and the
// IRC listeners, wired together.
type gateway struct {
	log       *slog.Logger
	cfg       Config
	store     *store.SQLStore
	metrics   *metrics.Metrics
	sessions  *session.Manager
	irc       *ircd.Server
	certs     *mxtls.CertReloader
	listeners []net.Listener
	// webSockets serve IRC over WebSocket (plaintext first); their
	// wsconn.Listeners are among listeners.
	webSockets []*http.Server
	wsAddrs    []net.Addr
	media      *http.Server
	mediaLn    net.Listener
	publicURL  string // the HTTP listener's, for media links and SSO
	debug      *http.Server
	debugLn    net.Listener
	serving    sync.WaitGroup
}

// startGateway opens everything and starts serving. On error nothing is
// left running.
func startGateway(ctx context.Context, cfg Config, log *slog.Logger) (_ *gateway, err error) {
	g := &gateway{log: log, cfg: cfg, metrics: metrics.New()}
	defer func() {
		if err != nil {
			g.closeAll()
		}
	}()
	motd, err := readMOTD(cfg.IRC.MOTD)
	if err != nil {
		return nil, err
	}
	g.store, err = store.Open(ctx, store.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN})
	if err != nil {
		return nil, err
	}
	var cryptoStore session.CryptoStoreOpener
	var pickleKey, outboxKey, passwordKey []byte
	// Auto-registered accounts' passwords are sealed with a key derived
	// from the pickle key too, with or without encryption.
	// Without autoregister.enabled, no account is deactivated.
	if cfg.Encryption.Enabled || cfg.AutoRegister.Enabled {
		if pickleKey, err = store.LoadOrCreatePickleKey(cfg.pickleKeyPath()); err != nil {
			return nil, fmt.Errorf("encryption.pickle_key_file: %w", err)
		}
	}
	if cfg.AutoRegister.Enabled {
		passwordKey = session.AutoRegisterKeyFrom(pickleKey)
	}
	if cfg.Encryption.Enabled {
		stores, err := g.store.OpenCryptoStores(ctx, pickleKey)
		if err != nil {
			return nil, err
		}
		cryptoStore = func(_ context.Context, user id.UserID, device id.DeviceID) (crypto.Store, error) {
			return stores.Open(user, device), nil
		}
		outboxKey = session.OutboxKeyFrom(pickleKey)
	}
	proxy, err := g.startMedia(ctx)
	if err != nil {
		return nil, err
	}
	var mediaLink func(id.UserID, id.ContentURI, string) string
	if proxy != nil {
		mediaLink = proxy.Link
	}
	g.sessions = session.NewManager(session.Config{
		Homeserver:      cfg.Matrix.Homeserver,
		ServerName:      cfg.Matrix.ServerName,
		DeviceName:      cfg.Matrix.DeviceName,
		SyncTimeout:     cfg.Matrix.SyncTimeout.Duration,
		ShortAliases:    cfg.Matrix.ShortAliases,
		KeepClientNick:  cfg.IRC.KeepClientNick,
		OpLevel:         cfg.Matrix.OpLevel,
		AcceptDMInvites: cfg.Matrix.AcceptDMInvites,
		Logger:          log,
		MediaLink:       mediaLink,
		// Homeserver latency and errors by endpoint, for /metrics.
		WrapTransport: g.metrics.Transport,

		AlwaysOn:           cfg.Bouncer.AlwaysOn,
		AwayWhenDetached:   cfg.Bouncer.AwayWhenDetached,
		ReplayLimit:        cfg.Bouncer.ReplayLimit,
		HistoryPerRoom:     cfg.Bouncer.HistoryPerRoom,
		RoomCreateBurst:    cfg.Matrix.RoomCreateBurst,
		RoomCreateInterval: cfg.Matrix.RoomCreateInterval.Duration,
		ListNewChannels:    cfg.Matrix.ListNewChannels,
		PasswordRecheck:    cfg.Matrix.PasswordRecheck.Duration,
		LazyMembers:        cfg.Matrix.LazyMembers,
		CryptoStore:        cryptoStore,
		OutboxKey:          outboxKey,
		EncryptNewDMs:      cfg.Encryption.EncryptNewDMs,
		SendToVerifiedOnly: cfg.Encryption.SendTo == "verified",
		ServiceNick:        cfg.IRC.ServiceNick,
		Guests: session.GuestConfig{
			Account:       cfg.Guests.Account,
			Password:      cfg.Guests.Password,
			HistoryOnJoin: cfg.Guests.HistoryOnJoin,
			MaxChannels:   cfg.Guests.MaxChannels,
		},
		AutoRegister: session.AutoRegisterConfig{
			SharedSecret:      cfg.AutoRegister.SharedSecret,
			RegistrationToken: cfg.AutoRegister.RegistrationToken,
			KeepFor:           cfg.AutoRegister.KeepFor.Duration,
			PasswordKey:       passwordKey,
		},
		SSOBaseURL: g.publicURL,
		SSOLinkTTL: cfg.HTTP.SSOLinkTTL.Duration,
	}, g.metrics.Store(g.store))
	g.serveHTTP(proxy)
	// Always-on sessions come back in the background: the homeserver may
	// be slow or down, and IRC clients can connect meanwhile.
	g.sessions.ResumeAll()
	g.irc = ircd.NewServer(ircd.Config{
		ServerName:  cfg.IRC.ServerName,
		Network:     cfg.IRC.Network,
		Version:     version,
		MOTD:        motd,
		MaxSendQ:    cfg.IRC.MaxSendQ,
		ServiceNick: cfg.IRC.ServiceNick,
		STS:         stsPolicy(cfg.IRC.TLS),
		// Only the IRC TLS listeners ask for client certificates.
		ClientCert: mxtls.ClientFingerprint,
		// 0 in the configuration refuses connections without a login.
		LoginPendingTimeout:  cmp.Or(cfg.IRC.LoginPendingTimeout.Duration, -1),
		Guests:               cfg.Guests.Enabled,
		GuestIdleTimeout:     cfg.Guests.IdleTimeout.Duration,
		AutoRegister:         cfg.AutoRegister.Enabled,
		AccountRegistration:  cfg.AutoRegister.AccountRegistration,
		RegistrationBurst:    cfg.AutoRegister.AccountRegistrationBurst,
		RegistrationInterval: cfg.AutoRegister.AccountRegistrationInterval.Duration,
		Logger:               log,
	}, backend{g.sessions, g.metrics})
	g.watch()
	if err := g.startDebug(); err != nil {
		return nil, err
	}

	// One count of open connections for all IRC listeners, plain, TLS
	// and WebSocket.
	exempt, _ := netlimit.ParsePrefixes(cfg.IRC.LimitExempt) // validated
	ircLimits := netlimit.Config{Max: cfg.IRC.MaxConnections, PerAddress: cfg.IRC.MaxConnectionsPerAddress, Exempt: exempt}
	ircCount := netlimit.NewCounter(ircLimits)
	for _, addr := range cfg.IRC.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("irc.listen: %w", err)
		}
		g.listeners = append(g.listeners, netlimit.ListenCounted(ln, ircCount, refuseIRC))
	}
	if len(cfg.IRC.TLS.Listen)+len(cfg.IRC.WebSocket.TLSListen) > 0 {
		g.certs, err = mxtls.NewCertReloader(cfg.IRC.TLS.Cert, cfg.IRC.TLS.Key)
		if err != nil {
			return nil, err
		}
	}
	for _, addr := range cfg.IRC.TLS.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("irc.tls.listen: %w", err)
		}
		// Counted before the handshake, so refusing costs no TLS
		// work; a refused TLS client is closed without words.
		g.listeners = append(g.listeners, tls.NewListener(netlimit.ListenCounted(ln, ircCount, nil), g.certs.ClientCertConfig()))
	}
	if err := g.startWebSockets(ircLimits, ircCount); err != nil {
		return nil, err
	}
	for _, ln := range g.listeners {
		log.Info("listening for IRC", "addr", ln.Addr().String())
		g.serve("IRC listener "+ln.Addr().String(), func() error { return g.irc.Serve(ln) })
	}
	return g, nil
}

// startWebSockets opens the IRC-over-WebSocket listeners. A WebSocket
// client is counted in the IRC caps by its own address (behind a trusted
// proxy, the forwarded one) once upgraded; before that its socket is
// counted with the same caps on its own (trusted proxies exempt), so idle
// HTTP connections cannot pile up either.
func (g *gateway) startWebSockets(limits netlimit.Config, ircCount *netlimit.Counter) error {
	cfg := g.cfg.IRC.WebSocket
	if len(cfg.Listen)+len(cfg.TLSListen) == 0 {
		return nil
	}
	proxies, _ := netlimit.ParsePrefixes(cfg.TrustedProxies) // validated
	wsCfg := wsconn.Config{Origins: cfg.Origins, TrustedProxies: proxies, Admit: ircCount.Take, Logger: g.log}
	// A trusted proxy's sockets carry many clients, each counted by its
	// forwarded address once upgraded.
	limits.Exempt = append(slices.Clone(limits.Exempt), proxies...)
	sockets := netlimit.NewCounter(limits)
	open := func(addr string, secure bool) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		var hl net.Listener = netlimit.ListenCounted(ln, sockets, refuseHTTP)
		if secure {
			hl = tls.NewListener(hl, g.certs.Config())
		}
		wl := wsconn.NewListener(ln.Addr(), wsCfg)
		// No read or write timeouts: they would end the upgraded
		// connections, which ircd times out itself.
		srv := &http.Server{
			Handler:           wl,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		g.webSockets = append(g.webSockets, srv)
		g.wsAddrs = append(g.wsAddrs, ln.Addr())
		g.listeners = append(g.listeners, wl)
		g.log.Info("listening for IRC over WebSocket", "addr", ln.Addr().String(), "tls", secure)
		g.serve("WebSocket listener "+ln.Addr().String(), func() error { return srv.Serve(hl) })
		return nil
	}
	for _, addr := range cfg.Listen {
		if err := open(addr, false); err != nil {
			return fmt.Errorf("irc.websocket.listen: %w", err)
		}
	}
	for _, addr := range cfg.TLSListen {
		if err := open(addr, true); err != nil {
			return fmt.Errorf("irc.websocket.tls_listen: %w", err)
		}
	}
	return nil
}

// stsPolicy gives each IRC connection its sts capability value: the TLS
// port on plaintext, the duration on TLS. WebSocket clients get none:
// browsers follow HSTS, and the port is not theirs.
func stsPolicy(cfg TLSConfig) func(net.Conn) string {
	duration, port, ok := cfg.stsPolicy()
	if !ok {
		return nil
	}
	return func(nc net.Conn) string {
		switch nc.(type) {
		case *tls.Conn:
			return "duration=" + strconv.FormatInt(int64(duration/time.Second), 10)
		case *wsconn.Conn:
			return ""
		}
		return "port=" + strconv.Itoa(port)
	}
}

func readMOTD(path string) ([]string, error) {
	if path == "" {
		return defaultMOTD, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("irc.motd: %w", err)
	}
	text := strings.TrimRight(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if text == "" {
		return nil, nil
	}
	return strings.Split(text, "\n"), nil
}

// startMedia opens the media link listener, if configured. The signing key
// is kept in the store, so links survive a restart and every gateway on
// one database signs alike.
func (g *gateway) startMedia(ctx context.Context) (*media.Proxy, error) {
	cfg := g.cfg.HTTP
	if cfg.Listen == "" {
		return nil, nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	stored, err := g.store.InitSetting(ctx, "media_link_key", hex.EncodeToString(fresh))
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(stored)
	if err != nil {
		return nil, fmt.Errorf("stored media link key: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://" + ln.Addr().String()
	}
	proxy, err := media.New(media.Config{PublicURL: publicURL, Key: key, TTL: cfg.LinkTTL.Duration, Logger: g.log},
		func(ctx context.Context, user id.UserID) (string, string, bool) {
			acct, err := g.store.Account(ctx, user)
			if err != nil || acct.AccessToken == "" {
				return "", "", false
			}
			return acct.Homeserver, acct.AccessToken, true
		})
	if err != nil {
		ln.Close()
		return nil, err
	}
	g.publicURL = publicURL
	// No write timeout: large files stream for as long as they take (the
	// proxy caps each download). An idle keep-alive connection is closed.
	// The handler comes in serveHTTP, once the sessions exist.
	g.media = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	exempt, _ := netlimit.ParsePrefixes(cfg.LimitExempt) // validated
	g.mediaLn = netlimit.Listen(ln, netlimit.Config{
		Max:        cfg.MaxConnections,
		PerAddress: cfg.MaxConnectionsPerAddress,
		Exempt:     exempt,
		Refuse:     refuseHTTP,
	})
	return proxy, nil
}

// serveHTTP starts serving the HTTP listener, if there is one: media links,
// SSO logins coming back from the homeserver, and /metrics if configured.
func (g *gateway) serveHTTP(proxy *media.Proxy) {
	if g.media == nil {
		return
	}
	mux := http.NewServeMux()
	if g.cfg.HTTP.Metrics {
		mux.Handle("/metrics", g.metrics.Handler(g.log))
	}
	if sso := g.sessions.SSOHandler(); sso != nil {
		prefix := ""
		if u, err := url.Parse(g.publicURL); err == nil {
			prefix = strings.TrimRight(u.Path, "/")
		}
		mux.Handle(prefix+session.SSOStartPath, sso)
		mux.Handle(prefix+session.SSOCallbackPath, sso)
	}
	mux.Handle("/", proxy)
	g.media.Handler = mux
	ln := g.mediaLn
	g.log.Info("serving media links", "addr", ln.Addr().String(), "public_url", g.publicURL)
	g.serve("media listener", func() error { return g.media.Serve(ln) })
}

// reload re-reads the TLS certificate, for SIGHUP. Open connections keep
// the certificate they were made with.
func (g *gateway) reload() error {
	if g.certs == nil {
		return nil
	}
	return g.certs.Reload()
}

// shutdown tells every client the server is going away, ends the Matrix
// sessions and closes the store.
func (g *gateway) shutdown(ctx context.Context) error {
	errIRC := g.irc.Shutdown(ctx, "Server shutting down")
	var errMedia error
	if g.media != nil {
		errMedia = g.media.Shutdown(ctx)
	}
	for _, srv := range g.webSockets {
		srv.Shutdown(ctx) // upgraded connections are ircd's, closed above
	}
	if g.debug != nil {
		g.debug.Close()
	}
	g.serving.Wait()
	errSess := g.sessions.Close(ctx)
	errStore := g.store.Close()
	return errors.Join(errIRC, errMedia, errSess, errStore)
}

func (g *gateway) closeAll() {
	for _, ln := range g.listeners {
		ln.Close()
	}
	for _, srv := range g.webSockets {
		srv.Close()
	}
	if g.media != nil {
		g.media.Close()
	}
	if g.debug != nil {
		g.debug.Close()
	}
	if g.store != nil {
		g.store.Close()
	}
}

// addrs lists where the gateway listens, plaintext first.
func (g *gateway) addrs() []net.Addr {
	out := make([]net.Addr, len(g.listeners))
	for i, ln := range g.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// backend adapts the session manager to what ircd asks of a login, keeping
// the two packages ignorant of each other.
type backend struct {
	mgr     *session.Manager
	metrics *metrics.Metrics
}

func (b backend) Login(ctx context.Context, req ircd.LoginRequest, c *ircd.Conn) (ircd.Handler, error) {
	var a *session.Attachment
	var err error
	if req.CertFP != "" {
		a, err = b.mgr.LoginCert(ctx, req.Account, req.CertFP, c)
	} else {
		a, err = b.mgr.Login(ctx, req.Account, req.Password, c)
	}
	if errors.Is(err, session.ErrInvalidCredentials) {
		b.metrics.LoginFailed(metrics.LoginInvalid)
		return nil, fmt.Errorf("%w: %w", ircd.ErrInvalidCredentials, err)
	}
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) { // not when the client left
			b.metrics.LoginFailed(metrics.LoginError)
		}
		return nil, err
	}
	return a, nil
}

// Lurk serves a connection without a login read-only from the guests'
// shared session.
func (b backend) Lurk(ctx context.Context, c *ircd.Conn) (ircd.LurkHandler, error) {
	a, err := b.mgr.Lurk(ctx, c)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// AutoRegister registers an account of its own for a connection without
// a login and attaches the connection to it.
func (b backend) AutoRegister(ctx context.Context, nick string, c *ircd.Conn) (ircd.Handler, string, error) {
	a, password, err := b.mgr.AutoRegister(ctx, nick, c)
	if err != nil {
		return nil, "", err
	}
	return a, password, nil
}

// RegisterAccount registers the account a client asked for with REGISTER
// and attaches the connection to it, telling ircd which refusals the
// client can act on.
func (b backend) RegisterAccount(ctx context.Context, account, password string, c *ircd.Conn) (ircd.Handler, error) {
	a, err := b.mgr.RegisterAccount(ctx, account, password, c)
	if err == nil {
		return a, nil
	}
	for _, r := range []struct {
		err  error
		code string
	}{
		{session.ErrAccountExists, ircd.RegisterAccountExists},
		{session.ErrBadAccountName, ircd.RegisterBadAccountName},
		{session.ErrWeakPassword, ircd.RegisterWeakPassword},
		{session.ErrUnacceptablePassword, ircd.RegisterUnacceptablePassword},
	} {
		if errors.Is(err, r.err) {
			return nil, &ircd.RegisterError{Code: r.code, Err: err}
		}
	}
	return nil, err
}

func (b backend) StartLogin(ctx context.Context, server string, c *ircd.Conn) (*ircd.BrowserLogin, error) {
	bl, wait, err := b.mgr.StartBrowserLogin(ctx, server, c.Nick(), c)
	if err != nil {
		return nil, err
	}
	return &ircd.BrowserLogin{Lines: bl.Lines, Expires: bl.Expires, Wait: func() (ircd.Handler, error) {
		a, err := wait()
		if err != nil {
			return nil, err
		}
		return a, nil
	}}, nil
}

func (b backend) LoginWays(ctx context.Context) (password, browser bool) {
	return b.mgr.LoginWays(ctx)
}

// Commands gives ircd the session's command table.
func (b backend) Commands() map[string]ircd.Command {
	cmds := map[string]ircd.Command{}
	for name, spec := range session.Commands() {
		cmds[name] = ircd.Command{MinParams: spec.MinParams}
	}
	return cmds
}

const shutdownTimeout = 20 * time.Second

// refuseIRC tells an IRC client over the connection caps why it is closed.
func refuseIRC(c net.Conn, reason string) {
	fmt.Fprintf(c, "ERROR :Closing link: %s; close some and try again later\r\n", reason)
}

// refuseHTTP answers a browser over the connection caps with a 503.
func refuseHTTP(c net.Conn, reason string) {
	body := "Too many connections: " + reason + ".\n"
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 10\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// serve runs a listener's accept loop on a goroutine of its own, which
// Close waits for. Its end is logged unless the listener was closed; a
// panic is logged with its stack and ends only that listener.
func (g *gateway) serve(what string, run func() error) {
	g.serving.Add(1)
	go func() {
		defer g.serving.Done()
		defer func() {
			if r := recover(); r != nil {
				g.log.Error("panic in a listener", "listener", what, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error(what+" stopped", "err", err)
		}
	}()
}
