package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/oauthstandin"
	"github.com/mxircd/mxircd/oauth"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// closeRecorder is a client that remembers why it was closed.
type closeRecorder struct {
	recorder
	mu     sync.Mutex
	reason string
}

func (c *closeRecorder) Close(reason string) {
	c.mu.Lock()
	c.reason = reason
	c.mu.Unlock()
}

func (c *closeRecorder) closedWith() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// deviceLogin logs acct in through the stand-in as the gateway will: the
// device grant, approved at once.
func deviceLogin(t *testing.T, si *oauthstandin.Server, acct *testenv.Account) (*oauth.Client, *oauth.Tokens) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	md, err := oauth.Discover(ctx, nil, si.URL)
	if err != nil {
		t.Fatal(err)
	}
	clientID, err := oauth.Register(ctx, nil, md, oauth.ClientInfo{Name: "mxircd test", URI: "https://mxircd.example.org/"})
	if err != nil {
		t.Fatal(err)
	}
	c := &oauth.Client{Metadata: md, ClientID: clientID}
	g, err := c.Start(ctx, oauth.NewDeviceID())
	if err != nil {
		t.Fatal(err)
	}
	if err := si.Approve(ctx, g.UserCode, acct); err != nil {
		t.Fatal(err)
	}
	tok, err := c.Poll(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	return c, tok
}

// An always-on account that logged in through OAuth resumes from its stored
// grant after a restart; when the homeserver refuses its access token, the
// session renews it through the refresh token (stored, rotated) and goes
// on; when the grant is revoked, the session ends, its clients are told
// why, and the store forgets the grant and the token.
func TestOAuthSessionRenewsAndEndsOnRevocation(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			si := oauthstandin.Start(t, hs, oauthstandin.Options{})
			acct := hs.Register(t, "oauthsess")
			c, tok := deviceLogin(t, si, acct)
			user := acct.UserID
			device := tok.DeviceID()

			st := storetest.Open(t, driver)
			ctx := context.Background()
			on := true
			if err := st.PutOAuthLogin(ctx,
				&store.Account{UserID: user, Homeserver: si.URL, DeviceID: device, AccessToken: tok.AccessToken, AlwaysOn: &on},
				&store.OAuthGrant{UserID: user, ClientID: c.ClientID, RefreshToken: tok.RefreshToken, Expires: tok.Expires}); err != nil {
				t.Fatal(err)
			}

			// A gateway starting with the stored grant: no password anywhere.
			m := NewManager(Config{Homeserver: si.URL, SyncTimeout: time.Second}, st)
			t.Cleanup(func() { m.Close(context.Background()) })
			m.ResumeAll()
			var sess *Session
			waitFor(t, func() bool {
				m.mu.Lock()
				defer m.mu.Unlock()
				sess = m.sessions[user]
				return sess != nil
			}, "the resumed session")
			if !sess.grant.active.Load() {
				t.Fatal("the session does not know its account renews through OAuth")
			}
			client := &closeRecorder{recorder: recorder{nick: acct.Localpart}}
			m.mu.Lock()
			m.attached[sess]++
			m.mu.Unlock()
			newAttachment(sess, client, "laptop").Attach()

			stored := func() (*store.OAuthGrant, *store.Account) {
				g, err := st.OAuthGrant(ctx, user)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
				a, err := st.Account(ctx, user)
				if err != nil {
					t.Fatal(err)
				}
				return g, a
			}

			// Twice, so the renewed session is shown to go on syncing.
			refresh := tok.RefreshToken
			for round := range 2 {
				if err := si.ExpireAccessToken(ctx, user, device); err != nil {
					t.Fatal(err)
				}
				waitFor(t, func() bool {
					g, _ := stored()
					return g != nil && g.RefreshToken != refresh
				}, "the renewed grant in the store")
				g, a := stored()
				refresh = g.RefreshToken
				cli, err := mautrix.NewClient(si.URL, user, a.AccessToken)
				if err != nil {
					t.Fatal(err)
				}
				who, err := cli.Whoami(ctx)
				if err != nil {
					t.Fatalf("round %d: the stored access token: %v", round, err)
				}
				if who.UserID != user || who.DeviceID != id.DeviceID(device) {
					t.Errorf("round %d: stored token is %s on %s, want %s on %s", round, who.UserID, who.DeviceID, user, device)
				}
				if r := client.closedWith(); r != "" {
					t.Fatalf("round %d: the client was closed: %q", round, r)
				}
			}
			if m.SessionCount() != 1 {
				t.Fatalf("%d sessions after renewals, want 1", m.SessionCount())
			}

			// The user ends the login elsewhere.
			if err := c.Revoke(ctx, refresh, "refresh_token"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return m.SessionCount() == 0 }, "the session to end")
			if r := client.closedWith(); r == "" || !strings.Contains(r, "revoked") {
				t.Errorf("the client was closed with %q, want a word about the revoked login", r)
			}
			if g, a := stored(); g != nil || a.AccessToken != "" {
				t.Errorf("after revocation the store keeps grant %v and token %q", g != nil, a.AccessToken)
			}
		})
	}
}

// A stored access token whose lifetime is over (the gateway was down for
// longer than it lives) is renewed before the resumed session's first
// request, without waiting for the homeserver to refuse it.
func TestOAuthSessionRenewsExpiredTokenAtStart(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	si := oauthstandin.Start(t, hs, oauthstandin.Options{})
	acct := hs.Register(t, "oauthstart")
	c, tok := deviceLogin(t, si, acct)
	st := storetest.Open(t, "sqlite")
	ctx := context.Background()
	on := true
	user := acct.UserID
	if err := st.PutOAuthLogin(ctx,
		&store.Account{UserID: user, Homeserver: si.URL, DeviceID: tok.DeviceID(), AccessToken: tok.AccessToken, AlwaysOn: &on},
		&store.OAuthGrant{UserID: user, ClientID: c.ClientID, RefreshToken: tok.RefreshToken, Expires: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	m := NewManager(Config{Homeserver: si.URL, SyncTimeout: time.Second}, st)
	t.Cleanup(func() { m.Close(context.Background()) })
	m.ResumeAll()
	waitFor(t, func() bool {
		g, err := st.OAuthGrant(ctx, user)
		return err == nil && g.RefreshToken != tok.RefreshToken && g.Expires.After(time.Now())
	}, "the grant renewed at start")
	if n := si.Answered("invalid_grant"); n != 0 {
		t.Errorf("the stand-in refused %d refreshes", n)
	}
	if m.SessionCount() != 1 {
		t.Errorf("%d sessions, want 1", m.SessionCount())
	}
}
