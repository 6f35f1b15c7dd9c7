package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func noTokens(context.Context, id.UserID) (string, string, bool) { return "", "", false }

// fixture is a logged-in account on the shared Dendrite and a Proxy serving
// its media over a real HTTP server.
type fixture struct {
	hs    *testenv.Homeserver
	acct  *testenv.Account
	proxy *Proxy
	srv   *httptest.Server
	clock *clock
}

type clock struct{ t atomic.Int64 } // unix nanoseconds

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

// newFixture registers an account and serves a Proxy whose TokenSource knows
// only that account. edit may change the config before New.
func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	hs := testenv.SharedHomeserver(t)
	f := &fixture{hs: hs, acct: hs.Register(t, "alice")}
	f.proxy, f.srv, f.clock = serve(t, edit, func(_ context.Context, u id.UserID) (string, string, bool) {
		if u != f.acct.UserID {
			return "", "", false
		}
		return hs.URL, f.acct.Client.AccessToken, true
	})
	return f
}

// serve starts an HTTP server for a new Proxy with a settable clock.
func serve(t *testing.T, edit func(*Config), tokens TokenSource) (*Proxy, *httptest.Server, *clock) {
	t.Helper()
	var p *Proxy
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	cfg := Config{PublicURL: srv.URL, Key: randomKey(t), TTL: time.Hour, Logger: testLogger(t)}
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(cfg, tokens)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	// Whole seconds, as link expiry is, so max-age comes out exact.
	c.t.Store(time.Now().Truncate(time.Second).UnixNano())
	p.now = c.now
	return p, srv, c
}

// testLogger logs into the test's output; srv.Close in cleanup waits for
// handlers, so nothing logs after the test ends.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func randomKey(t *testing.T) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (f *fixture) upload(t *testing.T, data []byte, contentType, name string) id.ContentURI {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := f.acct.Client.UploadBytesWithName(ctx, data, contentType, name)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	return resp.ContentURI
}

// fetch does one request with optional header pairs and returns the
// response with its body read.
func fetch(t *testing.T, method, link string, header ...string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := tryFetch(method, link, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, link, err)
	}
	return resp, body
}

func tryFetch(method, link string, header ...string) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, link, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %.200q", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, body)
	}
}

func wantHeader(t *testing.T, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s: %q, want %q", name, got, want)
	}
}

func wantSafetyHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	wantHeader(t, resp, "X-Content-Type-Options", "nosniff")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox;") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
}

// The reason this package exists: Dendrite refuses unauthenticated downloads
// on the authenticated media endpoint, so a plain link cannot work.
func TestHomeserverRequiresAuth(t *testing.T) {
	f := newFixture(t, nil)
	mxc := f.upload(t, []byte("secret"), "text/plain", "s.txt")
	u := f.hs.URL + "/_matrix/client/v1/media/download/" + mxc.Homeserver + "/" + mxc.FileID
	resp, body := fetch(t, http.MethodGet, u)
	if resp.StatusCode != http.StatusUnauthorized || bytes.Contains(body, []byte("secret")) {
		t.Fatalf("unauthenticated GET %s: %d %q, want 401", u, resp.StatusCode, body)
	}
	resp, body = fetch(t, http.MethodGet, u, "Authorization", "Bearer "+f.acct.Client.AccessToken)
	if resp.StatusCode != http.StatusOK || string(body) != "secret" {
		t.Fatalf("authenticated GET: %d %q", resp.StatusCode, body)
	}
}

func TestDownload(t *testing.T) {
	f := newFixture(t, nil)
	data := randomBytes(3000)
	mxc := f.upload(t, data, "image/png", "pic.png")
	link := f.proxy.Link(f.acct.UserID, mxc, "holiday pic.png")

	if !strings.HasPrefix(link, f.srv.URL+"/") || !strings.HasSuffix(link, "/holiday%20pic.png") {
		t.Errorf("link %q", link)
	}
	if segs := strings.Split(strings.TrimPrefix(link, f.srv.URL+"/"), "/"); len(segs) != 3 {
		t.Errorf("link %q has %d segments after the public URL, want 3", link, len(segs))
	}
	if strings.Contains(link, mxc.FileID) || strings.Contains(link, f.acct.Client.AccessToken) {
		t.Errorf("link %q shows the media ID or token in clear", link)
	}

	resp, body := fetch(t, http.MethodGet, link)
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		t.Fatalf("got %d bytes, not the %d uploaded", len(body), len(data))
	}
	wantHeader(t, resp, "Content-Type", "image/png")
	wantHeader(t, resp, "Content-Disposition", `inline; filename="holiday pic.png"`)
	wantHeader(t, resp, "Content-Length", "3000")
	wantHeader(t, resp, "Accept-Ranges", "bytes")
	wantHeader(t, resp, "Cache-Control", "private, max-age=3600")
	wantSafetyHeaders(t, resp)

	// max-age follows the time left.
	f.clock.advance(59 * time.Minute)
	resp, body = fetch(t, http.MethodGet, link)
	wantStatus(t, resp, body, http.StatusOK)
	wantHeader(t, resp, "Cache-Control", "private, max-age=60")
}

