package media

import (
	"bytes"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

var testKey = bytes.Repeat([]byte("k"), MinKeyLen)

func TestClaimsRoundTrip(t *testing.T) {
	for _, c := range []claims{
		{User: "@alice:example.org", Media: id.ContentURI{Homeserver: "example.org", FileID: "AbCdEf_-123"}, Expiry: 1_900_000_000},
		{User: "@alice:example.org", Media: id.ContentURI{Homeserver: "matrix.org", FileID: "x"}, Expiry: 1},
		{User: "@bob:localhost:8448", Media: id.ContentURI{Homeserver: "localhost:8448", FileID: "legacy.id=="}, Expiry: 0},
		{User: "@carol:[::1]:8448", Media: id.ContentURI{Homeserver: "[::1]", FileID: "ünïcode"}, Expiry: 42},
	} {
		payload, sig := sign(testKey, c)
		got, err := verify(testKey, payload, sig)
		if err != nil || got != c {
			t.Errorf("verify(sign(%+v)) = %+v, %v", c, got, err)
		}
	}
}

func TestPayloadIsCompact(t *testing.T) {
	c := claims{User: "@alice:example.org", Media: id.ContentURI{Homeserver: "example.org", FileID: "QwErTyUiOpAsDfGhJkLzXcVb"}, Expiry: 1_900_000_000}
	payload, sig := sign(testKey, c)
	// version, flags, 5-byte expiry, length + user, media ID: no server.
	if want := b64.EncodedLen(2 + 5 + 1 + len(c.User) + len(c.Media.FileID)); len(payload) != want {
		t.Errorf("payload is %d characters, want %d", len(payload), want)
	}
	if len(sig) != 22 {
		t.Errorf("signature is %d characters, want 22", len(sig))
	}
}

func TestVerifyRejects(t *testing.T) {
	c := claims{User: "@alice:example.org", Media: id.ContentURI{Homeserver: "example.org", FileID: "abc"}, Expiry: 99}
	payload, sig := sign(testKey, c)
	otherKey := bytes.Repeat([]byte("j"), MinKeyLen)
	p2, s2 := sign(testKey, claims{User: "@mallory:example.org", Media: c.Media, Expiry: 99})
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for name, tc := range map[string][2]string{
		"other key":          {payload, func() string { _, s := sign(otherKey, c); return s }()},
		"payload bit":        {flip(payload, 5), sig},
		"signature bit":      {payload, flip(sig, 3)},
		"swapped signature":  {payload, s2},
		"swapped payload":    {p2, sig},
		"truncated sig":      {payload, sig[:len(sig)-1]},
		"long sig":           {payload, sig + "A"},
		"empty":              {"", ""},
		"not base64":         {payload[:4] + "!" + payload[5:], sig},
		"huge payload":       {strings.Repeat("A", 5000), sig},
		"padding in payload": {payload + "=", sig},
	} {
		if got, err := verify(testKey, tc[0], tc[1]); err == nil {
			t.Errorf("%s: verified as %+v", name, got)
		}
	}
}

func TestDecodeClaimsRejectsSignedGarbage(t *testing.T) {
	// Even correctly MACed payloads must parse strictly.
	for _, p := range [][]byte{
		nil,
		{payloadVersion},
		{2, 0, 1, 0},
		{payloadVersion, 0x80},
		{payloadVersion, 0, 1, 200, '@'},
		{payloadVersion, flagSameServer, 1, 3, '@', 'a', ':'},             // user without server
		append([]byte{payloadVersion, flagSameServer, 1, 4}, "@a:b.."...), // media ID ".."
		append([]byte{payloadVersion, flagSameServer, 1, 4}, "@a:b"...),   // empty media ID
		append([]byte{payloadVersion, 0, 1, 4}, "@a:b\x01/x"...),          // server "/"
	} {
		if c, err := decodeClaims(p); err == nil {
			t.Errorf("decodeClaims(%q) = %+v", p, c)
		}
	}
}

func FuzzVerify(f *testing.F) {
	payload, sig := sign(testKey, claims{User: "@a:b", Media: id.ContentURI{Homeserver: "b", FileID: "c"}, Expiry: 5})
	f.Add(payload, sig)
	f.Add("", "")
	f.Fuzz(func(t *testing.T, payload, sig string) {
		verify(testKey, payload, sig)
		// The parser behind the MAC must not panic either.
		if b, err := b64.DecodeString(payload); err == nil {
			if c, err := decodeClaims(b); err == nil {
				if !validUser(c.User) || !validMXC(c.Media) {
					t.Fatalf("decoded invalid claims %+v", c)
				}
			}
		}
	})
}

func TestValidMXC(t *testing.T) {
	for _, tc := range []struct {
		server, media string
		ok            bool
	}{
		{"example.org", "AbC-_09", true},
		{"localhost:8448", "x", true},
		{"[::1]:8448", "x", true},
		{"example.org", "legacy.id", true},
		{"", "x", false},
		{"example.org", "", false},
		{"..", "x", false},
		{"example.org", "..", false},
		{"example.org", ".", false},
		{"example.org", "a/b", false},
		{"example.org", `a\b`, false},
		{"example.org", "a b", false},
		{"example.org", "a\x00b", false},
		{"exa/mple.org", "x", false},
		{"example.org?x", "x", false},
		{"user@example.org", "x", false},
		{"example.org", strings.Repeat("x", 256), false},
	} {
		if got := validMXC(id.ContentURI{Homeserver: tc.server, FileID: tc.media}); got != tc.ok {
			t.Errorf("validMXC(%q, %q) = %v, want %v", tc.server, tc.media, got, tc.ok)
		}
	}
}

func TestSanitizeFilename(t *testing.T) {
	long := strings.Repeat("a", 200)
	for in, want := range map[string]string{
		"pic.png":                       "pic.png",
		"holiday pic.png":               "holiday pic.png",
		"../../etc/passwd":              "passwd",
		`C:\Users\me\doc.pdf`:           "doc.pdf",
		"  .hidden.  ":                  "hidden",
		"a\x00b\nc\td.txt":              "abcd.txt",
		"evil\u202egnp.exe":             "evilgnp.exe",
		`q"u*o:t<e>s?|.txt`:             "q_u_o_t_e_s__.txt",
		"50%;#.txt":                     "50___.txt",
		"日本語.txt":                       "日本語.txt",
		"bad\xffutf8.txt":               "badutf8.txt",
		"":                              "",
		"...":                           "",
		long + ".jpeg":                  strings.Repeat("a", 75) + ".jpeg",
		long:                            strings.Repeat("a", 80),
		strings.Repeat("é", 60):         strings.Repeat("é", 40),
		"x." + strings.Repeat("e", 100): ("x." + strings.Repeat("e", 100))[:80],
	} {
		got := sanitizeFilename(in)
		if got != want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", in, got, want)
		}
		if len(got) > maxFilenameBytes {
			t.Errorf("sanitizeFilename(%q) is %d bytes", in, len(got))
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		header   string
		size     int64
		start, n int64
		ok       bool
	}{
		{"bytes=0-99", 1000, 0, 100, true},
		{"bytes=100-199", 1000, 100, 100, true},
		{"bytes=990-", 1000, 990, 10, true},
		{"bytes=990-5000", 1000, 990, 10, true},
		{"bytes=-10", 1000, 990, 10, true},
		{"bytes=-5000", 1000, 0, 1000, true},
		{"bytes=1000-", 1000, 0, -1, true},
		{"bytes=-0", 1000, 0, -1, true},
		{"bytes=0-", 0, 0, -1, true},
		{"bytes=5-2", 1000, 0, 0, false},
		{"bytes=0-1,5-6", 1000, 0, 0, false},
		{"items=0-1", 1000, 0, 0, false},
		{"bytes=x-1", 1000, 0, 0, false},
		{"bytes=1", 1000, 0, 0, false},
		{"bytes=--1", 1000, 0, 0, false},
	} {
		start, n, ok := parseRange(tc.header, tc.size)
		if ok != tc.ok || ok && (start != tc.start || n != tc.n) {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tc.header, tc.size, start, n, ok, tc.start, tc.n, tc.ok)
		}
	}
}

