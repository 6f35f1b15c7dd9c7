package wsconn

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// serve runs l behind a test HTTP server and returns its ws:// URL.
func serve(t testing.TB, cfg Config) (*Listener, string) {
	t.Helper()
	var l *Listener
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l.ServeHTTP(w, r) }))
	l = NewListener(srv.Listener.Addr(), cfg)
	t.Cleanup(func() { l.Close(); srv.Close() })
	return l, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t testing.TB, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func accept(t testing.TB, l *Listener) *Conn {
	t.Helper()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc.(*Conn)
}

func read(t *testing.T, ws *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(b)
}

func write(t *testing.T, ws *websocket.Conn, typ websocket.MessageType, s string) {
	t.Helper()
	if err := ws.Write(context.Background(), typ, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func TestSubprotocolFollowsClientPreference(t *testing.T) {
	for _, tc := range []struct {
		offer []string
		want  string
		typ   websocket.MessageType
	}{
		{[]string{"text.ircv3.net", "binary.ircv3.net"}, TextProtocol, websocket.MessageText},
		{[]string{"binary.ircv3.net", "text.ircv3.net"}, BinaryProtocol, websocket.MessageBinary},
		{[]string{"chat", "text.ircv3.net"}, TextProtocol, websocket.MessageText},
		{nil, "", websocket.MessageBinary},
	} {
		l, url := serve(t, Config{})
		ws := dial(t, url, &websocket.DialOptions{Subprotocols: tc.offer})
		if ws.Subprotocol() != tc.want {
			t.Errorf("offer %v: agreed %q, want %q", tc.offer, ws.Subprotocol(), tc.want)
		}
		c := accept(t, l)
		if c.Subprotocol() != tc.want {
			t.Errorf("offer %v: server side %q, want %q", tc.offer, c.Subprotocol(), tc.want)
		}
		c.Write([]byte("PING :x\r\n"))
		if typ, line := read(t, ws); typ != tc.typ || line != "PING :x" {
			t.Errorf("offer %v: got %v %q, want %v %q", tc.offer, typ, line, tc.typ, "PING :x")
		}
	}
}

func TestLinesAndMessages(t *testing.T) {
	l, url := serve(t, Config{})
	ws := dial(t, url, &websocket.DialOptions{Subprotocols: []string{TextProtocol}})
	c := accept(t, l)

	// One message per line, partial lines held back until complete,
	// invalid UTF-8 replaced in text messages.
	c.Write([]byte("one\r\ntw"))
	c.Write([]byte("o\r\nbad \xff byte\r\n"))
	for _, want := range []string{"one", "two", "bad \uFFFD byte"} {
		if _, got := read(t, ws); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}

	// Each message is a line with CRLF; empty messages are skipped and
	// a trailing CRLF is forgiven.
	write(t, ws, websocket.MessageText, "NICK alice")
	write(t, ws, websocket.MessageText, "")
	write(t, ws, websocket.MessageBinary, "USER a 0 * :A\r\n")
	r := bufio.NewReader(c)
	for _, want := range []string{"NICK alice\r\n", "USER a 0 * :A\r\n"} {
		got, err := r.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
}

func TestMessageNotOneLineIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, msg, reason string
		code              websocket.StatusCode
	}{
		{"too long", "PRIVMSG #a :" + strings.Repeat("x", MaxMessage), "Message too long", websocket.StatusMessageTooBig},
		{"two lines", "PRIVMSG #a :hi\r\nQUIT", "Line break or NUL", websocket.StatusInvalidFramePayloadData},
		{"NUL", "PRIVMSG #a :a\x00b", "Line break or NUL", websocket.StatusInvalidFramePayloadData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, url := serve(t, Config{})
			ws := dial(t, url, &websocket.DialOptions{Subprotocols: []string{TextProtocol}})
			c := accept(t, l)
			readErr := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 100))
				readErr <- err
			}()
			write(t, ws, websocket.MessageText, tc.msg)
			if _, line := read(t, ws); !strings.HasPrefix(line, "ERROR :"+tc.reason) {
				t.Fatalf("got %q, want an ERROR saying %q", line, tc.reason)
			}
			_, _, err := ws.Read(context.Background())
			if code := websocket.CloseStatus(err); code != tc.code {
				t.Fatalf("closed with %v (%v), want %v", code, err, tc.code)
			}
			if err := <-readErr; err == nil {
				t.Fatal("Read returned no error")
			}
		})
	}

	// Just within the limit is one line.
	l, url := serve(t, Config{})
	ws := dial(t, url, nil)
	c := accept(t, l)
	long := "PRIVMSG #a :" + strings.Repeat("x", MaxMessage-len("PRIVMSG #a :"))
	write(t, ws, websocket.MessageBinary, long)
	got, err := bufio.NewReaderSize(c, 2*MaxMessage).ReadString('\n')
	if err != nil || got != long+"\r\n" {
		t.Fatalf("a message of %d bytes: %v", len(long), err)
	}
}

