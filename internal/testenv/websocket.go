package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WebSocketIRC is an IRC client connection over WebSocket as the IRCv3
// WebSocket spec has clients speak: one line per message, no CRLF. It is a
// net.Conn of CRLF-terminated lines for NewIRCClient, and records the
// types of the messages the server sent.
type WebSocketIRC struct {
	ws *websocket.Conn

	readBuf []byte

	mu    sync.Mutex
	types map[websocket.MessageType]int
}

// DialWebSocketIRC connects to url (ws:// or wss://, whose certificate is
// not checked) asking for the subprotocols given, with header added to the
// request. It fails the test if the upgrade fails.
func DialWebSocketIRC(t testing.TB, url string, header http.Header, subprotocols ...string) (*IRCClient, *WebSocketIRC) {
	t.Helper()
	ws, resp, err := DialWebSocket(url, header, subprotocols...)
	if err != nil {
		t.Fatalf("WebSocket to %s: %v (response %v)", url, err, resp)
	}
	conn := &WebSocketIRC{ws: ws, types: map[websocket.MessageType]int{}}
	return newIRCClient(t, conn), conn
}

// DialWebSocket upgrades a request to url, not checking certificates.
func DialWebSocket(url string, header http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultIRCTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header, Subprotocols: subprotocols})
	if err == nil {
		ws.SetReadLimit(1 << 20)
	}
	return ws, resp, err
}

// Subprotocol is the one the server agreed to.
func (c *WebSocketIRC) Subprotocol() string { return c.ws.Subprotocol() }

// MessageTypes counts the server's messages by type.
func (c *WebSocketIRC) MessageTypes() (text, binary int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types[websocket.MessageText], c.types[websocket.MessageBinary]
}

func (c *WebSocketIRC) Read(p []byte) (int, error) {
	for len(c.readBuf) == 0 {
		typ, msg, err := c.ws.Read(context.Background())
		if err != nil {
			return 0, err
		}
		c.mu.Lock()
		c.types[typ]++
		c.mu.Unlock()
		c.readBuf = append(msg, '\r', '\n')
	}
	n := copy(p, c.readBuf)
	c.readBuf = c.readBuf[n:]
	return n, nil
}

// Write sends each line of p as a message of the agreed type (binary when
// none was agreed).
func (c *WebSocketIRC) Write(p []byte) (int, error) {
	typ := websocket.MessageBinary
	if c.ws.Subprotocol() == "text.ircv3.net" {
		typ = websocket.MessageText
	}
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultIRCTimeout)
		err := c.ws.Write(ctx, typ, line)
		cancel()
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *WebSocketIRC) Close() error                     { return c.ws.CloseNow() }
func (c *WebSocketIRC) LocalAddr() net.Addr              { return wsAddr{} }
func (c *WebSocketIRC) RemoteAddr() net.Addr             { return wsAddr{} }
func (c *WebSocketIRC) SetDeadline(time.Time) error      { return nil }
func (c *WebSocketIRC) SetReadDeadline(time.Time) error  { return nil }
func (c *WebSocketIRC) SetWriteDeadline(time.Time) error { return nil }

type wsAddr struct{}

func (wsAddr) Network() string { return "websocket" }
func (wsAddr) String() string  { return "websocket" }
