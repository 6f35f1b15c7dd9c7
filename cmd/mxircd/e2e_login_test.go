package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/oauthstandin"
	"github.com/mxircd/mxircd/store/storetest"
)

// Logging in in a web browser (LOGIN to the service): the OAuth 2.0 device
// grant and SSO, through the stand-in in front of the real Dendrite
// (internal/testenv/oauthstandin), which mints real Dendrite tokens.

// standinGateway is a restartable gateway whose homeserver is a stand-in
// with opts in front of the shared Dendrite.
func standinGateway(t *testing.T, driver string, opts oauthstandin.Options, mutate func(*Config)) (*testenv.Homeserver, *oauthstandin.Server, *bouncer) {
	t.Helper()
	hs := testenv.SharedHomeserver(t)
	si := oauthstandin.Start(t, hs, opts)
	b := startBouncer(t, bouncerConfig(t, hs, driver, func(cfg *Config) {
		cfg.Matrix.Homeserver = si.URL
		if mutate != nil {
			mutate(cfg)
		}
	}))
	return hs, si, b
}

// dialNoLogin connects without credentials and waits for the welcome.
func dialNoLogin(t *testing.T, addr, nick string) *testenv.IRCClient {
	t.Helper()
	c := testenv.DialIRC(t, addr)
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :no login", nick)
	c.Expect(t, irc.RPL_WELCOME)
	serviceSays(t, c, "this connection closes in") // the end of the greeting
	return c
}

var userCodeRE = regexp.MustCompile(`code ([A-Z]{4}-[A-Z]{4})\.`)

