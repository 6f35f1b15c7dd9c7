package main

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/mxircd/mxircd/ircd"
	"github.com/mxircd/mxircd/session"
)

// The shipped config.toml must say exactly what the defaults are, so that
// its comments can be trusted.
func TestShippedConfigIsTheDefault(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "config.toml")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config.toml differs from the defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

// The service nick is one setting (irc.service_nick) given to both
// halves; each has a default for when it is given none, and they agree.
func TestServiceNickDefaultsAgree(t *testing.T) {
	if i, s := ircd.DefaultConfig().ServiceNick, session.DefaultConfig().ServiceNick; i != s {
		t.Errorf("ircd's default service nick is %q, session's %q", i, s)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, toml, want string }{
		{"unknown key", "[irc]\nlisten = [\"127.0.0.1:1\"]\nlisen = []\n", "unknown keys: irc.lisen"},
		{"unknown section", "[ircd]\nx = 1\n", "unknown keys"},
		{"public plaintext", "[irc]\nlisten = [\"0.0.0.0:6667\"]\n", "allow_insecure_plaintext"},
		{"tls without cert", "[irc.tls]\nlisten = [\"127.0.0.1:6697\"]\n", "cert and key"},
		{"bad store", "[store]\ndriver = \"mysql\"\n", "store.driver"},
		{"postgres without dsn", "[store]\ndriver = \"postgres\"\n", "store.dsn"},
		{"bad homeserver", "[matrix]\nhomeserver = \"example.org\"\n", "matrix.homeserver"},
		{"bad duration", "[matrix]\nsync_timeout = \"soon\"\n", "sync_timeout"},
		{"bad level", "[log]\nlevel = \"loud\"\n", "log.level"},
		{"syntax", "[irc\n", "config.toml"},
		{"public plaintext websocket", "[irc.websocket]\nlisten = [\"0.0.0.0:8067\"]\n", "allow_insecure_plaintext"},
		{"wss without cert", "[irc.websocket]\ntls_listen = [\"127.0.0.1:8097\"]\n", "cert and key"},
		{"origin with path", "[irc.websocket]\norigins = [\"https://chat.example.org/app\"]\n", "irc.websocket.origins"},
		{"origin without scheme", "[irc.websocket]\norigins = [\"chat.example.org\"]\n", "irc.websocket.origins"},
		{"bad proxy", "[irc.websocket]\ntrusted_proxies = [\"proxy\"]\n", "irc.websocket.trusted_proxies"},
		{"sts without tls", "[irc.tls]\nsts_duration = \"720h\"\n", "set irc.tls.listen"},
		{"sts port alone", "[irc.tls]\nsts_port = 6697\n", "sts_duration"},
		{"sts bad duration", "[irc.tls]\nsts_duration = \"forever\"\n", "irc.tls.sts_duration"},
		{"sts negative", "[irc.tls]\nsts_duration = \"-1s\"\n", "irc.tls.sts_duration"},
		{"sts bad port", "[irc.tls]\nsts_port = 70000\n", "irc.tls.sts_port"},
		{"autoregister with guests", "[matrix]\nhomeserver = \"http://hs\"\n[guests]\nenabled = true\n[autoregister]\nenabled = true\n", "autoregister.enabled and guests.enabled"},
		{"autoregister keep_for negative", "[autoregister]\nkeep_for = \"-1h\"\n", "autoregister.keep_for"},
		{"autoregister keep_for bad", "[autoregister]\nkeep_for = \"a day\"\n", "keep_for"},
		{"autoregister two ways", "[matrix]\nhomeserver = \"http://hs\"\n[autoregister]\nenabled = true\nshared_secret = \"s\"\nregistration_token = \"t\"\n", "not both"},
		{"account registration without homeserver", "[autoregister]\naccount_registration = true\n", "autoregister.account_registration"},
		{"account registration burst", "[autoregister]\naccount_registration_burst = 0\n", "autoregister.account_registration_burst"},
		{"guests refused", "[irc]\nlogin_pending_timeout = \"0s\"\n[matrix]\nhomeserver = \"http://hs\"\n[guests]\nenabled = true\n", "guests.enabled"},
		{"guests without homeserver", "[guests]\nenabled = true\n", "matrix.homeserver"},
		{"guests account alone", "[guests]\naccount = \"@lurk:example.org\"\n", "guests.password"},
		{"guests idle", "[guests]\nidle_timeout = \"0s\"\n", "guests.idle_timeout"},
		{"guests channels", "[guests]\nmax_channels = 0\n", "guests.max_channels"},
		{"bad key policy", "[encryption]\nsend_to = \"trusted\"\n", "encryption.send_to"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	t.Run("public plaintext allowed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "config.toml")
		os.WriteFile(path, []byte("[irc]\nlisten = [\"0.0.0.0:6667\"]\nallow_insecure_plaintext = true\n"), 0o600)
		if _, err := loadConfig(path); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReadMOTD(t *testing.T) {
	if lines, err := readMOTD(""); err != nil || len(lines) == 0 {
		t.Fatalf("built-in MOTD: %v, %v", lines, err)
	}
	path := filepath.Join(t.TempDir(), "motd.txt")
	os.WriteFile(path, []byte("Welcome to FOSDEM\r\n\r\nBe excellent.\n\n"), 0o600)
	lines, err := readMOTD(path)
	if err != nil || !reflect.DeepEqual(lines, []string{"Welcome to FOSDEM", "", "Be excellent."}) {
		t.Fatalf("readMOTD = %q, %v", lines, err)
	}
	os.WriteFile(path, nil, 0o600)
	if lines, err := readMOTD(path); err != nil || lines != nil {
		t.Fatalf("empty MOTD file = %q, %v; want none (422)", lines, err)
	}
	if _, err := readMOTD(path + ".missing"); err == nil || !strings.Contains(err.Error(), "irc.motd") {
		t.Fatalf("missing MOTD file: %v", err)
	}
}
