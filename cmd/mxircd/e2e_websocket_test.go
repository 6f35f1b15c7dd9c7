package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// allowedOrigin is the one web page webGateway lets browsers connect from.
const allowedOrigin = "http://allowed.example"

// webGateway is a test gateway with every kind of listener: plaintext and
// TLS IRC (with STS on), and WebSocket on plaintext and TLS (wsAddrs[0]
// and [1]). origins are the web pages that may connect.
func webGateway(t *testing.T, hs *testenv.Homeserver, driver string, origins ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cert, key, 1)
	return startTestGateway(t, gatewayConfig(t, hs, driver, func(c *Config) {
		c.IRC.TLS.Cert, c.IRC.TLS.Key = cert, key
		c.IRC.TLS.Listen = []string{freeAddr(t)} // a real port, for sts=port
		c.IRC.TLS.STSDuration = "720h"
		c.IRC.WebSocket.Listen = []string{"127.0.0.1:0"}
		c.IRC.WebSocket.TLSListen = []string{"127.0.0.1:0"}
		c.IRC.WebSocket.Origins = append([]string{allowedOrigin}, origins...)
	}))
}

func (g *gateway) wsURL(secure bool) string {
	if secure {
		return "wss://" + g.wsAddrs[1].String() + "/"
	}
	return "ws://" + g.wsAddrs[0].String() + "/"
}

// Issue 16: web clients log in, join and talk over WebSocket, with each
// subprotocol, plain and TLS; pages not allowed are refused, and a message
// that is not one IRC line is refused in words.
func TestWebSocket(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := webGateway(t, hs, driver)
			alice, bob, room, channel := twoInARoom(t, hs, "web")

			for _, tc := range []struct {
				name, proto string
				secure      bool
			}{
				{"text over ws", "text.ircv3.net", false},
				{"binary over wss", "binary.ircv3.net", true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					// Browsers send their page's Origin.
					c, ws := testenv.DialWebSocketIRC(t, g.wsURL(tc.secure), http.Header{"Origin": {allowedOrigin}}, tc.proto)
					if ws.Subprotocol() != tc.proto {
						t.Fatalf("agreed on %q, want %q", ws.Subprotocol(), tc.proto)
					}
					c.Register(t, "alice", alice.UserID.String(), alice.Password)
					c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "end of names")

					typed := "typed in a browser, " + tc.name + " ✓"
					c.Send("PRIVMSG %s :%s", channel, typed)
					bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
						return ev.Type == event.EventMessage && ev.Content.AsMessage().Body == typed
					})
					reply := "answered from Matrix, " + tc.name + " ✓"
					if _, err := bob.Client.SendText(ctxFor(t), room, reply); err != nil {
						t.Fatal(err)
					}
					expectFrom(t, c, "PRIVMSG", bob.Localpart, reply)

					text, binary := ws.MessageTypes()
					if tc.proto == "text.ircv3.net" && (binary != 0 || text == 0) ||
						tc.proto == "binary.ircv3.net" && (text != 0 || binary == 0) {
						t.Errorf("%s: the server sent %d text and %d binary messages", tc.proto, text, binary)
					}
					c.Send("QUIT :bye")
					c.ExpectClosed(t)
				})
			}

			t.Run("origin refused", func(t *testing.T) {
				_, resp, err := testenv.DialWebSocket(g.wsURL(false), http.Header{"Origin": {"http://evil.example"}}, "text.ircv3.net")
				if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("a page not allowed: err %v, response %v; want 403", err, resp)
				}
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), "irc.websocket.origins") {
					t.Errorf("403 body %q does not say what to do", body)
				}
				// Not a browser (no Origin): let in.
				c, _ := testenv.DialWebSocketIRC(t, g.wsURL(true), nil, "text.ircv3.net")
				c.Send("PING :native")
				c.ExpectMatch(t, isCmd("PONG"), "PONG")
			})

			t.Run("oversize message refused", func(t *testing.T) {
				c, _ := testenv.DialWebSocketIRC(t, g.wsURL(false), nil, "text.ircv3.net")
				c.Send("PRIVMSG %s :%s", channel, strings.Repeat("x", 5000))
				var got []string
				for _, m := range c.ExpectClosed(t) {
					if m.Command == "ERROR" {
						got = append(got, m.Trailing())
					}
				}
				if len(got) != 1 || !strings.HasPrefix(got[0], "Message too long: an IRC line is at most 510 bytes") {
					t.Fatalf("ERROR lines %q, want one saying the message is too long", got)
				}
			})
		})
	}
}