// startDeviceLogin sends LOGIN (with arg, if any) and returns the user code
// the service shows.
func startDeviceLogin(t *testing.T, c *testenv.IRCClient, arg string) string {
	t.Helper()
	c.Send("PRIVMSG mxircd :LOGIN %s", arg)
	m := serviceSays(t, c, "To log in, open ")
	code := userCodeRE.FindStringSubmatch(m.Trailing())
	if code == nil || !strings.Contains(m.Trailing(), "user_code="+code[1]) {
		t.Fatalf("LOGIN said %q, want the verification URL with the user code", m.Trailing())
	}
	serviceSays(t, c, "The code works until")
	return code[1]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The device grant from IRC: the greeting of a homeserver without
// password login says LOGIN first; a declined login leaves the connection
// pending; QUIT stops the polling; slow_down is honoured; an approved
// login turns the same connection into a session in its rooms; nothing
// typed to the service reaches Matrix; after a restart, the stored refresh
// token renews an access token that expired meanwhile, and the app
// password set after LOGIN logs in.
func TestLoginDeviceGrant(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs, si, b := standinGateway(t, driver, oauthstandin.Options{NoPassword: true}, nil)
			alice, bob, room, channel := twoInARoom(t, hs, "devlogin")

			c := testenv.DialIRC(t, b.addr())
			c.Send("NICK alice")
			c.Send("USER alice 0 * :no login")
			c.Expect(t, irc.RPL_WELCOME)
			serviceSays(t, c, "not logged in to Matrix yet")
			if first := c.ExpectMatch(t, isCmd("NOTICE"), "the greeting's first way in"); !strings.Contains(first.Trailing(), "LOGIN") {
				t.Errorf("the greeting for a homeserver without password login starts with %q, want LOGIN", first.Trailing())
			}

			c.Send("PRIVMSG mxircd :LOGIN @someone:elsewhere.example")
			serviceSays(t, c, "Not logged in: this gateway logs in to accounts on "+hs.ServerName+" only")
			code := startDeviceLogin(t, c, "")
			if err := si.Deny(code); err != nil {
				t.Fatal(err)
			}
			serviceSays(t, c, "Not logged in: the login was declined")
			c.Send("JOIN %s", channel)
			c.Expect(t, irc.ERR_NOTREGISTERED)

			// QUIT while the login waits stops its polling.
			quitter := dialNoLogin(t, b.addr(), "quitter")
			quitCode := startDeviceLogin(t, quitter, "")
			waitUntil(t, "the gateway to poll", func() bool { return si.Polls(quitCode) > 0 })
			quitter.Send("QUIT :bye")
			quitter.ExpectClosed(t)
			waitUntil(t, "the login to stop waiting", func() bool { return b.g.sessions.BrowserLoginsWaiting() == 0 })
			polls := si.Polls(quitCode)
			time.Sleep(2500 * time.Millisecond) // the stand-in's interval is 1 s
			if n := si.Polls(quitCode); n != polls {
				t.Errorf("the gateway polled %d more times after the connection quit", n-polls)
			}

			code = startDeviceLogin(t, c, alice.UserID.String())
			if err := si.SlowDownNext(code); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "slow_down", func() bool { return si.Answered("slow_down") > 0 })
			if err := si.Approve(ctxFor(t), code, alice); err != nil {
				t.Fatal(err)
			}
			serviceSays(t, c, "You are now logged in as "+alice.UserID.String())
			serviceSays(t, c, "PASSWORD SET")
			c.Expect(t, irc.RPL_LOGGEDIN)
			c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst after LOGIN")
			waitNames(t, c, channel, bob.Localpart)
			if n := si.Answered("slow_down"); n != 1 {
				t.Errorf("the stand-in answered slow_down %d times: the gateway polled sooner than slow_down allows", n)
			}
			c.Send("PRIVMSG %s :hello after LOGIN", channel)
			bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
				return ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "hello after LOGIN"
			})
			c.Send("PRIVMSG mxircd :LOGIN")
			serviceSays(t, c, "You are logged in already")
			for _, raw := range roomRaw(t, bob, room) {
				if strings.Contains(raw, `"body":"LOGIN`) || strings.Contains(raw, code) {
					t.Errorf("a line to the service reached Matrix: %s", raw)
				}
			}

			stored, err := b.g.store.Account(ctxFor(t), alice.UserID)
			if err != nil {
				t.Fatal(err)
			}

			// An approval as an account whose device here is another is
			// undone, and the user told which account to name.
			other := dialNoLogin(t, b.addr(), "zed")
			otherCode := startDeviceLogin(t, other, "")
			if err := si.Approve(ctxFor(t), otherCode, alice); err != nil {
				t.Fatal(err)
			}
			serviceSays(t, other, "Not logged in: you approved the login as "+alice.UserID.String()+", whose device on this gateway is "+stored.DeviceID)
			if devices := gatewayDevices(t, alice); len(devices) != 1 {
				t.Errorf("devices of the gateway after an undone login: %v, want the first one only", devices)
			}

			// A second LOGIN while the session runs: the session takes
			// the new grant, and renews its token through it.
			second := dialNoLogin(t, b.addr(), "alice2")
			secondCode := startDeviceLogin(t, second, alice.UserID.String())
			if err := si.Approve(ctxFor(t), secondCode, alice); err != nil {
				t.Fatal(err)
			}
			serviceSays(t, second, "You are now logged in as "+alice.UserID.String())
			second.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst after the second LOGIN")
			before, err := b.g.store.Account(ctxFor(t), alice.UserID)
			if err != nil {
				t.Fatal(err)
			}
			if err := si.ExpireAccessToken(ctxFor(t), alice.UserID, stored.DeviceID); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the session to renew its token through the new grant", func() bool {
				now, err := b.g.store.Account(ctxFor(t), alice.UserID)
				return err == nil && now.AccessToken != "" && now.AccessToken != before.AccessToken
			})
			c.Send("PRIVMSG %s :hello after the second LOGIN", channel)
			bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
				return ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "hello after the second LOGIN"
			})

			// Next time: the app password, and the stored refresh token.
			c.Send("PRIVMSG mxircd :PASSWORD SET app-password-devlogin")
			serviceSays(t, c, "Your app password is set")
			acct, err := b.g.store.Account(ctxFor(t), alice.UserID)
			if err != nil {
				t.Fatal(err)
			}
			b.stop(t)
			if err := si.ExpireAccessToken(ctxFor(t), alice.UserID, acct.DeviceID); err != nil {
				t.Fatal(err)
			}
			b.start(t)
			waitUntil(t, "the resumed session to renew its token", func() bool {
				now, err := b.g.store.Account(ctxFor(t), alice.UserID)
				return err == nil && now.AccessToken != "" && now.AccessToken != acct.AccessToken
			})
			c2 := connect(t, b.g, "alice", withPassword(alice, "app-password-devlogin"))
			c2.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst after the restart")
			c2.Send("PRIVMSG %s :hello after the restart", channel)
			bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
				return ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "hello after the restart"
			})
			if devices := gatewayDevices(t, alice); len(devices) != 1 || devices[0] != id.DeviceID(acct.DeviceID) {
				t.Errorf("devices of the gateway %v, want the one LOGIN made (%s)", devices, acct.DeviceID)
			}

			// With no session running, an app password login renews an
			// access token that expired meanwhile through the grant.
			alwaysOff(t, c2)
			c2.Send("QUIT")
			c2.ExpectClosed(t)
			waitNoSession(t, b.g)
			if err := si.ExpireAccessToken(ctxFor(t), alice.UserID, acct.DeviceID); err != nil {
				t.Fatal(err)
			}
			c3 := connect(t, b.g, "alice", withPassword(alice, "app-password-devlogin"))
			c3.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst with a renewed token")
		})
	}
}

