package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mxircd/mxircd/internal/netlimit"
	"github.com/mxircd/mxircd/ircd"
	"github.com/mxircd/mxircd/session"
)

// Config is config.toml. The shipped config.toml documents every key with
// its default; keep the two in step.
type Config struct {
	IRC     IRCConfig     `toml:"irc"`
	Matrix  MatrixConfig  `toml:"matrix"`
	HTTP    HTTPConfig    `toml:"http"`
	Bouncer BouncerConfig `toml:"bouncer"`
	// Guests lets connections without a login read public rooms.
	Guests GuestsConfig `toml:"guests"`
	// AutoRegister gives connections without a login a Matrix account
	// of their own.
	AutoRegister AutoRegisterConfig `toml:"autoregister"`
	Store        StoreConfig        `toml:"store"`
	// Encryption is where end-to-end encryption keeps its secrets.
	Encryption EncryptionConfig `toml:"encryption"`
	Log        LogConfig        `toml:"log"`
	Debug      DebugConfig      `toml:"debug"`
}

// GuestsConfig is [guests]: anonymous lurkers, served from one shared
// Matrix session.
type GuestsConfig struct {
	Enabled       bool     `toml:"enabled"`
	Account       string   `toml:"account"`
	Password      string   `toml:"password"`
	IdleTimeout   Duration `toml:"idle_timeout"`
	HistoryOnJoin int      `toml:"history_on_join"`
	MaxChannels   int      `toml:"max_channels"`
}

// AutoRegisterConfig is [autoregister]: an account of its own, named
// after the nick, for each connection without a login; and, apart from
// that, the REGISTER command (account_registration*), which registers
// the same way.
type AutoRegisterConfig struct {
	Enabled           bool   `toml:"enabled"`
	SharedSecret      string `toml:"shared_secret"`
	RegistrationToken string `toml:"registration_token"`
	// KeepFor is how long an account is kept after its last client
	// leaves, then deactivated; 0 keeps accounts forever.
	KeepFor Duration `toml:"keep_for"`

	AccountRegistration         bool     `toml:"account_registration"`
	AccountRegistrationBurst    int      `toml:"account_registration_burst"`
	AccountRegistrationInterval Duration `toml:"account_registration_interval"`
}

func (cfg *Config) validateAutoRegister() error {
	a := cfg.AutoRegister
	if a.KeepFor.Duration < 0 {
		return fmt.Errorf("autoregister.keep_for %v: give how long an account is kept after its last client leaves, such as \"24h\", or \"0s\" to keep accounts forever", a.KeepFor.Duration)
	}
	if a.SharedSecret != "" && a.RegistrationToken != "" {
		return errors.New("autoregister.shared_secret and autoregister.registration_token: give one way to register, not both")
	}
	if a.AccountRegistrationBurst < 1 || a.AccountRegistrationInterval.Duration < time.Second {
		return fmt.Errorf("autoregister.account_registration_burst %d / account_registration_interval %s: at least 1 account, and at least 1s", a.AccountRegistrationBurst, a.AccountRegistrationInterval)
	}
	if a.AccountRegistration && cfg.Matrix.Homeserver == "" && cfg.Matrix.ServerName == "" {
		return errors.New("autoregister.account_registration: set matrix.homeserver (or matrix.server_name) for the accounts to be registered on")
	}
	if !a.Enabled {
		return nil
	}
	if cfg.Guests.Enabled {
		return errors.New("autoregister.enabled and guests.enabled: a connection without a login either gets an account of its own or reads as a guest; enable one of them")
	}
	if cfg.Matrix.Homeserver == "" && cfg.Matrix.ServerName == "" {
		return errors.New("autoregister.enabled: set matrix.homeserver (or matrix.server_name) for the accounts to be registered on")
	}
	return nil
}

// DebugConfig is an operator's window into a running gateway.
type DebugConfig struct {
	Listen string `toml:"listen"`
}

