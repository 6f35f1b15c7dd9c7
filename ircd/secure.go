package ircd

import (
	"crypto/tls"
	"net"
)

// Secure says whether what the client sends cannot be read on the way:
// the connection is TLS, or it comes from this machine. Secrets the
// gateway keeps (app passwords) are only accepted over such connections.
// Any goroutine.
func (c *Conn) Secure() bool {
	if _, ok := c.nc.(*tls.Conn); ok {
		return true
	}
	return isLoopback(c.nc.RemoteAddr())
}

func isLoopback(addr net.Addr) bool {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.IsLoopback()
	}
	if _, ok := addr.(*net.UnixAddr); ok {
		return true
	}
	return false
}