// A code that expires before it is approved ends the login in one line;
// the connection stays login-pending.
func TestLoginDeviceGrantExpires(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			_, si, b := standinGateway(t, driver, oauthstandin.Options{CodeLifetime: 2 * time.Second}, nil)
			c := dialNoLogin(t, b.addr(), "late")
			startDeviceLogin(t, c, "")
			serviceSays(t, c, "Not logged in: the code expired before the login was approved")
			if si.Answered("expired_token") == 0 {
				t.Error("the gateway gave up before the login service said expired_token")
			}
			c.Send("JOIN #anything")
			c.Expect(t, irc.ERR_NOTREGISTERED)
			if n := b.g.sessions.BrowserLoginsWaiting(); n != 0 {
				t.Errorf("%d browser logins still wait", n)
			}
		})
	}
}

// ssoLinkRE finds the link the service gives for an SSO login.
var ssoLinkRE = regexp.MustCompile(`open (\S+) in your web browser`)

func startSSOLogin(t *testing.T, c *testenv.IRCClient) (link, state string) {
	t.Helper()
	c.Send("PRIVMSG mxircd :LOGIN")
	m := serviceSays(t, c, "To log in, open ")
	match := ssoLinkRE.FindStringSubmatch(m.Trailing())
	if match == nil {
		t.Fatalf("LOGIN said %q, want a link", m.Trailing())
	}
	u, err := url.Parse(match[1])
	if err != nil {
		t.Fatal(err)
	}
	state = u.Query().Get("state")
	if len(state) < 40 {
		t.Fatalf("the link's state %q is too short to be unguessable", state)
	}
	serviceSays(t, c, "The link works once")
	return match[1], state
}

