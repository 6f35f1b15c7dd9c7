package main

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// registerPassword is long enough for Dendrite (8 characters at least).
const registerPassword = "correct horse battery"

// capsOffered sends CAP LS 302 and returns the capabilities offered, with
// their values.
func capsOffered(t *testing.T, c *testenv.IRCClient) map[string]string {
	t.Helper()
	c.Send("CAP LS 302")
	caps := map[string]string{}
	for {
		m := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "LS" }, "CAP LS")
		for _, tok := range strings.Fields(m.Trailing()) {
			name, value, _ := strings.Cut(tok, "=")
			caps[name] = value
		}
		if len(m.Params) < 4 || m.Params[2] != "*" {
			return caps
		}
	}
}

// isFail matches FAIL <command> <code>.
func isFail(command, code string) func(*irc.Message) bool {
	return func(m *irc.Message) bool { return m.Command == "FAIL" && m.Param(0) == command && m.Param(1) == code }
}

// expectRegisterReply waits for the answer to a REGISTER (a REGISTER or
// a FAIL REGISTER line) and fails unless it is want (SUCCESS or a FAIL
// code).
func expectRegisterReply(t *testing.T, c *testenv.IRCClient, want string) *irc.Message {
	t.Helper()
	m := c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "REGISTER" || m.Command == "FAIL" && m.Param(0) == "REGISTER"
	}, "the answer to REGISTER")
	got := m.Param(0)
	if m.Command == "FAIL" {
		got = m.Param(1)
	}
	if got != want {
		t.Fatalf("REGISTER answered %s, want %s", m, want)
	}
	return m
}

// nameFree says whether localpart is still free on the homeserver.
func nameFree(t *testing.T, hs *testenv.Homeserver, localpart string) bool {
	t.Helper()
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.RegisterAvailable(ctxFor(t), localpart)
	return err == nil
}

// TestRegisterCommand: with account_registration, the capability is
// offered; REGISTER before connecting makes the account named and logs the
// connection in to it, so it joins and talks as it; the account then
// logs in with SASL from another connection. Bad names are refused before
// connecting; a login-pending connection is told why its names and
// passwords are refused (taken, too weak), and that there is nothing to
// VERIFY, and can then register and talk.
func TestRegisterCommand(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.AccountRegistration = true
				cfg.AutoRegister.SharedSecret = testenv.RegistrationSharedSecret
			}))
			bob := hs.Register(t, "bob")
			aliasLocal := uniq("register")
			room := createRoom(t, bob, aliasLocal, "")
			channel := "#" + aliasLocal + ":" + hs.ServerName

			// Before connection registration, with a name of its own.
			c := testenv.DialIRC(t, g.ircAddr())
			caps := capsOffered(t, c)
			if v, ok := caps["draft/account-registration"]; !ok || v != "before-connect,custom-account-name" {
				t.Fatalf("draft/account-registration offered as %q (%v), want before-connect,custom-account-name", v, ok)
			}
			c.Send("CAP REQ :draft/account-registration")
			c.ExpectMatch(t, isCmd("CAP", "*", "ACK"), "CAP ACK")
			nick := uniq("Reg")
			c.Send("NICK %s", nick)
			c.Send("REGISTER %s * :%s", nick, registerPassword)
			ok := expectRegisterReply(t, c, "SUCCESS")
			user := id.UserID(ok.Param(1))
			if want := id.NewUserID(strings.ToLower(nick), hs.ServerName); user != want {
				t.Fatalf("REGISTER SUCCESS for %s, want %s", user, want)
			}
			if logged := c.Expect(t, irc.RPL_LOGGEDIN); logged.Param(2) != user.String() {
				t.Errorf("900 = %s, want it for %s", logged, user)
			}
			c.Send("USER %s 0 * :registered", nick)
			c.Send("CAP END")
			if w := c.Expect(t, irc.RPL_WELCOME); w.Param(0) != nick {
				t.Errorf("001 = %s, want the nick %s kept", w, nick)
			}
			c.Send("JOIN %s", channel)
			c.ExpectMatch(t, isCmd("JOIN", channel), "own JOIN")
			c.Send("PRIVMSG %s :registered from IRC", channel)
			bobSees(t, bob, room, user, "registered from IRC")
			// Once logged in, another REGISTER is refused.
			c.Send("REGISTER * * :%s", registerPassword)
			expectRegisterReply(t, c, "ALREADY_AUTHENTICATED")
			c.Close()

			// The account is a lasting one: SASL PLAIN logs in to it.
			again := connect(t, g, "whoever", &testenv.Account{UserID: user, Password: registerPassword})
			again.Send("JOIN %s", channel)
			again.ExpectMatch(t, isCmd("JOIN", channel), "own JOIN")
			again.Send("PRIVMSG %s :and back again", channel)
			bobSees(t, bob, room, user, "and back again")
			again.Close()

			// Names that cannot be Matrix localparts, before connecting;
			// and a nick is needed first.
			b := testenv.DialIRC(t, g.ircAddr())
			b.Send("REGISTER someone * :%s", registerPassword)
			b.ExpectMatch(t, isFail("REGISTER", "NEED_NICK"), "FAIL REGISTER NEED_NICK")
			bnick := uniq("bad")
			b.Send("NICK %s", bnick)
			b.Send("REGISTER no*pe * :%s", registerPassword)
			expectRegisterReply(t, b, "BAD_ACCOUNT_NAME")
			b.Send("REGISTER _bridge%s * :%s", bnick, registerPassword)
			expectRegisterReply(t, b, "BAD_ACCOUNT_NAME")
			b.Send("REGISTER @%s:elsewhere.example * :%s", bnick, registerPassword)
			expectRegisterReply(t, b, "BAD_ACCOUNT_NAME")
			b.Close()

			// After connection registration, without a login.
			p := testenv.DialIRC(t, g.ircAddr())
			pnick := uniq("late")
			p.Send("NICK %s", pnick)
			p.Send("USER %s 0 * :pending", pnick)
			p.Expect(t, irc.RPL_WELCOME)
			p.Send("REGISTER %s * :%s", nick, registerPassword)
			expectRegisterReply(t, p, "ACCOUNT_EXISTS")
			p.Send("REGISTER %s * :%s", bob.UserID.Localpart(), registerPassword)
			expectRegisterReply(t, p, "ACCOUNT_EXISTS")
			p.Send("REGISTER * * short")
			weak := expectRegisterReply(t, p, "WEAK_PASSWORD")
			if !strings.Contains(weak.Trailing(), "too weak") || strings.Contains(weak.Trailing(), "{") {
				t.Errorf("weak password refused with %q, want plain words", weak.Trailing())
			}
			if !nameFree(t, hs, pnick) {
				t.Errorf("%s was registered despite its weak password", pnick)
			}
			p.Send("VERIFY %s 123456", pnick)
			p.ExpectMatch(t, isFail("VERIFY", "INVALID_CODE"), "FAIL VERIFY INVALID_CODE")
			// The nick it has is the account's name with *.
			p.Send("REGISTER * * :%s", registerPassword)
			late := id.UserID(expectRegisterReply(t, p, "SUCCESS").Param(1))
			if want := id.NewUserID(pnick, hs.ServerName); late != want {
				t.Fatalf("REGISTER * SUCCESS for %s, want %s", late, want)
			}
			p.Expect(t, irc.RPL_LOGGEDIN)
			p.Send("JOIN %s", channel)
			p.ExpectMatch(t, isCmd("JOIN", channel), "own JOIN")
			p.Send("PRIVMSG %s :registered late", channel)
			bobSees(t, bob, room, late, "registered late")
		})
	}
}

