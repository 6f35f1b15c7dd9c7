package oauth_test

import (
	"context"
	"errors"
	"net/http"
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

func TestMain(m *testing.M) { testenv.Main(m) }

var testClient = oauth.ClientInfo{Name: "mxircd test", URI: "https://mxircd.example.org/"}

// setup starts a stand-in in front of the shared Dendrite and registers a
// client with it, as the gateway does once per homeserver.
func setup(t *testing.T, opts oauthstandin.Options) (*oauthstandin.Server, *oauth.Client, *testenv.Homeserver) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Dendrite homeserver; skipped with -short")
	}
	hs := testenv.SharedHomeserver(t)
	si := oauthstandin.Start(t, hs, opts)
	ctx := context.Background()
	md, err := oauth.Discover(ctx, nil, si.URL)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if !md.SupportsDeviceGrant() {
		t.Fatalf("the stand-in's metadata offers no device grant: %+v", md)
	}
	clientID, err := oauth.Register(ctx, nil, md, testClient)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return si, &oauth.Client{Metadata: md, ClientID: clientID}, hs
}

// pollInBackground runs Poll and hands back its result.
func pollInBackground(ctx context.Context, c *oauth.Client, g *oauth.DeviceGrant) <-chan pollResult {
	done := make(chan pollResult, 1)
	go func() {
		tok, err := c.Poll(ctx, g)
		done <- pollResult{tok, err}
	}()
	return done
}

type pollResult struct {
	tokens *oauth.Tokens
	err    error
}

// waitPending waits until the stand-in has told a poll that the user has
// not answered, so that the answer the test gives arrives mid-poll.
func waitPending(t *testing.T, si *oauthstandin.Server, done <-chan pollResult) {
	t.Helper()
	for si.Answered("authorization_pending") == 0 {
		select {
		case r := <-done:
			t.Fatalf("Poll ended before the user answered: %v", r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// whoami asks Dendrite, through the proxy, who the token belongs to.
func whoami(t *testing.T, baseURL, token string) (*mautrix.RespWhoami, error) {
	t.Helper()
	cli, err := mautrix.NewClient(baseURL, "", token)
	if err != nil {
		t.Fatal(err)
	}
	return cli.Whoami(context.Background())
}

// login runs a whole device login approved as acct.
func login(t *testing.T, si *oauthstandin.Server, c *oauth.Client, acct *testenv.Account, deviceID string) *oauth.Tokens {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := c.Start(ctx, deviceID)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	done := pollInBackground(ctx, c, g)
	waitPending(t, si, done)
	if err := si.Approve(ctx, g.UserCode, acct); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Poll after approval: %v", r.err)
	}
	return r.tokens
}

func TestDiscoverWithoutOAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Dendrite homeserver; skipped with -short")
	}
	hs := testenv.SharedHomeserver(t)
	// Dendrite alone has no auth_metadata.
	if _, err := oauth.Discover(context.Background(), nil, hs.URL); !errors.Is(err, oauth.ErrNotSupported) {
		t.Fatalf("Discover on bare Dendrite: %v, want ErrNotSupported", err)
	}
	st := storetest.Open(t, "sqlite")
	cs := &oauth.Clients{Info: oauth.DefaultClientInfo, Store: st}
	if _, err := cs.For(context.Background(), hs.URL); !errors.Is(err, oauth.ErrNotSupported) {
		t.Fatalf("Clients.For on bare Dendrite: %v, want ErrNotSupported", err)
	}
	if _, err := st.OAuthClient(context.Background(), hs.URL); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a client was stored for a homeserver without OAuth: %v", err)
	}
}

func TestDeviceLoginApproved(t *testing.T) {
	si, c, hs := setup(t, oauthstandin.Options{})
	acct := hs.Register(t, "oauth")
	deviceID := oauth.NewDeviceID()
	start := time.Now()
	tok := login(t, si, c, acct, deviceID)

	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatal("no access or refresh token")
	}
	if tok.DeviceID() != deviceID {
		t.Errorf("tokens for device %q, want %q", tok.DeviceID(), deviceID)
	}
	if !tok.Expires.After(start) {
		t.Errorf("access token expires at %v, before the login", tok.Expires)
	}
	who, err := whoami(t, si.URL, tok.AccessToken)
	if err != nil {
		t.Fatalf("whoami with the minted token: %v", err)
	}
	if who.UserID != acct.UserID || who.DeviceID != id.DeviceID(deviceID) {
		t.Errorf("whoami = %s on %s, want %s on %s", who.UserID, who.DeviceID, acct.UserID, deviceID)
	}
	// The device code is used up.
	g := &oauth.DeviceGrant{DeviceCode: "not-a-code", DeviceID: deviceID}
	if _, err := c.PollOnce(context.Background(), g); !errors.Is(err, oauth.ErrInvalidGrant) {
		t.Errorf("polling an unknown device code: %v, want ErrInvalidGrant", err)
	}
}