// BouncerConfig is what the gateway keeps for accounts while their IRC
// clients are away.
type BouncerConfig struct {
	AlwaysOn         bool `toml:"always_on"`
	AwayWhenDetached bool `toml:"away_when_detached"`
	ReplayLimit      int  `toml:"replay_limit"`
	HistoryPerRoom   int  `toml:"history_per_room"`
}

type HTTPConfig struct {
	Listen    string   `toml:"listen"`
	PublicURL string   `toml:"public_url"`
	LinkTTL   Duration `toml:"link_ttl"`
	// SSOLinkTTL is how long an SSO login link (LOGIN) works.
	SSOLinkTTL               Duration `toml:"sso_link_ttl"`
	IdleTimeout              Duration `toml:"idle_timeout"`
	MaxConnections           int      `toml:"max_connections"`
	MaxConnectionsPerAddress int      `toml:"max_connections_per_address"`
	LimitExempt              []string `toml:"limit_exempt"`
	// Metrics also serves /metrics on this listener (the debug listener
	// always does).
	Metrics bool `toml:"metrics"`
}

type IRCConfig struct {
	Listen                   []string        `toml:"listen"`
	AllowInsecurePlaintext   bool            `toml:"allow_insecure_plaintext"`
	ServerName               string          `toml:"server_name"`
	ServiceNick              string          `toml:"service_nick"`
	KeepClientNick           bool            `toml:"keep_client_nick"`
	Network                  string          `toml:"network"`
	MOTD                     string          `toml:"motd"`
	MaxSendQ                 int             `toml:"max_sendq"`
	MaxConnections           int             `toml:"max_connections"`
	MaxConnectionsPerAddress int             `toml:"max_connections_per_address"`
	LimitExempt              []string        `toml:"limit_exempt"`
	LoginPendingTimeout      Duration        `toml:"login_pending_timeout"`
	TLS                      TLSConfig       `toml:"tls"`
	WebSocket                WebSocketConfig `toml:"websocket"`
}

type TLSConfig struct {
	Listen []string `toml:"listen"`
	Cert   string   `toml:"cert"`
	Key    string   `toml:"key"`
	// STSDuration turns on IRCv3 Strict Transport Security ("" is off);
	// STSPort is where plaintext clients are sent, 0 for the first
	// listener's port.
	STSDuration string `toml:"sts_duration"`
	STSPort     int    `toml:"sts_port"`
}

// WebSocketConfig is IRC over WebSocket, for web clients.
type WebSocketConfig struct {
	Listen         []string `toml:"listen"`
	TLSListen      []string `toml:"tls_listen"`
	Origins        []string `toml:"origins"`
	TrustedProxies []string `toml:"trusted_proxies"`
}

// stsPolicy is the STS duration and port, ok false when STS is off.
// Validated by then.
func (c TLSConfig) stsPolicy() (duration time.Duration, port int, ok bool) {
	if c.STSDuration == "" || len(c.Listen) == 0 {
		return 0, 0, false
	}
	duration, _ = time.ParseDuration(c.STSDuration)
	port = c.STSPort
	if port == 0 {
		_, p, _ := net.SplitHostPort(c.Listen[0])
		port, _ = strconv.Atoi(p)
	}
	return duration, port, true
}

type MatrixConfig struct {
	Homeserver         string   `toml:"homeserver"`
	ServerName         string   `toml:"server_name"`
	DeviceName         string   `toml:"device_name"`
	ShortAliases       bool     `toml:"short_aliases"`
	OpLevel            int      `toml:"op_level"`
	AcceptDMInvites    string   `toml:"accept_dm_invites"`
	SyncTimeout        Duration `toml:"sync_timeout"`
	RoomCreateBurst    int      `toml:"room_create_burst"`
	RoomCreateInterval Duration `toml:"room_create_interval"`
	ListNewChannels    bool     `toml:"list_new_channels"`
	PasswordRecheck    Duration `toml:"password_recheck"`
	LazyMembers        bool     `toml:"lazy_members"`
}