// TestRegisterOpenRegistration: without a shared secret, REGISTER goes
// through the homeserver's own registration (m.login.dummy here), which
// refuses a short password as too weak.
func TestRegisterOpenRegistration(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.AccountRegistration = true
			}))
			c := testenv.DialIRC(t, g.ircAddr())
			nick := uniq("open")
			c.Send("NICK %s", nick)
			c.Send("REGISTER * * 1234567")
			expectRegisterReply(t, c, "WEAK_PASSWORD")
			c.Send("REGISTER * * :%s", registerPassword)
			expectRegisterReply(t, c, "SUCCESS")
			c.Send("USER %s 0 * :open", nick)
			c.Expect(t, irc.RPL_WELCOME)
			c.Close()
			connect(t, g, "whoever", &testenv.Account{UserID: id.NewUserID(nick, hs.ServerName), Password: registerPassword})
		})
	}
}

// TestRegisterDisabled: by default the capability is not offered and
// cannot be requested, REGISTER is refused in words and makes nothing, and
// the connection goes on as without it.
func TestRegisterDisabled(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				// The means to register are there; REGISTER is not on.
				cfg.AutoRegister.SharedSecret = testenv.RegistrationSharedSecret
			}))
			c := testenv.DialIRC(t, g.ircAddr())
			if v, ok := capsOffered(t, c)["draft/account-registration"]; ok {
				t.Errorf("draft/account-registration offered (%q) though account_registration is off", v)
			}
			c.Send("CAP REQ :draft/account-registration")
			c.ExpectMatch(t, isCmd("CAP", "*", "NAK"), "CAP NAK")
			nick := uniq("nope")
			c.Send("NICK %s", nick)
			c.Send("REGISTER * * :%s", registerPassword)
			refused := expectRegisterReply(t, c, "DISALLOWED")
			if !strings.Contains(refused.Trailing(), "does not make accounts") {
				t.Errorf("refusal %q does not say REGISTER is off", refused.Trailing())
			}
			c.Send("VERIFY %s 123456", nick)
			c.ExpectMatch(t, isFail("VERIFY", "DISALLOWED"), "FAIL VERIFY DISALLOWED")
			c.Send("USER %s 0 * :nope", nick)
			c.Send("CAP END")
			c.Expect(t, irc.RPL_WELCOME)
			if !nameFree(t, hs, nick) {
				t.Errorf("%s was registered though REGISTER is off", nick)
			}
		})
	}
}