func TestOrigins(t *testing.T) {
	l, url := serve(t, Config{Origins: []string{"https://chat.example.org"}})
	ctx := context.Background()
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, response %v; want 403", err, resp)
	}
	go func() {
		for {
			if _, err := l.Accept(); err != nil {
				return
			}
		}
	}()
	dial(t, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://CHAT.example.org"}}})
	dial(t, url, nil) // no Origin: not a browser

	_, anyURL := serve(t, Config{Origins: []string{"*"}})
	dial(t, anyURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}).CloseNow()
}

func TestClientAddressAndAdmit(t *testing.T) {
	var admitted []string
	cfg := Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
		Admit: func(a net.Addr) (func(), string) {
			admitted = append(admitted, a.(*net.TCPAddr).IP.String())
			if len(admitted) > 2 {
				return nil, "too many connections from your address"
			}
			return func() {}, ""
		},
	}
	l, url := serve(t, cfg)
	go func() {
		for {
			if _, err := l.Accept(); err != nil {
				return
			}
		}
	}()
	// The client is the last hop that is not a trusted proxy; what it
	// claims before that is not believed.
	dial(t, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {"6.6.6.6, 192.0.2.7, 10.1.1.1"}}})
	dial(t, url, nil)
	_, resp, err := websocket.Dial(context.Background(), url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the cap: err %v, response %v; want 503", err, resp)
	}
	if want := []string{"192.0.2.7", "127.0.0.1", "127.0.0.1"}; strings.Join(admitted, " ") != strings.Join(want, " ") {
		t.Fatalf("admitted %v, want %v", admitted, want)
	}

	// From an untrusted peer the header is ignored.
	l2, url2 := serve(t, Config{})
	dial(t, url2, &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {"192.0.2.7"}}})
	if c := accept(t, l2); !strings.HasPrefix(c.RemoteAddr().String(), "127.0.0.1:") {
		t.Fatalf("remote %v, want the TCP peer", c.RemoteAddr())
	}
}

func TestCloseReleasesAndStopsAccept(t *testing.T) {
	released := 0
	l, url := serve(t, Config{Admit: func(net.Addr) (func(), string) { return func() { released++ }, "" }})
	ws := dial(t, url, nil)
	c := accept(t, l)
	c.Close()
	c.Close()
	if _, _, err := ws.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("client saw %v, want a normal close", err)
	}
	if released != 1 {
		t.Fatalf("released %d times, want 1", released)
	}
	l.Close()
	if _, err := l.Accept(); err != net.ErrClosed {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// BenchmarkBurst writes a connect burst's worth of lines (100 of ~120 bytes,
// as ircd's writer hands them over: one Write) and reads them as a client.
func BenchmarkBurst(b *testing.B) {
	for _, proto := range []string{TextProtocol, BinaryProtocol} {
		b.Run(proto, func(b *testing.B) {
			l, url := serve(b, Config{})
			ws := dial(b, url, &websocket.DialOptions{Subprotocols: []string{proto}})
			c := accept(b, l)
			line := ":bob!bob@example.org PRIVMSG #fosdem :" + strings.Repeat("a line of text ", 5) + "\r\n"
			burst := []byte(strings.Repeat(line, 100))
			ctx := context.Background()
			b.SetBytes(int64(len(burst)))
			b.ResetTimer()
			for range b.N {
				done := make(chan error, 1)
				go func() {
					_, err := c.Write(burst)
					done <- err
				}()
				for range 100 {
					if _, _, err := ws.Read(ctx); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
