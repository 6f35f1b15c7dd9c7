// Package wsconn carries IRC over WebSocket as the IRCv3 WebSocket
// specification says: one IRC line per message, without its CRLF, in text
// messages for the text.ircv3.net subprotocol and binary messages for
// binary.ircv3.net (or when no subprotocol is agreed on).
//
// A Listener is both an http.Handler, which upgrades requests, and a
// net.Listener, whose Accept returns each upgraded connection as a
// net.Conn that reads and writes CRLF-terminated lines. ircd.Server.Serve
// takes it like any TCP listener, so registration, SASL, flood limits and
// the send queue work for WebSocket clients unchanged.
package wsconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// The subprotocols of the IRCv3 WebSocket specification.
const (
	TextProtocol   = "text.ircv3.net"
	BinaryProtocol = "binary.ircv3.net"
)

// MaxMessage is the longest message a client may send: the longest IRC
// line (4096 bytes of tags, 512 of message) less the CRLF, which a
// WebSocket message leaves out. Finer limits (tags apart from the rest)
// are the IRC reader's, which answers them as it does over TCP.
const MaxMessage = 4096 + 512 - 2

// Config says whom a Listener lets in.
type Config struct {
	// Origins lists the web pages (an Origin header's "scheme://host[:port]")
	// whose scripts may connect; "*" allows any. A request without Origin
	// (not a browser) is always allowed.
	Origins []string
	// TrustedProxies are peers whose X-Forwarded-For is believed: the
	// client's address is then the last address in it that is not itself
	// a trusted proxy. From anyone else the header is ignored.
	TrustedProxies []netip.Prefix
	// Admit, if set, counts a connection from the client's address
	// (netlimit's caps). A refusal reason turns the client away with 503;
	// release runs when the connection closes.
	Admit  func(addr net.Addr) (release func(), reason string)
	Logger *slog.Logger
}

// Listener upgrades HTTP requests to IRC connections.
type Listener struct {
	cfg     Config
	addr    net.Addr
	origins map[string]bool
	anyOrig bool
	log     *slog.Logger

	conns     chan *Conn
	done      chan struct{}
	closeOnce sync.Once
}

// NewListener makes a Listener whose Addr is addr (the HTTP server's).
func NewListener(addr net.Addr, cfg Config) *Listener {
	l := &Listener{
		cfg:     cfg,
		addr:    addr,
		origins: map[string]bool{},
		log:     cfg.Logger,
		conns:   make(chan *Conn),
		done:    make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	for _, o := range cfg.Origins {
		if o == "*" {
			l.anyOrig = true
		}
		l.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	return l
}

// Accept returns the next upgraded connection. Server's accept loop.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; requests upgraded after it are closed at once. The
// HTTP server that feeds the Listener is its owner's to close.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is the HTTP server's address.
func (l *Listener) Addr() net.Addr { return l.addr }

// ServeHTTP upgrades a WebSocket request and hands the connection to Accept.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" && !l.anyOrig && !l.origins[strings.ToLower(origin)] {
		l.log.Info("WebSocket refused: origin not allowed", "origin", origin, "remote", r.RemoteAddr)
		http.Error(w, fmt.Sprintf("Web pages from %s may not connect to this IRC server; its operator lists those that may in irc.websocket.origins.", origin), http.StatusForbidden)
		return
	}
	remote := l.clientAddr(r)
	var release func()
	if l.cfg.Admit != nil {
		var reason string
		if release, reason = l.cfg.Admit(remote); reason != "" {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "Too many connections: "+reason+"; close some and try again later.", http.StatusServiceUnavailable)
			return
		}
	}
	proto := chooseProtocol(r)
	var offer []string
	if proto != "" {
		offer = []string{proto}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: offer,
		// Origin was checked above, by our own rules.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept has answered the client (400, 426).
		if release != nil {
			release()
		}
		return
	}
	// Read in our own bounds: a longer message gets a clear ERROR, not
	// just a close code. The library's limit is only a backstop.
	ws.SetReadLimit(MaxMessage + 1<<10)
	local := l.addr
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a
	}
	c := newConn(ws, proto, local, remote, r.TLS != nil, release)
	select {
	case l.conns <- c:
	case <-l.done:
		c.closeWith(websocket.StatusGoingAway, "server shutting down")
	}
}

// chooseProtocol takes the first subprotocol the client asked for that the
// specification defines, respecting the client's order of preference.
func chooseProtocol(r *http.Request) string {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			switch p = strings.TrimSpace(p); strings.ToLower(p) {
			case TextProtocol, BinaryProtocol:
				return strings.ToLower(p)
			}
		}
	}
	return ""
}

// clientAddr is the TCP peer, or the address a trusted proxy says it
// forwards for.
func (l *Listener) clientAddr(r *http.Request) net.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return stringAddr(r.RemoteAddr)
	}
	addr := peer
	if l.trusted(peer.Addr()) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		// The nearest hop is last; walk back past our own proxies.
		for i := len(hops) - 1; i >= 0; i-- {
			ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = netip.AddrPortFrom(ip.Unmap(), 0)
			if !l.trusted(ip) {
				break
			}
		}
	}
	return net.TCPAddrFromAddrPort(addr)
}

func (l *Listener) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// Conn is one IRC client over WebSocket, as a net.Conn of CRLF-terminated
// lines. Read is for one goroutine (ircd's reader), Write for one at a
// time (ircd's writer); Close and the deadlines for any.
type Conn struct {
	ws            *websocket.Conn
	proto         string
	typ           websocket.MessageType
	local, remote net.Addr
	secure        bool
	release       func()

	ctx    context.Context // ends with Close
	cancel context.CancelFunc

	readBuf  []byte // what is left of the last message for Read
	writeBuf []byte // a partial line awaiting its newline

	refused       atomic.Bool // told why it is closed: nothing more goes out
	readDeadline  atomic.Pointer[time.Time]
	writeDeadline atomic.Pointer[time.Time]
	closeOnce     sync.Once
}