func TestHead(t *testing.T) {
	f := newFixture(t, nil)
	mxc := f.upload(t, randomBytes(1234), "video/mp4", "clip.mp4")
	resp, body := fetch(t, http.MethodHead, f.proxy.Link(f.acct.UserID, mxc, "clip.mp4"))
	wantStatus(t, resp, body, http.StatusOK)
	if len(body) != 0 {
		t.Errorf("HEAD returned %d body bytes", len(body))
	}
	wantHeader(t, resp, "Content-Length", "1234")
	wantHeader(t, resp, "Content-Type", "video/mp4")
	wantHeader(t, resp, "Content-Disposition", `inline; filename=clip.mp4`)
}

// Dendrite ignores Range, so these ranges are cut out of its full response
// by the proxy; TestUpstreamRange covers a homeserver that honours them.
func TestRange(t *testing.T) {
	f := newFixture(t, nil)
	data := randomBytes(3000)
	mxc := f.upload(t, data, "audio/ogg", "song.ogg")
	link := f.proxy.Link(f.acct.UserID, mxc, "song.ogg")

	for _, tc := range []struct {
		rng      string
		from, to int // of data, to exclusive
	}{
		{"bytes=100-199", 100, 200},
		{"bytes=0-0", 0, 1},
		{"bytes=2990-", 2990, 3000},
		{"bytes=2990-9999", 2990, 3000},
		{"bytes=-10", 2990, 3000},
	} {
		resp, body := fetch(t, http.MethodGet, link, "Range", tc.rng)
		wantStatus(t, resp, body, http.StatusPartialContent)
		if !bytes.Equal(body, data[tc.from:tc.to]) {
			t.Errorf("%s: got %d bytes, not data[%d:%d]", tc.rng, len(body), tc.from, tc.to)
		}
		wantHeader(t, resp, "Content-Range", fmt.Sprintf("bytes %d-%d/3000", tc.from, tc.to-1))
		wantHeader(t, resp, "Content-Length", strconv.Itoa(tc.to-tc.from))
		wantHeader(t, resp, "Content-Type", "audio/ogg")
	}

	resp, body := fetch(t, http.MethodGet, link, "Range", "bytes=3000-")
	wantStatus(t, resp, body, http.StatusRequestedRangeNotSatisfiable)
	wantHeader(t, resp, "Content-Range", "bytes */3000")

	// Several ranges are not supported: the whole file, as RFC 9110 allows.
	resp, body = fetch(t, http.MethodGet, link, "Range", "bytes=0-1,5-6")
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		t.Error("multi-range request did not get the whole file")
	}

	resp, body = fetch(t, http.MethodHead, link, "Range", "bytes=10-19")
	wantStatus(t, resp, body, http.StatusPartialContent)
	wantHeader(t, resp, "Content-Range", "bytes 10-19/3000")
	wantHeader(t, resp, "Content-Length", "10")
}

func TestExpiredLink(t *testing.T) {
	f := newFixture(t, nil)
	mxc := f.upload(t, []byte("soon gone"), "text/plain", "a.txt")
	link := f.proxy.Link(f.acct.UserID, mxc, "a.txt")

	f.clock.advance(time.Hour - time.Second)
	resp, body := fetch(t, http.MethodGet, link)
	wantStatus(t, resp, body, http.StatusOK)

	f.clock.advance(time.Second)
	resp, body = fetch(t, http.MethodGet, link)
	wantStatus(t, resp, body, http.StatusGone)
	wantHeader(t, resp, "Cache-Control", "no-store")
	if bytes.Contains(body, []byte("soon gone")) {
		t.Error("expired link served the file")
	}

	// A link made now works again.
	resp, body = fetch(t, http.MethodGet, f.proxy.Link(f.acct.UserID, mxc, "a.txt"))
	wantStatus(t, resp, body, http.StatusOK)
}