func TestContentType(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		inline   bool
	}{
		{"image/png", "image/png", true},
		{"IMAGE/JPEG", "image/jpeg", true},
		{"video/mp4", "video/mp4", true},
		{"audio/ogg; codecs=opus", "audio/ogg", true},
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8", true},
		{"application/pdf", "application/pdf", false},
		{"application/zip", "application/zip", false},
		{"text/html", "application/octet-stream", false},
		{"text/html; charset=utf-8", "application/octet-stream", false},
		{"application/xhtml+xml", "application/octet-stream", false},
		{"image/svg+xml", "application/octet-stream", false},
		{"text/xml", "application/octet-stream", false},
		{"application/javascript", "application/octet-stream", false},
		{"text/javascript", "application/octet-stream", false},
		{"multipart/x-mixed-replace; boundary=x", "application/octet-stream", false},
		{"", "application/octet-stream", false},
		{"garbage", "application/octet-stream", false},
		{"image/png; ===", "application/octet-stream", false},
	} {
		got, inline := contentType(tc.in)
		if got != tc.want || inline != tc.inline {
			t.Errorf("contentType(%q) = %q, %v; want %q, %v", tc.in, got, inline, tc.want, tc.inline)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg    Config
		tokens bool
	}{
		"nil tokens":    {Config{PublicURL: "http://x", Key: testKey}, false},
		"short key":     {Config{PublicURL: "http://x", Key: testKey[:31]}, true},
		"relative URL":  {Config{PublicURL: "/media", Key: testKey}, true},
		"ftp URL":       {Config{PublicURL: "ftp://x/media", Key: testKey}, true},
		"query":         {Config{PublicURL: "http://x/media?a=b", Key: testKey}, true},
		"fragment":      {Config{PublicURL: "http://x/media#a", Key: testKey}, true},
		"user info":     {Config{PublicURL: "http://u:p@x/media", Key: testKey}, true},
		"bad URL":       {Config{PublicURL: "http://[x", Key: testKey}, true},
		"negative TTL":  {Config{PublicURL: "http://x", Key: testKey, TTL: -1}, true},
		"negative max":  {Config{PublicURL: "http://x", Key: testKey, MaxBytes: -1}, true},
		"negative time": {Config{PublicURL: "http://x", Key: testKey, Timeout: -1}, true},
	} {
		var src TokenSource
		if tc.tokens {
			src = noTokens
		}
		if _, err := New(tc.cfg, src); err == nil {
			t.Errorf("%s: New accepted %+v", name, tc.cfg)
		}
	}

	p, err := New(Config{PublicURL: "https://irc.example.org/media/", Key: testKey}, noTokens)
	if err != nil {
		t.Fatal(err)
	}
	if p.ttl != DefaultTTL || p.maxBytes != DefaultMaxBytes || p.timeout != DefaultTimeout || p.client == nil || p.log == nil {
		t.Errorf("defaults not applied: %+v", p)
	}
	link := p.Link("@a:example.org", id.ContentURI{Homeserver: "example.org", FileID: "m"}, "f.png")
	if !strings.HasPrefix(link, "https://irc.example.org/media/") || strings.Count(link, "/") != 6 || !strings.HasSuffix(link, "/f.png") {
		t.Errorf("link %q", link)
	}
	for _, bad := range []struct {
		user id.UserID
		mxc  id.ContentURI
	}{
		{"", id.ContentURI{Homeserver: "example.org", FileID: "m"}},
		{"alice", id.ContentURI{Homeserver: "example.org", FileID: "m"}},
		{"@a:example.org", id.ContentURI{}},
		{"@a:example.org", id.ContentURI{Homeserver: "example.org", FileID: ".."}},
	} {
		if l := p.Link(bad.user, bad.mxc, "x"); l != "" {
			t.Errorf("Link(%q, %q) = %q, want \"\"", bad.user, bad.mxc, l)
		}
	}
}
