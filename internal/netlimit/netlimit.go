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

// Counter counts open connections against Config's caps. One Counter may
// serve several listeners (plain and TLS IRC, WebSocket), so that the caps
// hold for all of them together. Any goroutine.
type Counter struct {
	cfg Config

	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int // entries only while non-zero
}

// NewCounter makes a count with cfg's caps (cfg.Refuse is not used).
func NewCounter(cfg Config) *Counter {
	return &Counter{cfg: cfg, byAddr: make(map[netip.Addr]int)}
}

// Take counts a connection from addr. When that would break a cap it
// counts nothing and gives the reason; otherwise release gives the place
// back (once; later calls do nothing).
func (k *Counter) Take(addr net.Addr) (release func(), reason string) {
	key, counted := k.key(addr)
	if reason := k.take(key, counted); reason != "" {
		return nil, reason
	}
	var once sync.Once
	return func() { once.Do(func() { k.release(key, counted) }) }, ""
}

// Open is the number of connections counted against Max now.
func (k *Counter) Open() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.total
}

// Listener is a net.Listener that refuses connections over its caps.
type Listener struct {
	net.Listener
	count  *Counter
	refuse func(c net.Conn, reason string)
}

// Listen wraps ln with cfg's caps, counted for ln alone.
func Listen(ln net.Listener, cfg Config) *Listener {
	return ListenCounted(ln, NewCounter(cfg), cfg.Refuse)
}

// ListenCounted wraps ln so that its connections are counted in count,
// which other listeners may share; refuse is as Config.Refuse.
func ListenCounted(ln net.Listener, count *Counter, refuse func(c net.Conn, reason string)) *Listener {
	return &Listener{Listener: ln, count: count, refuse: refuse}
}

// Accept returns the next connection within the caps; connections over
// them are refused (and closed) here and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, reason := l.count.Take(c.RemoteAddr())
		if reason != "" {
			go l.refuseConn(c, reason)
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

// Open is the number of connections counted against Max now (by every
// listener sharing the count).
func (l *Listener) Open() int { return l.count.Open() }

// key is the address a connection counts against; counted is false for
// exempt addresses and ones that are not IP.
func (k *Counter) key(a net.Addr) (netip.Addr, bool) {
	if a == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	for _, p := range k.cfg.Exempt {
		if p.Contains(ip) {
			return netip.Addr{}, false
		}
	}
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip, true
}

func (k *Counter) take(key netip.Addr, counted bool) string {
	if !counted {
		return ""
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cfg.Max > 0 && k.total >= k.cfg.Max {
		return TooMany
	}
	if k.cfg.PerAddress > 0 && k.byAddr[key] >= k.cfg.PerAddress {
		return TooManyFromAddress
	}
	k.total++
	k.byAddr[key]++
	return ""
}

func (k *Counter) release(key netip.Addr, counted bool) {
	if !counted {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.total--
	if k.byAddr[key]--; k.byAddr[key] <= 0 {
		delete(k.byAddr, key)
	}
}

func (l *Listener) refuseConn(c net.Conn, reason string) {
	defer c.Close()
	if l.refuse == nil {
		return
	}
	c.SetDeadline(time.Now().Add(refuseTimeout))
	l.refuse(c, reason)
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
	release func() // runs once however often it is called
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
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
