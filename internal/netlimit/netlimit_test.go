package netlimit

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Refuse = func(c net.Conn, reason string) { c.Write([]byte("refused: " + reason + "\n")) }
	l := Listen(ln, cfg)
	t.Cleanup(func() { l.Close() })
	return l
}

// serve accepts and keeps connections until the test ends; accepted
// receives each one.
func serve(t *testing.T, l *Listener) chan net.Conn {
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

func dial(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reads what the listener told a refused client: the reason,
// then the end of the connection.
func refused(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no refusal: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestPerAddressCap(t *testing.T) {
	l := listen(t, Config{PerAddress: 2})
	accepted := serve(t, l)
	dial(t, l)
	dial(t, l)
	first := <-accepted
	<-accepted
	if got := refused(t, dial(t, l)); got != "refused: "+TooManyFromAddress {
		t.Fatalf("third connection: %q", got)
	}
	// Closing one gives its place back, once however often it is closed.
	first.Close()
	first.Close()
	dial(t, l)
	<-accepted
	if got := refused(t, dial(t, l)); got != "refused: "+TooManyFromAddress {
		t.Fatalf("after one closed: %q", got)
	}
	if n := l.Open(); n != 2 {
		t.Fatalf("Open() = %d, want 2", n)
	}
}

func TestTotalCap(t *testing.T) {
	l := listen(t, Config{Max: 1})
	accepted := serve(t, l)
	dial(t, l)
	<-accepted
	if got := refused(t, dial(t, l)); got != "refused: "+TooMany {
		t.Fatalf("second connection: %q", got)
	}
}

func TestExemptAddressesAreNotCounted(t *testing.T) {
	exempt, err := ParsePrefixes([]string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t, Config{Max: 1, PerAddress: 1, Exempt: exempt})
	accepted := serve(t, l)
	for range 3 {
		dial(t, l)
		<-accepted
	}
	if n := l.Open(); n != 0 {
		t.Fatalf("Open() = %d, want 0", n)
	}
}

func TestKeyGroupsIPv6By64(t *testing.T) {
	l := NewCounter(Config{})
	a, _ := l.key(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 1})
	b, _ := l.key(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9"), Port: 2})
	c, _ := l.key(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 3})
	if a != b || a == c {
		t.Fatalf("keys %v %v %v: want one /64 per key", a, b, c)
	}
	v4, ok := l.key(&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 4})
	if !ok || v4 != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("IPv4-mapped key %v", v4)
	}
}

func TestParsePrefixes(t *testing.T) {
	if _, err := ParsePrefixes([]string{"not an address"}); err == nil {
		t.Fatal("a bad address parsed")
	}
	got, err := ParsePrefixes([]string{"10.1.2.3/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].String() != "10.0.0.0/8" || got[1].String() != "192.0.2.7/32" {
		t.Fatalf("ParsePrefixes = %v", got)
	}
}

// TestCounterSharedByListeners: caps given to one Counter hold across every
// listener and caller counting in it, and a release gives the place back
// once however often it is called.
func TestCounterSharedByListeners(t *testing.T) {
	k := NewCounter(Config{Max: 2, PerAddress: 1})
	a := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}
	b := &net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 1}
	c := &net.TCPAddr{IP: net.ParseIP("192.0.2.3"), Port: 1}
	relA, reason := k.Take(a)
	if reason != "" {
		t.Fatalf("first from a refused: %s", reason)
	}
	if _, reason := k.Take(a); reason != TooManyFromAddress {
		t.Fatalf("second from a: %q, want %q", reason, TooManyFromAddress)
	}
	if _, reason := k.Take(b); reason != "" {
		t.Fatalf("first from b refused: %s", reason)
	}
	if _, reason := k.Take(c); reason != TooMany {
		t.Fatalf("third in all: %q, want %q", reason, TooMany)
	}
	relA()
	relA()
	if n := k.Open(); n != 1 {
		t.Fatalf("Open() = %d after one release called twice, want 1", n)
	}
	if _, reason := k.Take(c); reason != "" {
		t.Fatalf("c after a left refused: %s", reason)
	}
}