func TestTamperedLinks(t *testing.T) {
	f := newFixture(t, nil)
	data := []byte("the real file")
	mxc := f.upload(t, data, "text/plain", "real.txt")
	link := f.proxy.Link(f.acct.UserID, mxc, "real.txt")
	segs := strings.Split(strings.TrimPrefix(link, f.srv.URL+"/"), "/")
	payload, sig := segs[0], segs[1]

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	// A validly signed link with a different key, for the same media.
	other, _, _ := serve(t, nil, noTokens)
	foreign := strings.Split(other.Link(f.acct.UserID, mxc, "x"), "/")
	// A validly signed link for other media, with this link's signature.
	mxc2 := f.upload(t, []byte("another file"), "text/plain", "b.txt")
	payload2 := strings.Split(strings.TrimPrefix(f.proxy.Link(f.acct.UserID, mxc2, "b.txt"), f.srv.URL+"/"), "/")[0]

	for name, path := range map[string]string{
		"payload byte":       flip(payload, 10) + "/" + sig + "/real.txt",
		"last payload byte":  flip(payload, len(payload)-1) + "/" + sig + "/real.txt",
		"signature byte":     payload + "/" + flip(sig, 0) + "/real.txt",
		"other key":          payload + "/" + foreign[len(foreign)-2] + "/real.txt",
		"other payload":      payload2 + "/" + sig + "/real.txt",
		"swapped":            sig + "/" + payload + "/real.txt",
		"no filename":        payload + "/" + sig,
		"extra segment":      payload + "/" + sig + "/x/real.txt",
		"empty":              "",
		"garbage":            "a/b/c",
		"truncated payload":  payload[:len(payload)-2] + "/" + sig + "/real.txt",
		"truncated sig":      payload + "/" + sig[:len(sig)-1] + "/real.txt",
		"padded signature":   payload + "/" + sig + "==/real.txt",
		"escaped separators": payload + "%2F" + sig + "/real.txt",
	} {
		resp, body := fetch(t, http.MethodGet, f.srv.URL+"/"+path)
		if resp.StatusCode != http.StatusNotFound || bytes.Contains(body, data) {
			t.Errorf("%s: %d %q, want 404", name, resp.StatusCode, body)
		}
	}

	// The filename is not signed: changing it only renames the download,
	// sanitised again on the way out.
	for name, want := range map[string]string{
		"renamed.txt":                     `inline; filename=renamed.txt`,
		"..%2F..%2Fetc%2Fpasswd":          `inline; filename=passwd`,
		"%22quoted%22%0D%0AX-Evil:%201":   `inline; filename="_quoted_X-Evil_ 1"`,
		"caf%C3%A9.txt":                   `inline; filename*=utf-8''caf%C3%A9.txt`,
		"":                                `inline; filename=` + mxc.FileID,
		strings.Repeat("n", 300) + ".txt": `inline; filename=` + strings.Repeat("n", 76) + ".txt",
	} {
		resp, body := fetch(t, http.MethodGet, f.srv.URL+"/"+payload+"/"+sig+"/"+name)
		wantStatus(t, resp, body, http.StatusOK)
		if !bytes.Equal(body, data) {
			t.Errorf("renamed to %q: body %q", name, body)
		}
		wantHeader(t, resp, "Content-Disposition", want)
		if resp.Header.Get("X-Evil") != "" {
			t.Error("header injection through the filename")
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t, nil)
	mxc := f.upload(t, []byte("x"), "text/plain", "x.txt")
	link := f.proxy.Link(f.acct.UserID, mxc, "x.txt")
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		resp, body := fetch(t, m, link)
		wantStatus(t, resp, body, http.StatusMethodNotAllowed)
		wantHeader(t, resp, "Allow", "GET, HEAD")
	}
}

func TestUnknownUser(t *testing.T) {
	f := newFixture(t, nil)
	mxc := f.upload(t, []byte("alice's file"), "text/plain", "a.txt")
	// Signed correctly, but the gateway has no login for this user.
	link := f.proxy.Link(id.NewUserID("bob", f.hs.ServerName), mxc, "a.txt")
	resp, body := fetch(t, http.MethodGet, link)
	wantStatus(t, resp, body, http.StatusNotFound)
	if bytes.Contains(body, []byte("alice")) {
		t.Errorf("body %q", body)
	}
}