func newConn(ws *websocket.Conn, proto string, local, remote net.Addr, secure bool, release func()) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	typ := websocket.MessageBinary
	if proto == TextProtocol {
		typ = websocket.MessageText
	}
	return &Conn{ws: ws, proto: proto, typ: typ, local: local, remote: remote, secure: secure,
		release: release, ctx: ctx, cancel: cancel}
}

// Subprotocol is the agreed subprotocol, "" for none.
func (c *Conn) Subprotocol() string { return c.proto }

// Secure reports whether the client connected over TLS (wss://).
func (c *Conn) Secure() bool { return c.secure }

// Errors for messages that are not one IRC line.
var (
	ErrMessageTooLong = errors.New("WebSocket message too long")
	ErrNotOneLine     = errors.New("WebSocket message with a line break or NUL in it")
)

// Read yields the client's messages as lines ending in CRLF. A message
// that is not one IRC line ends the connection with an ERROR that says
// why; an empty one is skipped.
func (c *Conn) Read(p []byte) (int, error) {
	for len(c.readBuf) == 0 {
		line, err := c.readMessage()
		if err != nil {
			return 0, err
		}
		if len(line) > 0 {
			c.readBuf = append(line, '\r', '\n')
		}
	}
	n := copy(p, c.readBuf)
	c.readBuf = c.readBuf[n:]
	return n, nil
}

func (c *Conn) readMessage() ([]byte, error) {
	ctx, cancel := c.deadlineContext(&c.readDeadline)
	defer cancel()
	_, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, c.ioError(err)
	}
	msg, err := io.ReadAll(io.LimitReader(r, MaxMessage+1))
	if err != nil {
		return nil, c.ioError(err)
	}
	// The specification forbids a trailing CRLF; we forgive it, as it
	// still makes one line.
	msg = bytes.TrimSuffix(bytes.TrimSuffix(msg, []byte{'\n'}), []byte{'\r'})
	switch {
	case len(msg) > MaxMessage:
		c.refuse(websocket.StatusMessageTooBig, fmt.Sprintf(
			"Message too long: an IRC line is at most 510 bytes (and 4096 of tags); this client sent more than %d bytes in one WebSocket message", MaxMessage))
		return nil, ErrMessageTooLong
	case bytes.ContainsAny(msg, "\r\n\x00"):
		c.refuse(websocket.StatusInvalidFramePayloadData,
			"Line break or NUL inside a WebSocket message: send each IRC line as a message of its own")
		return nil, ErrNotOneLine
	}
	return msg, nil
}

// refuse tells the client why it is being closed, then closes.
func (c *Conn) refuse(code websocket.StatusCode, reason string) {
	// ircd would follow with its own ERROR for the ended read; the
	// reason given here is the one that counts.
	c.refused.Store(true)
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	line := []byte("ERROR :" + reason)
	if c.typ == websocket.MessageText {
		line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
	}
	c.ws.Write(ctx, c.typ, line)
	c.closeWith(code, "")
}

// Write sends each complete line of p as one message. ircd's writer only
// writes whole lines; a partial one waits for the rest.
func (c *Conn) Write(p []byte) (int, error) {
	if c.refused.Load() {
		return 0, net.ErrClosed
	}
	ctx, cancel := c.deadlineContext(&c.writeDeadline)
	defer cancel()
	data := p
	if len(c.writeBuf) > 0 {
		data = append(c.writeBuf, p...)
		c.writeBuf = nil
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(data[:i], []byte{'\r'})
		data = data[i+1:]
		if len(line) == 0 {
			continue
		}
		// Invalid UTF-8 in a text message makes browsers drop the
		// connection; the specification allows U+FFFD in its place.
		if c.typ == websocket.MessageText && !utf8.Valid(line) {
			line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
		}
		if err := c.ws.Write(ctx, c.typ, line); err != nil {
			return 0, c.ioError(err)
		}
	}
	if len(data) > 0 {
		c.writeBuf = append([]byte(nil), data...)
	}
	return len(p), nil
}

// Close ends the connection with a normal close. It does not wait for the
// client's close frame: the handshake finishes in the background.
func (c *Conn) Close() error {
	c.closeWith(websocket.StatusNormalClosure, "")
	return nil
}

func (c *Conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		if c.release != nil {
			c.release()
		}
		// The reader stays until the handshake is done, to take the
		// client's close frame; then everything still waiting ends.
		go func() {
			c.ws.Close(code, reason)
			c.cancel()
		}()
	})
}

func (c *Conn) LocalAddr() net.Addr  { return c.local }
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(&t)
	return nil
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(&t)
	return nil
}

// deadlineContext ends with the connection or at the deadline. The
// websocket library closes the connection when an operation's context
// ends, as a TCP connection is useless after a timed-out write too.
func (c *Conn) deadlineContext(d *atomic.Pointer[time.Time]) (context.Context, context.CancelFunc) {
	if t := d.Load(); t != nil && !t.IsZero() {
		return context.WithDeadline(c.ctx, *t)
	}
	return context.WithCancel(c.ctx)
}

// ioError makes a closed connection look like a closed socket to ircd, so
// it ends quietly as for TCP.
func (c *Conn) ioError(err error) error {
	if c.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return net.ErrClosed
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return io.EOF
	}
	return err
}