// get fetches u, following redirects, and returns the status and body.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// SSO for a homeserver without OAuth 2.0: the link goes through the
// gateway's HTTP listener to the homeserver and back with a login token,
// which logs the waiting connection in; a callback with a wrong state, or
// a state used once already, is refused and its login token never used;
// a link that expires ends the login in one line.
func TestLoginSSO(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			withHTTP := func(ttl time.Duration) func(*Config) {
				return func(cfg *Config) {
					cfg.HTTP.Listen = "127.0.0.1:0"
					cfg.HTTP.SSOLinkTTL = Duration{ttl}
				}
			}
			hs, si, b := standinGateway(t, driver, oauthstandin.Options{NoOAuth: true, SSO: true}, withHTTP(time.Minute))
			alice, bob, room, channel := twoInARoom(t, hs, "ssologin")
			base := b.g.publicURL

			c := testenv.DialIRC(t, b.addr())
			c.Send("NICK alice")
			c.Send("USER alice 0 * :no login")
			c.Expect(t, irc.RPL_WELCOME)
			serviceSays(t, c, "IDENTIFY <Matrix ID> <password>")
			serviceSays(t, c, "LOGIN")
			link, state := startSSOLogin(t, c)

			token := si.LoginToken(alice)
			for _, u := range []string{
				base + "/login/sso/callback?state=wrong-state&loginToken=" + token,
				base + "/login/sso/start?state=wrong-state",
			} {
				if status, body := get(t, u); status != http.StatusBadRequest || !strings.Contains(body, "not known") {
					t.Errorf("GET %s: %d %q, want 400 saying the link is not known", u, status, body)
				}
			}
			if si.LoginTokenUsed(token) {
				t.Error("a callback with a wrong state used its login token")
			}

			si.SignInSSO(alice)
			status, body := get(t, link)
			if status != http.StatusOK || !strings.Contains(body, "You are logged in as "+alice.UserID.String()) {
				t.Fatalf("the SSO round trip ended with %d %q", status, body)
			}
			serviceSays(t, c, "You are now logged in as "+alice.UserID.String())
			c.Expect(t, irc.RPL_LOGGEDIN)
			c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst after SSO")
			waitNames(t, c, channel, bob.Localpart)
			c.Send("PRIVMSG %s :hello after SSO", channel)
			bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
				return ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "hello after SSO"
			})

			again := si.LoginToken(alice)
			reuse := base + "/login/sso/callback?state=" + url.QueryEscape(state) + "&loginToken=" + again
			if status, body := get(t, reuse); status != http.StatusBadRequest || !strings.Contains(body, "not known") {
				t.Errorf("a state used once already: %d %q, want 400", status, body)
			}
			if si.LoginTokenUsed(again) {
				t.Error("a callback with a used state used its login token")
			}

			// A link that expires.
			_, si2, b2 := standinGateway(t, driver, oauthstandin.Options{NoOAuth: true, SSO: true}, withHTTP(time.Second))
			late := dialNoLogin(t, b2.addr(), "late")
			_, lateState := startSSOLogin(t, late)
			serviceSays(t, late, "Not logged in: the link expired before you signed in")
			lateToken := si2.LoginToken(alice)
			if status, _ := get(t, b2.g.publicURL+"/login/sso/callback?state="+url.QueryEscape(lateState)+"&loginToken="+lateToken); status != http.StatusBadRequest {
				t.Errorf("an expired state: %d, want 400", status)
			}
			if si2.LoginTokenUsed(lateToken) {
				t.Error("a callback with an expired state used its login token")
			}
			late.Send("JOIN %s", channel)
			late.Expect(t, irc.ERR_NOTREGISTERED)
		})
	}
}

// A homeserver with neither OAuth 2.0 nor SSO (Dendrite as it is) gets no
// LOGIN in the greeting and a clear line for LOGIN; one with SSO, when the
// gateway has no HTTP listener, says what is missing.
func TestLoginWithoutBrowserLogin(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		c := testenv.DialIRC(t, g.ircAddr())
		c.Send("NICK plain")
		c.Send("USER plain 0 * :no login")
		c.Expect(t, irc.RPL_WELCOME)
		greeting := []string{serviceSays(t, c, "not logged in to Matrix yet").Trailing()}
		for {
			m := c.ExpectMatch(t, isCmd("NOTICE"), "the greeting")
			greeting = append(greeting, m.Trailing())
			if strings.Contains(m.Trailing(), "this connection closes in") {
				break
			}
		}
		if strings.Contains(strings.Join(greeting, "\n"), "LOGIN") {
			t.Errorf("the greeting offers LOGIN, which Dendrite cannot do:\n%s", strings.Join(greeting, "\n"))
		}
		c.Send("PRIVMSG mxircd :LOGIN")
		serviceSays(t, c, "offers no login in a web browser; log in with /msg mxircd IDENTIFY")

		_, _, b := standinGateway(t, "sqlite", oauthstandin.Options{NoOAuth: true, SSO: true}, nil)
		c2 := dialNoLogin(t, b.addr(), "nohttp")
		c2.Send("PRIVMSG mxircd :LOGIN")
		serviceSays(t, c2, "which its operator has not set")
	})
}