func TestDeviceLoginDenied(t *testing.T) {
	si, c, _ := setup(t, oauthstandin.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := c.Start(ctx, oauth.NewDeviceID())
	if err != nil {
		t.Fatal(err)
	}
	done := pollInBackground(ctx, c, g)
	waitPending(t, si, done)
	if err := si.Deny(g.UserCode); err != nil {
		t.Fatal(err)
	}
	if r := <-done; !errors.Is(r.err, oauth.ErrDenied) {
		t.Fatalf("Poll after Deny: %v, want ErrDenied", r.err)
	}
}

func TestDeviceLoginExpired(t *testing.T) {
	si, c, _ := setup(t, oauthstandin.Options{CodeLifetime: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := c.Start(ctx, oauth.NewDeviceID())
	if err != nil {
		t.Fatal(err)
	}
	if g.ExpiresIn != 2*time.Second || g.Interval != time.Second {
		t.Errorf("grant expires in %v, interval %v; want 2s, 1s", g.ExpiresIn, g.Interval)
	}
	if _, err := c.Poll(ctx, g); !errors.Is(err, oauth.ErrExpired) {
		t.Fatalf("Poll of an unanswered code: %v, want ErrExpired", err)
	}
	// The server said so, not only the client's clock.
	if n := si.Answered("expired_token"); n != 1 {
		t.Errorf("stand-in answered expired_token %d times, want 1", n)
	}
}

func TestDeviceLoginSlowDown(t *testing.T) {
	si, c, hs := setup(t, oauthstandin.Options{})
	acct := hs.Register(t, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := c.Start(ctx, oauth.NewDeviceID())
	if err != nil {
		t.Fatal(err)
	}
	// Two polls in a row are too fast.
	if _, err := c.PollOnce(ctx, g); !errors.Is(err, oauth.ErrPending) {
		t.Fatalf("first poll: %v, want ErrPending", err)
	}
	if _, err := c.PollOnce(ctx, g); !errors.Is(err, oauth.ErrSlowDown) {
		t.Fatalf("second poll at once: %v, want ErrSlowDown", err)
	}
	if g.Interval != 6*time.Second {
		t.Fatalf("interval after slow_down is %v, want 1s + 5s", g.Interval)
	}
	if err := si.Approve(ctx, g.UserCode, acct); err != nil {
		t.Fatal(err)
	}
	// Poll must wait the raised interval; polling sooner gets another
	// slow_down, as the stand-in raised its interval too.
	tok, err := c.Poll(ctx, g)
	if err != nil {
		t.Fatalf("Poll after slow_down: %v", err)
	}
	if n := si.Answered("slow_down"); n != 1 {
		t.Errorf("stand-in answered slow_down %d times, want only the one provoked", n)
	}
	if _, err := whoami(t, si.URL, tok.AccessToken); err != nil {
		t.Errorf("whoami: %v", err)
	}
}

func TestPollCancelled(t *testing.T) {
	si, c, _ := setup(t, oauthstandin.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	g, err := c.Start(ctx, oauth.NewDeviceID())
	if err != nil {
		t.Fatal(err)
	}
	done := pollInBackground(ctx, c, g)
	waitPending(t, si, done)
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Poll after cancel: %v, want context.Canceled", r.err)
	}
}

func TestRefreshRotates(t *testing.T) {
	si, c, hs := setup(t, oauthstandin.Options{})
	acct := hs.Register(t, "refresh")
	deviceID := oauth.NewDeviceID()
	first := login(t, si, c, acct, deviceID)
	ctx := context.Background()

	second, err := c.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("Refresh did not rotate the tokens")
	}
	who, err := whoami(t, si.URL, second.AccessToken)
	if err != nil {
		t.Fatalf("whoami with the refreshed token: %v", err)
	}
	if who.UserID != acct.UserID || who.DeviceID != id.DeviceID(deviceID) {
		t.Errorf("refreshed token is %s on %s, want %s on %s", who.UserID, who.DeviceID, acct.UserID, deviceID)
	}
	if _, err := whoami(t, si.URL, first.AccessToken); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("whoami with the old access token: %v, want M_UNKNOWN_TOKEN", err)
	}
	// The old refresh token is dead; the new one works once.
	if _, err := c.Refresh(ctx, first.RefreshToken); !errors.Is(err, oauth.ErrInvalidGrant) {
		t.Errorf("Refresh with the rotated-out token: %v, want ErrInvalidGrant", err)
	}
	if _, err := c.Refresh(ctx, second.RefreshToken); err != nil {
		t.Errorf("Refresh with the new token: %v", err)
	}
}

func TestRevokedRefreshTokenRefused(t *testing.T) {
	si, c, hs := setup(t, oauthstandin.Options{})
	acct := hs.Register(t, "revoke")
	tok := login(t, si, c, acct, oauth.NewDeviceID())
	ctx := context.Background()

	if err := c.Revoke(ctx, tok.RefreshToken, "refresh_token"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := c.Refresh(ctx, tok.RefreshToken); !errors.Is(err, oauth.ErrInvalidGrant) {
		t.Errorf("Refresh after Revoke: %v, want ErrInvalidGrant", err)
	}
	if _, err := whoami(t, si.URL, tok.AccessToken); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("whoami after Revoke: %v, want M_UNKNOWN_TOKEN", err)
	}
	// RFC 7009: revoking what is already revoked succeeds.
	if err := c.Revoke(ctx, tok.RefreshToken, "refresh_token"); err != nil {
		t.Errorf("Revoke again: %v", err)
	}
}

func TestRegisterAndStartRefusals(t *testing.T) {
	si, c, _ := setup(t, oauthstandin.Options{})
	ctx := context.Background()
	var oe *oauth.Error
	// The spec wants an https client_uri.
	_, err := oauth.Register(ctx, nil, c.Metadata, oauth.ClientInfo{Name: "x", URI: "http://mxircd.example.org/"})
	if !errors.As(err, &oe) || oe.Code != "invalid_client_metadata" {
		t.Errorf("Register with an http client_uri: %v, want invalid_client_metadata", err)
	}
	stranger := &oauth.Client{Metadata: c.Metadata, ClientID: "never-registered"}
	_, err = stranger.Start(ctx, oauth.NewDeviceID())
	if !errors.As(err, &oe) || oe.Code != "invalid_client" || oe.Status != http.StatusUnauthorized {
		t.Errorf("Start as an unknown client: %v, want 401 invalid_client", err)
	}
	if _, err := c.Start(ctx, "bad device"); err == nil {
		t.Error("Start with a device ID holding a space succeeded")
	}
	if si.Answered("invalid_scope") != 0 {
		t.Error("a bad device ID reached the server")
	}
}

// The gateway registers once per homeserver: logins at once share one
// client_id, a restart reuses the stored one, and a forgotten one is
// replaced by a new registration.
func TestClientsRegisterOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Dendrite homeserver; skipped with -short")
	}
	hs := testenv.SharedHomeserver(t)
	si := oauthstandin.Start(t, hs, oauthstandin.Options{})
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			st := storetest.Open(t, driver)
			ctx := context.Background()
			cs := &oauth.Clients{Info: testClient, Store: st}
			ids := make(chan string, 4)
			for range cap(ids) {
				go func() {
					c, err := cs.For(ctx, si.URL+"/")
					if err != nil {
						t.Error(err)
						ids <- ""
						return
					}
					ids <- c.ClientID
				}()
			}
			first := <-ids
			for range cap(ids) - 1 {
				if id := <-ids; id != first {
					t.Fatalf("client IDs %q and %q for one homeserver", first, id)
				}
			}
			stored, err := st.OAuthClient(ctx, si.URL)
			if err != nil || stored.ClientID != first {
				t.Fatalf("stored client %+v, %v; want %q", stored, err, first)
			}

			// A restarted gateway takes the stored one, and it works.
			restarted := &oauth.Clients{Info: testClient, Store: st}
			c, err := restarted.For(ctx, si.URL)
			if err != nil || c.ClientID != first {
				t.Fatalf("after a restart: %v, %v; want %q", c, err, first)
			}
			if _, err := c.Start(ctx, oauth.NewDeviceID()); err != nil {
				t.Fatalf("Start with the stored client: %v", err)
			}

			// A client the server does not know is forgotten and replaced.
			stale := &oauth.Client{Metadata: c.Metadata, ClientID: "standin-forgotten"}
			if _, err := stale.Start(ctx, oauth.NewDeviceID()); !errors.Is(err, oauth.ErrUnknownClient) {
				t.Fatalf("Start as an unknown client: %v, want ErrUnknownClient", err)
			}
			if err := restarted.Forget(ctx, si.URL, c); err != nil {
				t.Fatal(err)
			}
			again, err := restarted.For(ctx, si.URL)
			if err != nil || again.ClientID == first {
				t.Fatalf("after Forget: %v, %v; want a new client_id", again, err)
			}
		})
	}
}

// A poll the server fails (503) is tried again later, not given up.
func TestPollRetriesServerErrors(t *testing.T) {
	si, c, hs := setup(t, oauthstandin.Options{})
	acct := hs.Register(t, "retry")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := c.Start(ctx, oauth.NewDeviceID())
	if err != nil {
		t.Fatal(err)
	}
	si.FailPolls(2)
	if err := si.Approve(ctx, g.UserCode, acct); err != nil {
		t.Fatal(err)
	}
	tok, err := c.Poll(ctx, g)
	if err != nil {
		t.Fatalf("Poll through server errors: %v", err)
	}
	if n := si.Answered("temporarily_unavailable"); n != 2 {
		t.Errorf("stand-in failed %d polls, want 2", n)
	}
	if n := si.Answered("slow_down"); n != 0 {
		t.Errorf("retrying after errors drew %d slow_down answers", n)
	}
	if _, err := whoami(t, si.URL, tok.AccessToken); err != nil {
		t.Errorf("whoami: %v", err)
	}
}