type StoreConfig struct {
	Driver string `toml:"driver"`
	Path   string `toml:"path"`
	DSN    string `toml:"dsn"`
}

type EncryptionConfig struct {
	Enabled       bool   `toml:"enabled"`
	EncryptNewDMs bool   `toml:"encrypt_new_dms"`
	SendTo        string `toml:"send_to"`
	PickleKeyFile string `toml:"pickle_key_file"`
}

// pickleKeyPath is the pickle key file, by default beside the SQLite file.
func (c Config) pickleKeyPath() string {
	if c.Encryption.PickleKeyFile != "" {
		return c.Encryption.PickleKeyFile
	}
	return filepath.Join(filepath.Dir(c.Store.Path), "pickle.key")
}

type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Duration reads "30s"-style TOML strings.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

// defaultConfig is what mxircd runs with when config.toml says nothing.
// What ircd and session default themselves comes from them.
func defaultConfig() Config {
	irc, matrix := ircd.DefaultConfig(), session.DefaultConfig()
	return Config{
		IRC: IRCConfig{
			Listen:      []string{"127.0.0.1:6667"},
			ServerName:  irc.ServerName,
			ServiceNick: irc.ServiceNick,
			Network:     irc.Network,
			MaxSendQ:    irc.MaxSendQ,
			// Beyond this the file descriptors of a default systemd
			// unit (65536) run out.
			MaxConnections:           50000,
			MaxConnectionsPerAddress: 16,
			LimitExempt:              []string{"127.0.0.0/8", "::1"},
			LoginPendingTimeout:      Duration{irc.LoginPendingTimeout},
			TLS:                      TLSConfig{Listen: []string{}},
			WebSocket: WebSocketConfig{
				Listen: []string{}, TLSListen: []string{},
				Origins: []string{}, TrustedProxies: []string{},
			},
		},
		Matrix: MatrixConfig{
			DeviceName:         matrix.DeviceName,
			OpLevel:            matrix.OpLevel,
			AcceptDMInvites:    matrix.AcceptDMInvites,
			SyncTimeout:        Duration{matrix.SyncTimeout},
			RoomCreateBurst:    matrix.RoomCreateBurst,
			RoomCreateInterval: Duration{matrix.RoomCreateInterval},
			PasswordRecheck:    Duration{matrix.PasswordRecheck},
			LazyMembers:        matrix.LazyMembers,
		},
		HTTP: HTTPConfig{
			LinkTTL:                  Duration{24 * time.Hour},
			SSOLinkTTL:               Duration{matrix.SSOLinkTTL},
			IdleTimeout:              Duration{time.Minute},
			MaxConnections:           1024,
			MaxConnectionsPerAddress: 32,
			LimitExempt:              []string{"127.0.0.0/8", "::1"},
		},
		Bouncer: BouncerConfig{
			AlwaysOn:         matrix.AlwaysOn,
			AwayWhenDetached: matrix.AwayWhenDetached,
			ReplayLimit:      matrix.ReplayLimit,
			HistoryPerRoom:   matrix.HistoryPerRoom,
		},
		Guests: GuestsConfig{
			IdleTimeout:   Duration{irc.GuestIdleTimeout},
			HistoryOnJoin: matrix.Guests.HistoryOnJoin,
			MaxChannels:   matrix.Guests.MaxChannels,
		},
		AutoRegister: AutoRegisterConfig{
			KeepFor:                     Duration{session.DefaultAutoRegisterKeepFor},
			AccountRegistrationBurst:    irc.RegistrationBurst,
			AccountRegistrationInterval: Duration{irc.RegistrationInterval},
		},
		Store:      StoreConfig{Driver: "sqlite", Path: "data/mxircd.db"},
		Encryption: EncryptionConfig{Enabled: true, EncryptNewDMs: matrix.EncryptNewDMs, SendTo: "all"},
		Log:        LogConfig{Level: "info", Format: "text"},
	}
}

