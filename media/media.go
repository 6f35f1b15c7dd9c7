// Package media serves Matrix media (mxc:// URIs) to IRC users.
//
// Homeservers require authentication to download media (MSC3916), which IRC
// clients and browsers cannot provide. Proxy.Link turns an mxc URI into a
// short-lived HTTPS link signed with a server-side key; Proxy.ServeHTTP checks
// the signature and streams the file from the homeserver with the access
// token of the account the link was made for.
//
// A link is a bearer capability: whoever holds it can download that one file
// as that account until it expires. Its last path segment is only a file name
// for browsers and is not signed; changing it renames the download and grants
// nothing else.
package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// TokenSource gives the homeserver base URL and access token to download with
// for a Matrix user; ok=false when the gateway has no live login for them. It
// is called from HTTP server goroutines, concurrently, with a context that
// ends with the request.
type TokenSource func(ctx context.Context, user id.UserID) (homeserverURL, accessToken string, ok bool)

// Defaults for zero Config fields.
const (
	DefaultTTL      = 24 * time.Hour
	DefaultMaxBytes = 100 << 20
	DefaultTimeout  = 10 * time.Minute
	// MinKeyLen is the shortest HMAC key New accepts.
	MinKeyLen = 32
)

// headerTimeout bounds the wait for the homeserver's response headers; the
// body then has until Config.Timeout.
const headerTimeout = 30 * time.Second

// Config configures a Proxy.
type Config struct {
	// PublicURL is the base URL IRC users' browsers reach the proxy at, e.g.
	// "https://irc.example.org/media" or "http://127.0.0.1:8080".
	PublicURL string
	// Key signs links (HMAC-SHA256); at least MinKeyLen bytes. Changing it
	// invalidates every link handed out.
	Key []byte
	// TTL is how long a link works (DefaultTTL if zero).
	TTL time.Duration
	// MaxBytes is the largest file proxied (DefaultMaxBytes if zero). It is
	// checked against Content-Length and enforced while streaming.
	MaxBytes int64
	// Timeout caps one proxied request, headers and body (DefaultTimeout if
	// zero). The homeserver must send response headers within 30 s (or
	// Timeout, if shorter).
	Timeout time.Duration
	// HTTPClient talks to homeservers (a plain http.Client if nil). Its
	// Timeout, if any, also applies.
	HTTPClient *http.Client
	// Logger gets one line per failed download (slog.Default() if nil).
	Logger *slog.Logger
}

// Proxy makes signed media links and serves them. It is immutable after New
// and safe for concurrent use.
type Proxy struct {
	base          string // PublicURL without trailing slash
	prefix        string // escaped path of PublicURL without trailing slash
	key           []byte
	ttl           time.Duration
	maxBytes      int64
	timeout       time.Duration
	headerTimeout time.Duration
	client        *http.Client
	log           *slog.Logger
	tokens        TokenSource
	now           func() time.Time // time.Now; tests set their own clock
}

