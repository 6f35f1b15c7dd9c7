package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// redirectTransport sends requests for https://<host>/ to a plain-HTTP test
// server, standing in for DNS and TLS, which a loopback test cannot have.
type redirectTransport map[string]string

func (rt redirectTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if target, ok := rt[req.URL.Host]; ok {
		u, _ := url.Parse(target)
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host = u.Scheme, u.Host
		req.Host = u.Host
	}
	return http.DefaultTransport.RoundTrip(req)
}

// recorder is an attached client that keeps what it is sent.
type recorder struct {
	mu    sync.Mutex
	nick  string
	lines []*irc.Message
}

func (r *recorder) Checkpoint(key string, commit, undo func()) { commit() }
func (r *recorder) Nick() string                               { r.mu.Lock(); defer r.mu.Unlock(); return r.nick }
func (r *recorder) SetNick(n string) {
	r.mu.Lock()
	r.nick = n
	r.mu.Unlock()
}
func (r *recorder) SendMessage(m *irc.Message) {
	r.mu.Lock()
	r.lines = append(r.lines, m)
	r.mu.Unlock()
}
func (r *recorder) SendNumeric(code string, params ...string) {
	r.SendMessage(&irc.Message{Command: code, Params: params})
}
func (r *recorder) SendNotice(text string) {
	r.SendMessage(&irc.Message{Command: "NOTICE", Params: []string{text}})
}
func (r *recorder) ServerName() string { return "mxircd" }
func (r *recorder) HasCap(string) bool { return false }
func (r *recorder) Close(string)       {}

// With no fixed homeserver, the user's server is found through
// /.well-known/matrix/client, and without one, at https://<server>.
func TestHomeserverDiscovery(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	alice := hs.Register(t, "alice")

	wellKnown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/matrix/client" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"m.homeserver":{"base_url":"https://matrix.example.test"}}`))
	}))
	t.Cleanup(wellKnown.Close)

	for _, tc := range []struct {
		name      string
		transport redirectTransport
	}{
		{"well-known", redirectTransport{"localhost": wellKnown.URL, "matrix.example.test": hs.URL}},
		{"fallback to the server name", redirectTransport{"localhost": hs.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManager(Config{ServerName: "localhost", HTTPClient: &http.Client{Transport: tc.transport}},
				storetest.Open(t, "sqlite"))
			t.Cleanup(func() { m.Close(context.Background()) })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a, err := m.Login(ctx, alice.Localpart, alice.Password, &recorder{nick: "alice"})
			if err != nil {
				t.Fatalf("login with discovery: %v", err)
			}
			a.Detach()
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		m := NewManager(Config{Homeserver: hs.URL}, storetest.Open(t, "sqlite"))
		t.Cleanup(func() { m.Close(context.Background()) })
		_, err := m.Login(context.Background(), alice.UserID.String(), "not it", &recorder{})
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("err = %v, want ErrInvalidCredentials", err)
		}
	})
	t.Run("bare name without server_name", func(t *testing.T) {
		m := NewManager(Config{Homeserver: hs.URL}, storetest.Open(t, "sqlite"))
		t.Cleanup(func() { m.Close(context.Background()) })
		_, err := m.Login(context.Background(), "alice", "x", &recorder{})
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("err = %v, want ErrInvalidCredentials", err)
		}
	})
}
