package main

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testGateway runs the real gateway in-process against hs, with a store of
// the given driver, and stops it when the test ends.
func testGateway(t *testing.T, hs *testenv.Homeserver, driver string) *gateway {
	t.Helper()
	return startTestGateway(t, gatewayConfig(t, hs, driver, nil))
}

// gatewayConfig is a test gateway's configuration against hs with a store
// of the given driver, changed by change (if not nil) and validated.
func gatewayConfig(t *testing.T, hs *testenv.Homeserver, driver string, change func(*Config)) Config {
	t.Helper()
	cfg := defaultConfig()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.Matrix.Homeserver = hs.URL
	cfg.Matrix.ServerName = hs.ServerName
	cfg.Matrix.SyncTimeout = Duration{5 * time.Second}
	sc := storetest.Config(t, driver)
	cfg.Store = StoreConfig{Driver: sc.Driver, Path: sc.Path, DSN: sc.DSN}
	cfg.Encryption.PickleKeyFile = filepath.Join(t.TempDir(), "pickle.key")
	// Most tests name their client "alice" whatever the account's localpart;
	// TestOwnNick* run the default.
	cfg.IRC.KeepClientNick = true
	if change != nil {
		change(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startTestGateway(t *testing.T, cfg Config) *gateway {
	t.Helper()
	var out io.Writer = io.Discard
	if testing.Verbose() || os.Getenv("MXIRCD_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	g, err := startGateway(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("starting gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
	})
	return g
}

func (g *gateway) ircAddr() string { return g.addrs()[0].String() }

// forEachStore runs f once per store driver under test, each with a gateway
// of its own on the shared homeserver.
func forEachStore(t *testing.T, f func(t *testing.T, hs *testenv.Homeserver, g *gateway)) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			f(t, hs, testGateway(t, hs, driver))
		})
	}
}

// connect logs acct in over SASL with nick and waits for the end of the
// connect burst (the last 366, or the MOTD when there are no rooms is not
// distinguishable, so callers wait for what they need).
func connect(t *testing.T, g *gateway, nick string, acct *testenv.Account) *testenv.IRCClient {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	c.Register(t, nick, acct.UserID.String(), acct.Password)
	return c
}

func isCmd(command string, params ...string) func(*irc.Message) bool {
	return func(m *irc.Message) bool {
		if m.Command != command {
			return false
		}
		for i, p := range params {
			if m.Param(i) != p {
				return false
			}
		}
		return true
	}
}

// expectFrom waits for a line with command from nick whose last parameter
// contains text.
func expectFrom(t *testing.T, c *testenv.IRCClient, command, nick, text string) *irc.Message {
	t.Helper()
	return c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == command && m.Prefix != nil && m.Prefix.Name == nick && strings.Contains(m.Trailing(), text)
	}, command+" from "+nick+" containing "+text)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// waitNames asks for NAMES until nick is in the channel. Dendrite applies a
// join to /sync a moment after answering the join request, so a room's
// newest member can arrive just after the connect burst.
func waitNames(t *testing.T, c *testenv.IRCClient, channel, nick string) *irc.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.Send("NAMES %s", channel)
		names := c.ExpectMatch(t, isCmd(irc.RPL_NAMREPLY), "353")
		for _, n := range strings.Fields(names.Trailing()) {
			if n, _, _ = strings.Cut(strings.TrimLeft(n, "@+"), "!"); n == nick { // userhost-in-names adds !user@host
				return names
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared in NAMES %s: %s", nick, channel, names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// timeline is a joined room's timeline in a sync response; a room the
// response does not mention has none.
func timeline(resp *mautrix.RespSync, room id.RoomID) []*event.Event {
	if joined := resp.Rooms.Join[room]; joined != nil {
		return joined.Timeline.Events
	}
	return nil
}

// connectWithCaps logs acct in over SASL, also requesting caps, and waits
// for the welcome.
func connectWithCaps(t *testing.T, g *gateway, nick string, acct *testenv.Account, caps ...string) *testenv.IRCClient {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("CAP LS 302")
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :test", acct.Localpart)
	c.Send("CAP REQ :%s", strings.Join(append([]string{"sasl"}, caps...), " "))
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
	c.Send("AUTHENTICATE PLAIN")
	c.Expect(t, "AUTHENTICATE")
	c.Send("AUTHENTICATE %s", b64("\x00"+acct.UserID.String()+"\x00"+acct.Password))
	c.Expect(t, irc.RPL_SASLSUCCESS)
	c.Send("CAP END")
	c.Expect(t, irc.RPL_WELCOME)
	return c
}

// aliceMeetsBob is how most tests start: alice on IRC through a fresh
// gateway, bob on Matrix, both in one room that alice created, with bob in
// alice's view of it.
func aliceMeetsBob(t *testing.T, prefix string, caps ...string) (g *gateway, alice, bob *testenv.Account, room id.RoomID, channel string, c *testenv.IRCClient) {
	t.Helper()
	hs := testenv.SharedHomeserver(t)
	g = testGateway(t, hs, "sqlite")
	alice, bob, room, channel = twoInARoom(t, hs, prefix)
	c = connectWithCaps(t, g, "alice", alice, caps...)
	c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst") // NAMES may be off (draft/no-implicit-names)
	waitNames(t, c, channel, bob.Localpart)
	return g, alice, bob, room, channel, c
}