// New validates cfg and returns a Proxy that downloads with tokens.
func New(cfg Config, tokens TokenSource) (*Proxy, error) {
	if tokens == nil {
		return nil, errors.New("media: nil TokenSource")
	}
	if len(cfg.Key) < MinKeyLen {
		return nil, fmt.Errorf("media: key is %d bytes, need at least %d", len(cfg.Key), MinKeyLen)
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("media: public URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("media: public URL %q must be an absolute http(s) URL without user info, query or fragment", cfg.PublicURL)
	}
	if cfg.TTL < 0 || cfg.MaxBytes < 0 || cfg.Timeout < 0 {
		return nil, errors.New("media: TTL, MaxBytes and Timeout must not be negative")
	}
	p := &Proxy{
		prefix:   strings.TrimRight(u.EscapedPath(), "/"),
		key:      append([]byte(nil), cfg.Key...),
		ttl:      orDefault(cfg.TTL, DefaultTTL),
		maxBytes: orDefault(cfg.MaxBytes, DefaultMaxBytes),
		timeout:  orDefault(cfg.Timeout, DefaultTimeout),
		client:   cfg.HTTPClient,
		log:      cfg.Logger,
		tokens:   tokens,
		now:      time.Now,
	}
	u.Path, u.RawPath = "", ""
	p.base = u.String() + p.prefix
	p.headerTimeout = min(headerTimeout, p.timeout)
	if p.client == nil {
		p.client = &http.Client{}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p, nil
}

func orDefault[T int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Link returns a URL that downloads mxc as user until the TTL passes, or ""
// if user or mxc cannot be served (empty, malformed, or unsafe to put in a
// download path). filename, sanitised, becomes the last path segment and the
// name browsers save the file under; if it is empty the media ID is used.
// Safe for concurrent use.
func (p *Proxy) Link(user id.UserID, mxc id.ContentURI, filename string) string {
	if !validUser(user) || !validMXC(mxc) {
		return ""
	}
	payload, sig := sign(p.key, claims{User: user, Media: mxc, Expiry: p.now().Add(p.ttl).Unix()})
	return p.base + "/" + payload + "/" + sig + "/" + url.PathEscape(downloadName(filename, mxc))
}

// downloadName is the sanitised filename, else the sanitised media ID, else
// "file".
func downloadName(filename string, mxc id.ContentURI) string {
	if n := sanitizeFilename(filename); n != "" {
		return n
	}
	if n := sanitizeFilename(mxc.FileID); n != "" {
		return n
	}
	return "file"
}

const maxFilenameBytes = 80

// sanitizeFilename keeps the base name of s and makes it safe for a URL path
// segment, a Content-Disposition header and common file systems: no path
// separators, control or bidi-formatting characters, reserved punctuation,
// or leading and trailing dots and spaces; at most maxFilenameBytes bytes,
// keeping the extension when shortening.
func sanitizeFilename(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError, isControl(r), unicode.Is(unicode.Cf, r), unicode.IsSpace(r) && r != ' ':
			return -1
		case strings.ContainsRune(`"*:<>?|%#;`, r):
			return '_'
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.Trim(s, " .")
	if len(s) <= maxFilenameBytes {
		return s
	}
	ext := path.Ext(s)
	if len(ext) > 16 || len(ext) >= maxFilenameBytes/2 {
		ext = ""
	}
	stem := s[:len(s)-len(ext)]
	cut := maxFilenameBytes - len(ext)
	for cut > 0 && !utf8.RuneStart(stem[cut]) {
		cut--
	}
	return strings.Trim(stem[:cut], " .") + ext
}

// csp keeps anything a browser does render from running script or loading
// other resources; media-src and inline styles are what browsers' own image
// and video viewer pages need.
const csp = "sandbox; default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; media-src 'self'"

// ServeHTTP serves a link made by Link. It answers GET and HEAD (405
// otherwise); 404 for a link that is malformed, wrongly signed, for a user
// without a live login or for missing media; 410 for an expired link; 502
// when the homeserver fails, times out, or the file exceeds MaxBytes. The
// request path may carry PublicURL's path prefix or have it stripped.
// A single byte range is served as 206, by the homeserver if it supports
// ranges, else here.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		fail(w, http.StatusMethodNotAllowed)
		return
	}
	payload, sig, name, ok := p.splitPath(r)
	if !ok {
		fail(w, http.StatusNotFound)
		return
	}
	c, err := verify(p.key, payload, sig)
	if err != nil {
		fail(w, http.StatusNotFound)
		return
	}
	remaining := time.Unix(c.Expiry, 0).Sub(p.now())
	if remaining <= 0 {
		fail(w, http.StatusGone)
		return
	}
	log := p.log.With("user", c.User, "mxc", c.Media.String())

	// The request's context ends when the client goes away, which cancels
	// the download from the homeserver too.
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	hsURL, token, ok := p.tokens(ctx, c.User)
	if !ok {
		log.Debug("media: no live login for the link's user")
		fail(w, http.StatusNotFound)
		return
	}
	resp, err := p.fetch(ctx, hsURL, token, c.Media, r)
	if err != nil {
		if r.Context().Err() == nil {
			log.Warn("media: download failed", "err", err)
		}
		fail(w, http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	switch s := resp.StatusCode; {
	case s == http.StatusOK || s == http.StatusPartialContent:
		p.stream(w, r, resp, c.Media, name, remaining, log)
	case s == http.StatusNotModified:
		copyHeaders(h, resp.Header, "ETag", "Last-Modified")
		h.Set("Cache-Control", cacheControl(remaining))
		w.WriteHeader(http.StatusNotModified)
	case s == http.StatusRequestedRangeNotSatisfiable:
		copyHeaders(h, resp.Header, "Content-Range")
		fail(w, s)
	case s == http.StatusUnauthorized:
		// The login the token source vouched for is gone or broken.
		log.Warn("media: homeserver refused the access token")
		fail(w, http.StatusBadGateway)
	case s == http.StatusTooManyRequests:
		copyHeaders(h, resp.Header, "Retry-After")
		fail(w, http.StatusServiceUnavailable)
	case s >= 400 && s < 500:
		log.Debug("media: homeserver has no such media", "status", s)
		fail(w, http.StatusNotFound)
	default:
		log.Warn("media: homeserver error", "status", s)
		fail(w, http.StatusBadGateway)
	}
}

// splitPath returns the three segments of a link's path, the filename
// unescaped.
func (p *Proxy) splitPath(r *http.Request) (payload, sig, name string, ok bool) {
	escaped := r.URL.EscapedPath()
	if p.prefix != "" {
		if rest, found := strings.CutPrefix(escaped, p.prefix+"/"); found {
			escaped = "/" + rest
		}
	}
	parts := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	name, err := url.PathUnescape(parts[2])
	if err != nil {
		return "", "", "", false
	}
	return parts[0], parts[1], name, true
}

func fail(w http.ResponseWriter, code int) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Content-Disposition")
	http.Error(w, http.StatusText(code), code)
}

func copyHeaders(dst, src http.Header, names ...string) {
	for _, n := range names {
		if v := src.Get(n); v != "" {
			dst.Set(n, v)
		}
	}
}

func cacheControl(remaining time.Duration) string {
	return "private, max-age=" + strconv.FormatInt(int64(remaining/time.Second), 10)
}

var errHeaderTimeout = errors.New("homeserver sent no response headers in time")

// fetch asks the homeserver for the media with the authenticated endpoint,
// and once more with the legacy unauthenticated one if the server does not
// know the former. Range and conditional headers of r are forwarded.
func (p *Proxy) fetch(ctx context.Context, hsURL, token string, m id.ContentURI, r *http.Request) (*http.Response, error) {
	base := strings.TrimRight(hsURL, "/")
	tail := url.PathEscape(m.Homeserver) + "/" + url.PathEscape(m.FileID)
	endpoints := []string{
		base + "/_matrix/client/v1/media/download/" + tail,
		base + "/_matrix/media/v3/download/" + tail + "?allow_redirect=true",
	}
	for i, u := range endpoints {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		// The legacy endpoint needs no token, but servers that have it behind
		// authentication accept one; it goes to the same server either way,
		// and http.Client drops it on redirects to other hosts.
		req.Header.Set("Authorization", "Bearer "+token)
		// Transparent gzip would hide the real length and break ranges.
		req.Header.Set("Accept-Encoding", "identity")
		if rg := r.Header.Get("Range"); rg != "" {
			req.Header.Set("Range", rg)
			copyHeaders(req.Header, r.Header, "If-Range")
		}
		copyHeaders(req.Header, r.Header, "If-None-Match", "If-Modified-Since")
		resp, err := p.do(req)
		if err != nil {
			return nil, err
		}
		if i == 0 && unrecognized(resp) {
			resp.Body.Close()
			continue
		}
		return resp, nil
	}
	panic("unreachable")
}

// do sends req, giving up if the response headers take longer than
// p.headerTimeout. The body may then take until req's context ends.
func (p *Proxy) do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(p.headerTimeout, func() { cancel(errHeaderTimeout) })
	resp, err := p.client.Do(req.WithContext(ctx))
	if !timer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		return nil, errHeaderTimeout
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel(nil)
	return err
}

// unrecognized reports whether resp says the server does not know the
// endpoint (servers without authenticated media answer 404 or 405
// M_UNRECOGNIZED). It consumes the body of such error responses.
func unrecognized(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest:
	default:
		return false
	}
	var e struct {
		ErrCode string `json:"errcode"`
	}
	err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
	return err == nil && e.ErrCode == "M_UNRECOGNIZED"
}

