package main

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// TestAutoRegisterKeepFor: an account made for a connection without a
// login is deactivated on the homeserver once it has had no client for
// autoregister.keep_for, and the gateway keeps nothing of it; an account
// whose client came back in time is kept.
func TestAutoRegisterKeepFor(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			cfg := gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.Enabled = true
				cfg.AutoRegister.SharedSecret = testenv.RegistrationSharedSecret
				cfg.AutoRegister.KeepFor = Duration{2 * time.Second}
			})
			g := startTestGateway(t, cfg)
			db := storetest.RawDB(t, store.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN})
			bob := hs.Register(t, "bob")
			aliasLocal := uniq("keepfor")
			room := createRoom(t, bob, aliasLocal, "")
			channel := "#" + aliasLocal + ":" + hs.ServerName

			// One account comes and goes; it talks first, so the gateway
			// stores something of it.
			c, gone, gonePassword := anonymous(t, g, uniq("Gone"))
			c.Send("JOIN %s", channel)
			c.ExpectMatch(t, isCmd("JOIN", channel), "own JOIN")
			c.Send("PRIVMSG %s :here for a moment", channel)
			bobSees(t, bob, room, gone, "here for a moment")
			for _, table := range []string{"accounts", "sync_state", "auto_registered"} {
				if n := userRows(t, db, table, "user_id", gone); n == 0 {
					t.Fatalf("nothing of %s in %s while it is used", gone, table)
				}
			}
			if sealed := storedSealedPassword(t, db, gone); sealed == "" || sealed == gonePassword {
				t.Fatalf("the stored password of %s is %q, want it sealed", gone, sealed)
			}

			// The other leaves and comes back at once with the password
			// it was shown.
			k1, kept, keptPassword := anonymous(t, g, uniq("Kept"))
			quit(t, k1)
			k2 := connect(t, g, "kept", &testenv.Account{UserID: kept, Password: keptPassword})

			quit(t, c)
			// Deactivated and deleted after keep_for.
			deadline := time.Now().Add(90 * time.Second)
			for userRows(t, db, "accounts", "user_id", gone)+userRows(t, db, "auto_registered", "user_id", gone) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s is still stored long after keep_for", gone)
				}
				time.Sleep(100 * time.Millisecond)
			}
			cli, err := mautrix.NewClient(hs.URL, "", "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = cli.Login(ctxFor(t), &mautrix.ReqLogin{
				Type:       mautrix.AuthTypePassword,
				Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: gone.String()},
				Password:   gonePassword,
			})
			var httpErr mautrix.HTTPError
			if !errors.Is(err, mautrix.MUserDeactivated) && !(errors.As(err, &httpErr) && httpErr.Response != nil && httpErr.Response.StatusCode == 403) {
				t.Fatalf("logging in to %s after keep_for: %v, want it deactivated (403)", gone, err)
			}
			for _, table := range []string{"accounts", "oauth_grants", "cert_fingerprints", "channel_names", "sync_state",
				"account_rooms", "account_events", "client_cursors", "outbox", "auto_registered"} {
				if n := userRows(t, db, table, "user_id", gone); n != 0 {
					t.Errorf("%d rows of %s left in %s", n, gone, table)
				}
			}
			for _, table := range []string{"crypto_account", "crypto_olm_session", "crypto_megolm_inbound_session",
				"crypto_megolm_outbound_session", "crypto_secrets"} {
				if n := userRows(t, db, table, "account_id", gone); n != 0 {
					t.Errorf("%d rows of %s left in %s", n, gone, table)
				}
			}
			// Logging in again with the password shown fails.
			again := testenv.DialIRC(t, g.ircAddr())
			again.Send("CAP LS 302")
			again.Send("NICK back")
			again.Send("USER back 0 * :back")
			again.Send("CAP REQ :sasl")
			again.Send("AUTHENTICATE PLAIN")
			again.Expect(t, "AUTHENTICATE")
			again.Send("AUTHENTICATE %s", b64("\x00"+gone.String()+"\x00"+gonePassword))
			again.Expect(t, "904")

			// The account whose client came back is kept, attached.
			if n := userRows(t, db, "accounts", "user_id", kept); n != 1 {
				t.Errorf("%d accounts rows of %s, which came back in time", n, kept)
			}
			var left sql.NullInt64
			if err := db.QueryRow(`SELECT left_at FROM auto_registered WHERE user_id = $1`, string(kept)).Scan(&left); err != nil || left.Valid {
				t.Errorf("%s: left_at %v, %v; want it kept with a client attached", kept, left, err)
			}
			k2.Send("JOIN %s", channel)
			k2.ExpectMatch(t, isCmd("JOIN", channel), "JOIN of the kept account")
			k2.Send("PRIVMSG %s :still here", channel)
			bobSees(t, bob, room, kept, "still here")
		})
	}
}

// TestAutoRegisterKeepForRestart: an account whose client was attached
// when the gateway stopped is kept from the restart on as if its client
// had left then: its session, resumed as always-on, is ended and the
// account deactivated keep_for later, and it is not resumed again.
func TestAutoRegisterKeepForRestart(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			b := startBouncer(t, bouncerConfig(t, hs, driver, func(cfg *Config) {
				cfg.AutoRegister.Enabled = true
				cfg.AutoRegister.SharedSecret = testenv.RegistrationSharedSecret
				cfg.AutoRegister.KeepFor = Duration{2 * time.Second}
			}))
			db := storetest.RawDB(t, store.Config{Driver: b.cfg.Store.Driver, Path: b.cfg.Store.Path, DSN: b.cfg.Store.DSN})
			c, gone, password := anonymous(t, b.g, uniq("Restart"))
			c.Send("PING :synced")
			c.ExpectMatch(t, isCmd("PONG"), "PONG")
			b.restart(t) // the client is cut off with the old gateway

			deadline := time.Now().Add(90 * time.Second)
			for userRows(t, db, "accounts", "user_id", gone)+userRows(t, db, "auto_registered", "user_id", gone) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s is still stored long after keep_for from the restart", gone)
				}
				time.Sleep(100 * time.Millisecond)
			}
			waitSessions(t, b.g, 0)
			cli, err := mautrix.NewClient(hs.URL, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Login(ctxFor(t), &mautrix.ReqLogin{
				Type:       mautrix.AuthTypePassword,
				Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: gone.String()},
				Password:   password,
			}); err == nil {
				t.Fatalf("%s still logs in after keep_for", gone)
			}
			// Nothing is left to resume.
			b.restart(t)
			if users, err := b.g.store.AlwaysOnAccounts(ctxFor(t), true); err != nil || len(users) != 0 {
				t.Fatalf("always-on accounts after the account was deactivated: %v, %v", users, err)
			}
		})
	}
}

// userRows counts the rows of user in table, whose account column is
// column.
func userRows(t *testing.T, db *sql.DB, table, column string, user id.UserID) int {
	t.Helper()
	var n int
	if err := db.QueryRow(fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE %s = $1`, table, column), string(user)).Scan(&n); err != nil {
		t.Fatalf("counting rows of %s in %s: %v", user, table, err)
	}
	return n
}

func storedSealedPassword(t *testing.T, db *sql.DB, user id.UserID) string {
	t.Helper()
	var sealed string
	if err := db.QueryRow(`SELECT sealed_password FROM auto_registered WHERE user_id = $1`, string(user)).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	return sealed
}