func (cfg *Config) validateGuests() error {
	g := cfg.Guests
	if g.IdleTimeout.Duration < time.Second {
		return fmt.Errorf("guests.idle_timeout %s: must be at least 1s", g.IdleTimeout)
	}
	if g.HistoryOnJoin < 0 || g.HistoryOnJoin > 1000 {
		return fmt.Errorf("guests.history_on_join %d: give 0 to 1000 messages", g.HistoryOnJoin)
	}
	if g.MaxChannels < 1 {
		return fmt.Errorf("guests.max_channels %d: must be at least 1", g.MaxChannels)
	}
	if (g.Account == "") != (g.Password == "") {
		return errors.New("guests.account and guests.password go together: give both, or neither to register a guest account")
	}
	if !g.Enabled {
		return nil
	}
	if cfg.IRC.LoginPendingTimeout.Duration == 0 {
		return errors.New("guests.enabled: connections without a login are refused (irc.login_pending_timeout = \"0s\"); give it a duration, as guests are such connections")
	}
	if g.Account == "" && cfg.Matrix.Homeserver == "" && cfg.Matrix.ServerName == "" {
		return errors.New("guests.enabled: set matrix.homeserver (or matrix.server_name) for the guest account, or name an account in guests.account")
	}
	return nil
}

// loadConfig reads path over the defaults. Unknown keys are an error, so a
// typo never silently leaves a default in place.
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("%s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	if err := cfg.validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func (cfg *Config) validate() error {
	if n := cfg.IRC.ServiceNick; n == "" || strings.ContainsAny(n, " ,*?!@:#&\r\n\x00") {
		return fmt.Errorf("irc.service_nick %q: give a nick (no spaces, no #, !, @, :, commas or wildcards)", n)
	}
	if len(cfg.IRC.Listen)+len(cfg.IRC.TLS.Listen)+len(cfg.IRC.WebSocket.Listen)+len(cfg.IRC.WebSocket.TLSListen) == 0 {
		return errors.New("irc: no listeners: set irc.listen, irc.tls.listen or irc.websocket.listen")
	}
	for _, addr := range cfg.IRC.Listen {
		loopback, err := isLoopback(addr)
		if err != nil {
			return fmt.Errorf("irc.listen %q: %w", addr, err)
		}
		if !loopback && !cfg.IRC.AllowInsecurePlaintext {
			return fmt.Errorf("irc.listen %q: plaintext IRC on a non-loopback address sends Matrix passwords in the clear; "+
				"use irc.tls.listen, or set irc.allow_insecure_plaintext = true", addr)
		}
	}
	if len(cfg.IRC.TLS.Listen)+len(cfg.IRC.WebSocket.TLSListen) > 0 && (cfg.IRC.TLS.Cert == "" || cfg.IRC.TLS.Key == "") {
		return errors.New("irc.tls: TLS listeners (irc.tls.listen, irc.websocket.tls_listen) need both cert and key")
	}
	if err := cfg.IRC.validateSTS(); err != nil {
		return err
	}
	if err := cfg.IRC.validateWebSocket(); err != nil {
		return err
	}
	if s := cfg.Encryption.SendTo; s != "all" && s != "verified" {
		return fmt.Errorf("encryption.send_to %q: give \"all\" (every device of the room's members, as Element does) or \"verified\" (only devices the account has verified)", s)
	}
	if cfg.IRC.ServerName == "" || strings.ContainsAny(cfg.IRC.ServerName, " :!@,*?") {
		return fmt.Errorf("irc.server_name %q: must be a non-empty name without spaces or :!@,*?", cfg.IRC.ServerName)
	}
	if cfg.IRC.Network == "" || strings.ContainsAny(cfg.IRC.Network, " \x00") {
		return fmt.Errorf("irc.network %q: must be a non-empty word", cfg.IRC.Network)
	}
	if cfg.IRC.LoginPendingTimeout.Duration < 0 {
		return fmt.Errorf("irc.login_pending_timeout %v: give a duration such as \"5m\", or \"0s\" to refuse connections without a login", cfg.IRC.LoginPendingTimeout.Duration)
	}
	if cfg.IRC.MaxSendQ < 64<<10 {
		return fmt.Errorf("irc.max_sendq %d: must be at least 65536 bytes", cfg.IRC.MaxSendQ)
	}
	if cfg.IRC.MaxConnections < 0 || cfg.IRC.MaxConnectionsPerAddress < 0 {
		return errors.New("irc.max_connections and irc.max_connections_per_address must not be negative (0: no cap)")
	}
	if _, err := netlimit.ParsePrefixes(cfg.IRC.LimitExempt); err != nil {
		return fmt.Errorf("irc.limit_exempt: %w", err)
	}
	if hs := cfg.Matrix.Homeserver; hs != "" {
		u, err := url.Parse(hs)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("matrix.homeserver %q: must be an http(s) URL", hs)
		}
	}
	switch cfg.Matrix.AcceptDMInvites {
	case session.AcceptDMInvitesKnown, session.AcceptDMInvitesAll, session.AcceptDMInvitesNone:
	default:
		return fmt.Errorf("matrix.accept_dm_invites %q: must be \"known\", \"all\" or \"none\"", cfg.Matrix.AcceptDMInvites)
	}
	if cfg.Matrix.OpLevel < 1 {
		return fmt.Errorf("matrix.op_level %d: must be at least 1", cfg.Matrix.OpLevel)
	}
	if cfg.Matrix.RoomCreateBurst < 1 || cfg.Matrix.RoomCreateInterval.Duration < time.Second {
		return fmt.Errorf("matrix.room_create_burst %d / room_create_interval %s: at least 1 room, and at least 1s", cfg.Matrix.RoomCreateBurst, cfg.Matrix.RoomCreateInterval)
	}
	if cfg.Matrix.PasswordRecheck.Duration < time.Second {
		return fmt.Errorf("matrix.password_recheck %s: must be at least 1s", cfg.Matrix.PasswordRecheck)
	}
	if cfg.Matrix.SyncTimeout.Duration < time.Second {
		return fmt.Errorf("matrix.sync_timeout %s: must be at least 1s", cfg.Matrix.SyncTimeout)
	}
	if cfg.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(cfg.HTTP.Listen); err != nil {
			return fmt.Errorf("http.listen %q: %w", cfg.HTTP.Listen, err)
		}
	}
	if cfg.HTTP.Metrics && cfg.HTTP.Listen == "" {
		return errors.New("http.metrics: needs http.listen; or leave it off and scrape /metrics on debug.listen")
	}
	if pu := cfg.HTTP.PublicURL; pu != "" {
		u, err := url.Parse(pu)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("http.public_url %q: must be an http(s) URL without query", pu)
		}
	}
	if cfg.HTTP.LinkTTL.Duration < time.Minute {
		return fmt.Errorf("http.link_ttl %s: must be at least 1m", cfg.HTTP.LinkTTL)
	}
	if cfg.HTTP.SSOLinkTTL.Duration < time.Second {
		return fmt.Errorf("http.sso_link_ttl %s: must be at least 1s", cfg.HTTP.SSOLinkTTL)
	}
	if cfg.HTTP.IdleTimeout.Duration < time.Second {
		return fmt.Errorf("http.idle_timeout %s: must be at least 1s", cfg.HTTP.IdleTimeout)
	}
	if cfg.HTTP.MaxConnections < 0 || cfg.HTTP.MaxConnectionsPerAddress < 0 {
		return errors.New("http.max_connections and http.max_connections_per_address must not be negative (0: no cap)")
	}
	if _, err := netlimit.ParsePrefixes(cfg.HTTP.LimitExempt); err != nil {
		return fmt.Errorf("http.limit_exempt: %w", err)
	}
	if cfg.Bouncer.ReplayLimit < 0 {
		return fmt.Errorf("bouncer.replay_limit %d: must not be negative", cfg.Bouncer.ReplayLimit)
	}
	if cfg.Bouncer.HistoryPerRoom < 100 {
		return fmt.Errorf("bouncer.history_per_room %d: must be at least 100", cfg.Bouncer.HistoryPerRoom)
	}
	if err := cfg.validateAutoRegister(); err != nil {
		return err
	}
	if err := cfg.validateGuests(); err != nil {
		return err
	}
	switch cfg.Store.Driver {
	case "sqlite":
		if cfg.Store.Path == "" {
			return errors.New("store.path: required for the sqlite driver")
		}
	case "postgres":
		if cfg.Store.DSN == "" {
			return errors.New("store.dsn: required for the postgres driver")
		}
	default:
		return fmt.Errorf("store.driver %q: must be \"sqlite\" or \"postgres\"", cfg.Store.Driver)
	}
	if cfg.Debug.Listen != "" {
		loopback, err := isLoopback(cfg.Debug.Listen)
		if err != nil {
			return fmt.Errorf("debug.listen %q: %w", cfg.Debug.Listen, err)
		}
		if !loopback {
			return fmt.Errorf("debug.listen %q: must be a loopback address; profiles show what users do", cfg.Debug.Listen)
		}
	}
	switch cfg.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q: must be debug, info, warn or error", cfg.Log.Level)
	}
	switch cfg.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format %q: must be text or json", cfg.Log.Format)
	}
	return nil
}