func TestNonexistentMedia(t *testing.T) {
	f := newFixture(t, nil)
	for _, mxc := range []id.ContentURI{
		{Homeserver: f.hs.ServerName, FileID: "doesNotExist1234567890"},
		{Homeserver: f.hs.ServerName, FileID: "odd.legacy=id"},
	} {
		resp, body := fetch(t, http.MethodGet, f.proxy.Link(f.acct.UserID, mxc, "missing.png"))
		wantStatus(t, resp, body, http.StatusNotFound)
		if ct := resp.Header.Get("Content-Disposition"); ct != "" {
			t.Errorf("404 has Content-Disposition %q", ct)
		}
	}
}

func TestMaxBytes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBytes = 1000 })
	exact := randomBytes(1000)
	resp, body := fetch(t, http.MethodGet, f.proxy.Link(f.acct.UserID, f.upload(t, exact, "image/png", "ok.png"), "ok.png"))
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, exact) {
		t.Error("file of exactly MaxBytes not served whole")
	}

	// Dendrite sends Content-Length, so a larger file is refused before any
	// of it is sent, also when only a small range of it is asked for.
	big := f.proxy.Link(f.acct.UserID, f.upload(t, randomBytes(1001), "image/png", "big.png"), "big.png")
	for _, rng := range []string{"", "bytes=0-9"} {
		resp, body = fetch(t, http.MethodGet, big, "Range", rng)
		wantStatus(t, resp, body, http.StatusBadGateway)
		if len(body) > 100 {
			t.Errorf("range %q: refusal carried %d bytes", rng, len(body))
		}
	}
}

func TestActiveContentIsAttachment(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		data, contentType, name string
	}{
		{"<html><script>alert(document.domain)</script></html>", "text/html", "page.html"},
		{`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`, "image/svg+xml", "img.svg"},
		{"alert(1)", "application/javascript", "x.js"},
		{"<?xml version='1.0'?><x/>", "application/xml", "x.xml"},
		// Sniffing would make this HTML; it must not be.
		{"<html><script>alert(1)</script>", "", "noext"},
		{"%PDF-1.4", "application/pdf", "doc.pdf"},
	} {
		mxc := f.upload(t, []byte(tc.data), tc.contentType, tc.name)
		resp, body := fetch(t, http.MethodGet, f.proxy.Link(f.acct.UserID, mxc, tc.name))
		wantStatus(t, resp, body, http.StatusOK)
		if string(body) != tc.data {
			t.Errorf("%s: body %q", tc.name, body)
		}
		want := "application/octet-stream"
		if tc.contentType == "application/pdf" {
			want = "application/pdf"
		}
		wantHeader(t, resp, "Content-Type", want)
		wantHeader(t, resp, "Content-Disposition", "attachment; filename="+tc.name)
		wantSafetyHeaders(t, resp)
	}
}