// TestRegisterFromLurker: a guest reading a room may make an account with
// REGISTER; it stops lurking (its channel is parted) and talks as the
// account, as after IDENTIFY.
func TestRegisterFromLurker(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := guestGateway(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.AccountRegistration = true
				cfg.AutoRegister.SharedSecret = testenv.RegistrationSharedSecret
			})
			bob := hs.Register(t, "bob")
			aliasLocal := uniq("lurkreg")
			room := createGuestRoom(t, bob, aliasLocal, "public_chat")
			channel := "#" + aliasLocal + ":" + hs.ServerName

			l, guest := lurk(t, g, uniq("reader"))
			l.Send("JOIN %s", channel)
			l.ExpectMatch(t, isCmd("JOIN", channel), "the guest's JOIN")
			name := uniq("fromguest")
			l.Send("REGISTER %s * :%s", name, registerPassword)
			user := id.UserID(expectRegisterReply(t, l, "SUCCESS").Param(1))
			if want := id.NewUserID(name, hs.ServerName); user != want {
				t.Fatalf("REGISTER SUCCESS for %s, want %s", user, want)
			}
			l.Expect(t, irc.RPL_LOGGEDIN)
			l.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "PART" && m.Param(0) == channel && m.Prefix != nil && m.Prefix.Name == guest
			}, "PART of the lurk channel")
			l.Send("JOIN %s", channel)
			l.ExpectMatch(t, isCmd("JOIN", channel), "the account's JOIN")
			l.Send("PRIVMSG %s :no longer a guest", channel)
			bobSees(t, bob, room, user, "no longer a guest")
		})
	}
}

// TestRegisterWithAutoRegister: with [autoregister] on too, a client that
// registers before connecting gets the account it named, not an automatic
// one; one that connects without a login gets an automatic account, and
// REGISTER then says it is logged in already.
func TestRegisterWithAutoRegister(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.Enabled = true
				cfg.AutoRegister.AccountRegistration = true
			}))
			c := testenv.DialIRC(t, g.ircAddr())
			nick := uniq("chosen")
			c.Send("NICK %s", nick)
			name := uniq("mine")
			c.Send("REGISTER %s * :%s", name, registerPassword)
			if user := id.UserID(expectRegisterReply(t, c, "SUCCESS").Param(1)); user.Localpart() != name {
				t.Fatalf("REGISTER SUCCESS for %s, want @%s", user, name)
			}
			c.Send("USER %s 0 * :chosen", nick)
			c.ExpectMatch(t, func(m *irc.Message) bool {
				if m.Command == "NOTICE" && strings.Contains(m.Trailing(), "made for you") {
					t.Errorf("an automatic account was made besides: %s", m)
				}
				return m.Command == irc.RPL_WELCOME
			}, "001")
			if !nameFree(t, hs, strings.ToLower(nick)) {
				t.Errorf("an account named after the nick %s was registered too", nick)
			}

			a, auto, _ := anonymous(t, g, uniq("Anon"))
			a.Send("REGISTER %s * :%s", uniq("late"), registerPassword)
			if refused := expectRegisterReply(t, a, "ALREADY_AUTHENTICATED"); refused.Param(2) != auto.String() {
				t.Errorf("ALREADY_AUTHENTICATED for %s, want %s", refused.Param(2), auto)
			}
		})
	}
}

// TestRegisterHomeserverRefuses: when the homeserver will not register
// for the gateway (a wrong shared secret here), REGISTER is temporarily
// unavailable, said in plain words, nothing is made, and the connection
// goes on without a login.
func TestRegisterHomeserverRefuses(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.AccountRegistration = true
				cfg.AutoRegister.SharedSecret = "not the secret"
			}))
			c := testenv.DialIRC(t, g.ircAddr())
			nick := uniq("refused")
			c.Send("NICK %s", nick)
			c.Send("REGISTER * * :%s", registerPassword)
			refused := expectRegisterReply(t, c, "TEMPORARILY_UNAVAILABLE")
			if text := refused.Trailing(); strings.Contains(text, "{") || strings.Contains(text, "http") || !strings.Contains(text, "shared secret") {
				t.Errorf("refusal %q is not in plain words", text)
			}
			c.Send("USER %s 0 * :refused", nick)
			c.Expect(t, irc.RPL_WELCOME)
			if !nameFree(t, hs, nick) {
				t.Errorf("%s was registered though the homeserver refused", nick)
			}
		})
	}
}
