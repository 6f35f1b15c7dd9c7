// Package netlimit caps the connections a listener holds open, in all and
// per client address, so that one address (or a flood of them) cannot take
// every file descriptor the gateway's listeners share.
package netlimit

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Config says how many connections a listener keeps open.
type Config struct {
	// Max caps the open connections of the listener; 0: no cap.
	Max int
	// PerAddress caps the open connections from one client address;
	// 0: no cap. IPv6 clients are counted per /64, which one host or
	// one home usually holds whole.
	PerAddress int
	// Exempt addresses count towards neither cap (a reverse proxy on
	// loopback, say).
	Exempt []netip.Prefix
	// Refuse, if set, tells a refused client why before it is closed
	// (in its protocol's words). It runs on its own goroutine with a
	// write deadline set, never on the accept loop.
	Refuse func(c net.Conn, reason string)
}

// Reasons given to Config.Refuse.
const (
	TooManyFromAddress = "too many connections from your address"
	TooMany            = "the server has too many connections"
)

// refuseTimeout bounds the write of a refusal to a client that reads
// nothing.
const refuseTimeout = 5 * time.Second

// Listener is a net.Listener that refuses connections over its caps.
type Listener struct {
	net.Listener
	cfg Config

	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int // entries only while non-zero
}

// Listen wraps ln with cfg's caps.
func Listen(ln net.Listener, cfg Config) *Listener {
	return &Listener{Listener: ln, cfg: cfg, byAddr: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the caps; connections over
// them are refused (and closed) here and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, counted := l.key(c.RemoteAddr())
		if reason := l.take(key, counted); reason != "" {
			go l.refuse(c, reason)
			continue
		}
		return &conn{Conn: c, release: func() { l.release(key, counted) }}, nil
	}
}

// Open is the number of connections counted against Max now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// key is the address a connection counts against; counted is false for
// exempt addresses and ones that are not IP.
func (l *Listener) key(a net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.cfg.Exempt {
		if p.Contains(ip) {
			return netip.Addr{}, false
		}
	}
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip, true
}

func (l *Listener) take(key netip.Addr, counted bool) string {
	if !counted {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Max > 0 && l.total >= l.cfg.Max {
		return TooMany
	}
	if l.cfg.PerAddress > 0 && l.byAddr[key] >= l.cfg.PerAddress {
		return TooManyFromAddress
	}
	l.total++
	l.byAddr[key]++
	return ""
}

func (l *Listener) release(key netip.Addr, counted bool) {
	if !counted {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
}

func (l *Listener) refuse(c net.Conn, reason string) {
	defer c.Close()
	if l.cfg.Refuse == nil {
		return
	}
	c.SetDeadline(time.Now().Add(refuseTimeout))
	l.cfg.Refuse(c, reason)
	// Closing with the client's request unread would reset the
	// connection and could lose the refusal: end our side, then read
	// (a little) until the client closes too.
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
		io.Copy(io.Discard, io.LimitReader(c, 16<<10))
	}
}

// conn gives its place back once, on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// ParsePrefixes reads addresses and CIDR prefixes ("127.0.0.0/8", "::1").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