// stream answers with the homeserver's 200 or 206 response.
func (p *Proxy) stream(w http.ResponseWriter, r *http.Request, resp *http.Response, m id.ContentURI, name string, remaining time.Duration, log *slog.Logger) {
	h := w.Header()
	status := resp.StatusCode
	length := resp.ContentLength // of the body, -1 if unknown
	size := length               // of the whole file, -1 if unknown
	if status == http.StatusPartialContent {
		var ok bool
		if size, ok = rangeTotal(resp.Header.Get("Content-Range")); !ok {
			log.Warn("media: homeserver sent 206 with a bad Content-Range", "content_range", resp.Header.Get("Content-Range"))
			fail(w, http.StatusBadGateway)
			return
		}
	}
	if size > p.maxBytes || length > p.maxBytes {
		log.Info("media: file too large to proxy", "bytes", max(size, length), "max_bytes", p.maxBytes)
		fail(w, http.StatusBadGateway)
		return
	}

	// The homeserver may ignore Range (Dendrite does); then serve the range
	// here from its full response.
	var skip int64
	if status == http.StatusOK && size >= 0 {
		h.Set("Accept-Ranges", "bytes")
		if rg := r.Header.Get("Range"); rg != "" && r.Header.Get("If-Range") == "" {
			start, n, ok := parseRange(rg, size)
			switch {
			case ok && n < 0:
				h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
				fail(w, http.StatusRequestedRangeNotSatisfiable)
				return
			case ok:
				status, skip, length = http.StatusPartialContent, start, n
				h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, size))
			}
		}
	} else if status == http.StatusPartialContent {
		copyHeaders(h, resp.Header, "Content-Range")
		h.Set("Accept-Ranges", "bytes")
	}

	ct, inline := contentType(resp.Header.Get("Content-Type"))
	disposition := "attachment"
	if inline {
		disposition = "inline"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": downloadName(name, m)}))
	h.Set("Cache-Control", cacheControl(remaining))
	copyHeaders(h, resp.Header, "ETag", "Last-Modified")
	if length >= 0 {
		h.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}

	if skip > 0 {
		if _, err := io.CopyN(io.Discard, resp.Body, skip); err != nil {
			p.abort(r, log, fmt.Errorf("skipping to the range: %w", err))
		}
	}
	limit := p.maxBytes
	if length >= 0 {
		limit = length
	}
	n, err := copyFlushing(w, io.LimitReader(resp.Body, limit))
	switch {
	case err != nil:
		p.abort(r, log, err)
	case length >= 0 && n < length:
		p.abort(r, log, fmt.Errorf("body ended after %d of %d bytes", n, length))
	case length < 0 && n == limit:
		// Without a length the body might go on past MaxBytes.
		var b [1]byte
		if k, _ := io.ReadFull(resp.Body, b[:]); k > 0 {
			log.Info("media: file too large to proxy, cut off", "max_bytes", p.maxBytes)
			p.abort(r, log, nil)
		}
	}
}