// Issue 16: the sts capability sends plaintext IRC clients to the TLS port
// and keeps TLS clients on TLS for the configured duration; WebSocket
// clients are not given it.
func TestSTS(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := webGateway(t, hs, "sqlite")
	stsOf := func(t *testing.T, c *testenv.IRCClient) string {
		t.Helper()
		c.Send("CAP LS 302")
		m := c.ExpectMatch(t, isCmd("CAP", "*", "LS"), "CAP LS")
		for _, cp := range strings.Fields(m.Trailing()) {
			if name, value, _ := strings.Cut(cp, "="); name == "sts" {
				return value
			}
		}
		return ""
	}
	tlsAddr := g.addrs()[1].String()
	_, port, _ := strings.Cut(tlsAddr, ":")
	if got := stsOf(t, testenv.DialIRC(t, g.ircAddr())); got != "port="+port {
		t.Errorf("plaintext: sts=%q, want port=%s", got, port)
	}
	conn, _ := dialTLS(t, tlsAddr)
	if got := stsOf(t, testenv.NewIRCClient(t, conn)); got != "duration=2592000" {
		t.Errorf("TLS: sts=%q, want duration=2592000 (720h)", got)
	}
	for _, secure := range []bool{false, true} {
		c, _ := testenv.DialWebSocketIRC(t, g.wsURL(secure), nil, "text.ircv3.net")
		if got := stsOf(t, c); got != "" {
			t.Errorf("WebSocket (TLS %v): sts=%q, want none", secure, got)
		}
	}
	// Requesting it is refused: clients must not.
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("CAP REQ sts")
	c.ExpectMatch(t, isCmd("CAP", "*", "NAK"), "CAP NAK sts")
}

// Issue 16: WebSocket clients count in the IRC connection caps by their own
// address (the one a trusted proxy forwards for), together with IRC over
// TCP, and one over the cap is told why.
func TestWebSocketConnectionCaps(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := startTestGateway(t, gatewayConfig(t, hs, "sqlite", func(c *Config) {
		c.IRC.WebSocket.Listen = []string{"127.0.0.1:0"}
		c.IRC.WebSocket.TrustedProxies = []string{"127.0.0.1"}
		c.IRC.MaxConnectionsPerAddress = 2
		c.IRC.LimitExempt = nil
	}))
	url := g.wsURL(false)
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	alive := func(c *testenv.IRCClient) {
		t.Helper()
		c.Send("PING :alive")
		c.ExpectMatch(t, isCmd("PONG"), "PONG")
	}
	refused := func(header http.Header) {
		t.Helper()
		_, resp, err := testenv.DialWebSocket(url, header, "text.ircv3.net")
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("over the cap: err %v, response %v; want 503", err, resp)
		}
		if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "too many connections from your address") {
			t.Fatalf("503 body %q does not say why", body)
		}
	}

	// Two clients behind the proxy from one address; the third from it
	// is refused, one from another address is not (the proxy's own
	// address counts for nobody).
	for range 2 {
		c, _ := testenv.DialWebSocketIRC(t, url, from("192.0.2.1"), "text.ircv3.net")
		alive(c)
	}
	refused(from("192.0.2.1"))
	other, _ := testenv.DialWebSocketIRC(t, url, from("192.0.2.2"), "text.ircv3.net")
	alive(other)

	// IRC over TCP and WebSocket share the count of an address.
	alive(testenv.DialIRC(t, g.ircAddr()))
	ws, _ := testenv.DialWebSocketIRC(t, url, nil, "text.ircv3.net") // the proxy itself, as a client
	alive(ws)
	refused(nil)

	// A closed connection gives its place back.
	ws.Close()
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, _, err := testenv.DialWebSocket(url, nil, "text.ircv3.net")
		if err == nil {
			c.CloseNow()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection's place was not given back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