func TestConcurrentDownloads(t *testing.T) {
	f := newFixture(t, nil)
	files := make([][]byte, 3)
	links := make([]string, len(files))
	for i := range files {
		files[i] = randomBytes(20_000 + i*1000)
		links[i] = f.proxy.Link(f.acct.UserID, f.upload(t, files[i], "image/jpeg", fmt.Sprintf("f%d.jpg", i)), fmt.Sprintf("f%d.jpg", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 12 {
		wg.Go(func() {
			for k := range 5 {
				i := (g + k) % len(files)
				var resp *http.Response
				var body []byte
				var err error
				want := files[i]
				if k%2 == 0 {
					resp, body, err = tryFetch(http.MethodGet, links[i])
				} else {
					resp, body, err = tryFetch(http.MethodGet, links[i], "Range", "bytes=500-1499")
					want = want[500:1500]
				}
				switch {
				case err != nil:
					errs <- err
				case resp.StatusCode/100 != 2 || !bytes.Equal(body, want):
					errs <- fmt.Errorf("file %d: status %d, %d bytes, want %d", i, resp.StatusCode, len(body), len(want))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// PublicURL may have a path; the handler works mounted under it with or
// without the prefix stripped.
func TestPathPrefix(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	acct := hs.Register(t, "prefix")
	tokens := func(context.Context, id.UserID) (string, string, bool) { return hs.URL, acct.Client.AccessToken, true }
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	key := randomKey(t)
	plain, err := New(Config{PublicURL: srv.URL + "/media/", Key: key, Logger: testLogger(t)}, tokens)
	if err != nil {
		t.Fatal(err)
	}
	stripped, err := New(Config{PublicURL: srv.URL + "/dl", Key: key, Logger: testLogger(t)}, tokens)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/media/", plain)
	mux.Handle("/dl/", http.StripPrefix("/dl", stripped))

	ctx := context.Background()
	up, err := acct.Client.UploadBytesWithName(ctx, []byte("prefixed"), "text/plain", "p.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Proxy{plain, stripped} {
		link := p.Link(acct.UserID, up.ContentURI, "p.txt")
		resp, body := fetch(t, http.MethodGet, link)
		wantStatus(t, resp, body, http.StatusOK)
		if string(body) != "prefixed" {
			t.Errorf("%s: %q", link, body)
		}
	}
	if link := plain.Link(acct.UserID, up.ContentURI, "p.txt"); !strings.HasPrefix(link, srv.URL+"/media/") || strings.Contains(link, "/media//") {
		t.Errorf("link %q", link)
	}
}

// The tests below need homeserver behaviour Dendrite does not have (ranges,
// missing authenticated media, failures, chunked bodies), so a stub answers.

type stub struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string
	auths []string
	rngs  []string
}

func newStub(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *stub {
	s := &stub{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.RequestURI())
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		s.rngs = append(s.rngs, r.Header.Get("Range"))
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stub) seen() (paths, auths, rngs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paths, s.auths, s.rngs
}

func (s *stub) proxy(t *testing.T, edit func(*Config)) (*Proxy, *clock) {
	p, _, c := serve(t, edit, func(context.Context, id.UserID) (string, string, bool) {
		return s.srv.URL + "/", "tok", true
	})
	return p, c
}

var stubMXC = id.ContentURI{Homeserver: "example.org", FileID: "media1"}

const stubUser = id.UserID("@u:other.example")

func TestLegacyFallback(t *testing.T) {
	data := randomBytes(500)
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_matrix/client/v1/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`)
			return
		}
		w.Header().Set("Content-Type", "image/webp")
		w.Write(data)
	})
	p, _ := s.proxy(t, nil)
	resp, body := fetch(t, http.MethodGet, p.Link(stubUser, stubMXC, "a.webp"))
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		t.Error("wrong body")
	}
	wantHeader(t, resp, "Content-Type", "image/webp")
	want := []string{
		"/_matrix/client/v1/media/download/example.org/media1",
		"/_matrix/media/v3/download/example.org/media1?allow_redirect=true",
	}
	if paths, auths, _ := s.seen(); fmt.Sprint(paths) != fmt.Sprint(want) || auths[0] != "Bearer tok" || auths[1] != "Bearer tok" {
		t.Errorf("requests %q with %q, want %q", paths, auths, want)
	}

	// M_NOT_FOUND is an answer, not a missing endpoint: no fallback.
	s2 := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errcode":"M_NOT_FOUND"}`)
	})
	p2, _ := s2.proxy(t, nil)
	resp, body = fetch(t, http.MethodGet, p2.Link(stubUser, stubMXC, "a"))
	wantStatus(t, resp, body, http.StatusNotFound)
	if paths, _, _ := s2.seen(); len(paths) != 1 {
		t.Errorf("requests %q", paths)
	}
}

func TestUpstreamRange(t *testing.T) {
	data := randomBytes(4000)
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/webm")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
	p, _ := s.proxy(t, nil)
	resp, body := fetch(t, http.MethodGet, p.Link(stubUser, stubMXC, "v.webm"), "Range", "bytes=1000-1999")
	wantStatus(t, resp, body, http.StatusPartialContent)
	if !bytes.Equal(body, data[1000:2000]) {
		t.Error("wrong bytes")
	}
	wantHeader(t, resp, "Content-Range", "bytes 1000-1999/4000")
	wantHeader(t, resp, "Content-Length", "1000")
	if _, _, rngs := s.seen(); rngs[0] != "bytes=1000-1999" {
		t.Errorf("Range sent upstream: %q", rngs[0])
	}

	resp, body = fetch(t, http.MethodGet, p.Link(stubUser, stubMXC, "v.webm"), "Range", "bytes=9000-")
	wantStatus(t, resp, body, http.StatusRequestedRangeNotSatisfiable)
	wantHeader(t, resp, "Content-Range", "bytes */4000")

	// The total size of a 206 counts against MaxBytes.
	small, _ := s.proxy(t, func(c *Config) { c.MaxBytes = 3999 })
	resp, body = fetch(t, http.MethodGet, small.Link(stubUser, stubMXC, "v.webm"), "Range", "bytes=0-9")
	wantStatus(t, resp, body, http.StatusBadGateway)
}

func TestUpstreamFailures(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:] {
		case "e500":
			w.WriteHeader(http.StatusInternalServerError)
		case "e502":
			w.WriteHeader(http.StatusBadGateway)
		case "e403":
			w.WriteHeader(http.StatusForbidden)
		case "e401":
			w.WriteHeader(http.StatusUnauthorized)
		case "e429":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "redirect":
			// Followed, to an error.
			http.Redirect(w, r, "/elsewhere/e500", http.StatusFound)
		case "slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "badrange":
			w.Header().Set("Content-Range", "bytes 0-1/x")
			w.WriteHeader(http.StatusPartialContent)
		}
	})
	p, _ := s.proxy(t, nil)
	p.headerTimeout = 300 * time.Millisecond
	for media, want := range map[string]int{
		"e500": http.StatusBadGateway, "e502": http.StatusBadGateway,
		"e403": http.StatusNotFound, "e401": http.StatusBadGateway,
		"e429": http.StatusServiceUnavailable, "redirect": http.StatusBadGateway,
		"slow": http.StatusBadGateway, "badrange": http.StatusBadGateway,
	} {
		start := time.Now()
		resp, body := fetch(t, http.MethodGet, p.Link(stubUser, id.ContentURI{Homeserver: "example.org", FileID: media}, "f"))
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", media, resp.StatusCode, want)
		}
		if media == "e429" {
			wantHeader(t, resp, "Retry-After", "7")
		}
		if media == "slow" && time.Since(start) > 10*time.Second {
			t.Errorf("header timeout took %v", time.Since(start))
		}
		if resp.Header.Get("Content-Disposition") != "" || len(body) > 100 {
			t.Errorf("%s: error response %q with %q", media, resp.Header, body)
		}
	}

	// A homeserver that cannot be reached at all.
	dead, _, _ := serve(t, nil, func(context.Context, id.UserID) (string, string, bool) { return "http://127.0.0.1:1", "t", true })
	resp, body := fetch(t, http.MethodGet, dead.Link(stubUser, stubMXC, "f"))
	wantStatus(t, resp, body, http.StatusBadGateway)
}

// Without Content-Length the limit is enforced while streaming: the client
// gets at most MaxBytes and then a broken download, never a complete-looking
// truncated file.
func TestMaxBytesWhileStreaming(t *testing.T) {
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		for range 10 {
			w.Write(bytes.Repeat([]byte("z"), 500))
			w.(http.Flusher).Flush()
		}
	})
	p, _ := s.proxy(t, func(c *Config) { c.MaxBytes = 1200 })
	resp, body, err := tryFetch(http.MethodGet, p.Link(stubUser, stubMXC, "a.zip"))
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("download of an oversized chunked body: %v, want unexpected EOF", err)
	}
	if resp.StatusCode != http.StatusOK || len(body) > 1200 {
		t.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
	}

	// A chunked body of exactly MaxBytes is complete.
	p2, _ := s.proxy(t, func(c *Config) { c.MaxBytes = 5000 })
	resp, body = fetch(t, http.MethodGet, p2.Link(stubUser, stubMXC, "a.zip"))
	wantStatus(t, resp, body, http.StatusOK)
	if len(body) != 5000 || resp.ContentLength != -1 {
		t.Errorf("%d bytes, Content-Length %d", len(body), resp.ContentLength)
	}
}