func (c *IRCConfig) validateSTS() error {
	t := c.TLS
	if t.STSPort < 0 || t.STSPort > 65535 {
		return fmt.Errorf("irc.tls.sts_port %d: must be a port number (0: the port of the first irc.tls.listen)", t.STSPort)
	}
	if t.STSDuration == "" {
		if t.STSPort != 0 {
			return errors.New("irc.tls.sts_port is set but STS is off: set irc.tls.sts_duration too")
		}
		return nil
	}
	d, err := time.ParseDuration(t.STSDuration)
	if err != nil || d < 0 || d%time.Second != 0 {
		return fmt.Errorf("irc.tls.sts_duration %q: must be whole seconds such as \"0s\", \"720h\" (or \"\" for no STS)", t.STSDuration)
	}
	if len(t.Listen) == 0 {
		return errors.New("irc.tls.sts_duration: STS sends plaintext clients to a TLS listener; set irc.tls.listen")
	}
	if t.STSPort == 0 {
		if _, p, err := net.SplitHostPort(t.Listen[0]); err != nil || p == "0" {
			return fmt.Errorf("irc.tls.sts_port: give the port clients reach TLS at (irc.tls.listen %q has none)", t.Listen[0])
		}
	}
	return nil
}

func (c *IRCConfig) validateWebSocket() error {
	ws := c.WebSocket
	for _, addr := range ws.Listen {
		loopback, err := isLoopback(addr)
		if err != nil {
			return fmt.Errorf("irc.websocket.listen %q: %w", addr, err)
		}
		if !loopback && !c.AllowInsecurePlaintext {
			return fmt.Errorf("irc.websocket.listen %q: plaintext WebSocket on a non-loopback address sends Matrix passwords in the clear; "+
				"use irc.websocket.tls_listen (or a TLS proxy on this machine), or set irc.allow_insecure_plaintext = true", addr)
		}
	}
	for _, addr := range ws.TLSListen {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("irc.websocket.tls_listen %q: %w", addr, err)
		}
	}
	for _, o := range ws.Origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return fmt.Errorf("irc.websocket.origins %q: give a web page's origin, scheme://host[:port] such as \"https://chat.example.org\", or \"*\"", o)
		}
	}
	if _, err := netlimit.ParsePrefixes(ws.TrustedProxies); err != nil {
		return fmt.Errorf("irc.websocket.trusted_proxies: %w", err)
	}
	return nil
}

func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
