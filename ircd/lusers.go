package ircd

import (
	"strconv"
	"time"

	"gopkg.in/irc.v4"
)

// The gateway is one IRC server: LUSERS counts its own connections. A
// Matrix account with two clients is two users here, as two connections
// are on any server; Matrix users seen in rooms are not connections and
// are not counted, and neither are channels (254), which no one place
// knows across sessions.

// count makes a connection that has just registered one of the server's
// users, unless it is already closing. Reader goroutine.
func (s *Server) count(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone || c.counted {
		return
	}
	c.counted = true
	s.users++
	s.maxUsers = max(s.maxUsers, s.users)
}

// uncount removes a closing connection from the users and the unknown
// connections, at once rather than when its goroutines end: a client that
// saw another QUIT counts one user fewer. Any goroutine; idempotent.
func (s *Server) uncount(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.gone = true
	if c.counted {
		c.counted = false
		s.users--
	}
}

// lusers is the server's users (visible and invisible), the connections
// not registered yet, and the most users there have been at once.
func (s *Server) lusers() (visible, invisible, unknown, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		switch {
		case c.counted && c.invisible.Load():
			invisible++
		case c.counted:
			visible++
		case !c.registered.Load() && !c.gone:
			unknown++
		}
	}
	return visible, invisible, unknown, s.maxUsers
}

func (c *Conn) handleLusers(*irc.Message) error {
	visible, invisible, unknown, most := c.srv.lusers()
	users := visible + invisible
	n := strconv.Itoa
	c.replyNumeric(irc.RPL_LUSERCLIENT, "There are "+n(visible)+" users and "+n(invisible)+" invisible on 1 servers")
	c.replyNumeric(irc.RPL_LUSEROP, "0", "operator(s) online")
	if unknown > 0 {
		c.replyNumeric(irc.RPL_LUSERUNKNOWN, n(unknown), "unknown connection(s)")
	}
	c.replyNumeric(irc.RPL_LUSERME, "I have "+n(users)+" clients and 0 servers")
	c.replyNumeric(rplLocalUsers, n(users), n(most), "Current local users "+n(users)+", max "+n(most))
	c.replyNumeric(rplGlobalUsers, n(users), n(most), "Current global users "+n(users)+", max "+n(most))
	return nil
}

// handleTime answers TIME with the server's clock, as RFC 2812 has it.
func (c *Conn) handleTime(*irc.Message) error {
	c.replyNumeric(irc.RPL_TIME, c.srv.cfg.ServerName, time.Now().Format("Monday January 2 2006 -- 15:04:05 -07:00"))
	return nil
}