// A body that ends before its Content-Length is a failed download.
func TestUpstreamTruncated(t *testing.T) {
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write(make([]byte, 400))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	p, _ := s.proxy(t, nil)
	_, body, err := tryFetch(http.MethodGet, p.Link(stubUser, stubMXC, "t.bin"))
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) > 400 {
		t.Errorf("%d bytes, err %v; want unexpected EOF", len(body), err)
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan bool, 1)
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Write(make([]byte, 100))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(20 * time.Second):
			cancelled <- false
		}
	})
	p, _ := s.proxy(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Link(stubUser, stubMXC, "live.mp4"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	if !<-cancelled {
		t.Fatal("upstream request still running 20 s after the client left")
	}
}

func TestLinkEscaping(t *testing.T) {
	p, srv, _ := serve(t, nil, noTokens)
	link := p.Link(stubUser, stubMXC, "a b/c?d#e.png")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(link, srv.URL+"/") || !strings.HasSuffix(link, "/c_d_e.png") {
		t.Errorf("link %q", link)
	}
	if strings.ContainsAny(link, " \x00\r\n") {
		t.Errorf("link %q has characters IRC clients would split on", link)
	}
	if len(link) > len(srv.URL)+120 {
		t.Errorf("link is %d bytes long", len(link))
	}
}