// copyFlushing copies src to w, flushing after each write, so that what a
// slow homeserver sends reaches the client at once (video can start playing)
// rather than waiting in the response buffer.
func copyFlushing(w http.ResponseWriter, src io.Reader) (int64, error) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			wk, werr := w.Write(buf[:k])
			n += int64(wk)
			if werr != nil {
				return n, werr
			}
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return n, err
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// abort ends a response whose headers are sent so that the client sees the
// download fail (the connection is closed without finishing the body)
// rather than a truncated file that looks complete.
func (p *Proxy) abort(r *http.Request, log *slog.Logger, err error) {
	if err != nil && r.Context().Err() == nil {
		log.Warn("media: download interrupted", "err", err)
	}
	panic(http.ErrAbortHandler)
}

// rangeTotal parses the complete length from a 206's Content-Range
// ("bytes 0-99/1234" or "bytes 0-99/*", the latter giving -1).
func rangeTotal(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	_, total, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, false
	}
	if total == "*" {
		return -1, true
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil && n >= 0
}

// parseRange interprets a Range header against a file of size bytes. Only a
// single byte range is understood; for anything else ok is false and the
// whole file should be served. An unsatisfiable range gives ok with n = -1.
func parseRange(header string, size int64) (start, n int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(header), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // suffix: the last N bytes
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k < 0 {
			return 0, 0, false
		}
		if k == 0 || size == 0 {
			return 0, -1, true
		}
		k = min(k, size)
		return size - k, k, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	if s >= size {
		return 0, -1, true
	}
	return s, e - s + 1, true
}

// inlineTypes are shown in the browser; everything else is an attachment.
// Images, audio and video (other than the active types contentType
// replaces) are inline too. PDF is not: the spec leaves it out, and under the
// sandbox CSP Chrome's viewer would not show it anyway.
var inlineTypes = map[string]bool{
	"text/plain":          true,
	"text/csv":            true,
	"text/css":            true,
	"application/json":    true,
	"application/ld+json": true,
}

// activeMarkers flag media types a browser may run as a document or script.
var activeMarkers = []string{
	"html", "xml", "svg", "javascript", "ecmascript", "jscript", "vbscript",
	"xsl", "multipart/", "shockwave", "futuresplash", "mathml", "cache-manifest",
}

// contentType turns the homeserver's Content-Type into the one served, and
// says whether it may be shown inline. Missing, malformed and active types
// become application/octet-stream; only a charset parameter is kept.
func contentType(raw string) (ct string, inline bool) {
	mt, params, err := mime.ParseMediaType(raw)
	mt = strings.ToLower(mt)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream", false
	}
	for _, m := range activeMarkers {
		if strings.Contains(mt, m) {
			return "application/octet-stream", false
		}
	}
	major, _, _ := strings.Cut(mt, "/")
	inline = inlineTypes[mt] || major == "image" || major == "audio" || major == "video"
	if cs := params["charset"]; cs != "" && major == "text" {
		if s := mime.FormatMediaType(mt, map[string]string{"charset": cs}); s != "" {
			return s, inline
		}
	}
	return mt, inline
}
