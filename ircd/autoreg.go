package ircd

import (
	"context"
	"fmt"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/irctext"
)

// AutoRegisterer is a Backend that can register a Matrix account of its
// own for a connection without a login (Config.AutoRegister).
type AutoRegisterer interface {
	// AutoRegister registers an account named after nick and binds the
	// connection to it, returning its Handler and the account's
	// password, to be shown to the user once. Reader goroutine; ctx ends
	// with the connection or the login timeout. Errors are shown to the
	// client as they are.
	AutoRegister(ctx context.Context, nick string, c *Conn) (Handler, string, error)
}

// autoRegister gives a connection without credentials an account of its
// own; false when it could not (the connection is then closed, with a
// line saying why). Reader goroutine, before registration completes.
func (c *Conn) autoRegister(ar AutoRegisterer) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.LoginTimeout)
	defer cancel()
	h, password, err := ar.AutoRegister(ctx, c.Nick(), c)
	if err != nil {
		c.srv.releaseAnonNick(c)
		c.logger().Warn("cannot register an account for a connection without a login", "err", err)
		c.replyNotice("Could not make a Matrix account for you: " + err.Error() + ".")
		c.Close("No account: " + err.Error())
		return false
	}
	c.loggedIn(h)
	account := h.Account()
	svc := c.srv.cfg.ServiceNick
	for _, line := range []string{
		fmt.Sprintf("You had no Matrix login, so a Matrix account was made for you: %s", account),
		fmt.Sprintf("Its password is %s (shown only this once; keep it).", password),
		fmt.Sprintf("To come back to this account, log in with SASL PLAIN or PASS (user %s and that password), or /msg %s IDENTIFY %[1]s <password>.", account, svc),
	} {
		c.replyNotice(line)
	}
	return true
}

// A connection without a login is known by its nick alone, so two of them
// may not hold one nick at once: the second is told the nick is in use
// (433) and registers when it picks another, as on any IRC server. The
// claim is on the nick the connection registered with, from the moment it
// asks for an account until it closes.

// claimAnonNick claims nick for c; false when another live connection
// without a login holds it. Reader goroutine.
func (s *Server) claimAnonNick(c *Conn, nick string) bool {
	folded := irctext.Casefold(nick)
	s.mu.Lock()
	defer s.mu.Unlock()
	if holder := s.anonNicks[folded]; holder != nil && holder != c && holder.ctx.Err() == nil {
		return false
	}
	if s.anonNicks == nil {
		s.anonNicks = map[string]*Conn{}
	}
	s.anonNicks[folded] = c
	c.anonNick = folded
	return true
}

// releaseAnonNick ends c's claim, if it has one. Any goroutine.
func (s *Server) releaseAnonNick(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.anonNick != "" && s.anonNicks[c.anonNick] == c {
		delete(s.anonNicks, c.anonNick)
	}
	c.anonNick = ""
}

// anonNickTaken says whether another live connection without a login
// holds nick, which c (one without a login too) may then not change to.
// Any goroutine.
func (s *Server) anonNickTaken(c *Conn, nick string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	holder := s.anonNicks[irctext.Casefold(nick)]
	return holder != nil && holder != c && holder.ctx.Err() == nil
}

// moveAnonNick moves c's claim to its new nick, freeing the old one for
// others, as a nick change does on any IRC server. Any goroutine.
func (s *Server) moveAnonNick(c *Conn, nick string) {
	folded := irctext.Casefold(nick)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.anonNick == "" || c.anonNick == folded {
		return
	}
	if s.anonNicks[c.anonNick] == c {
		delete(s.anonNicks, c.anonNick)
	}
	if holder := s.anonNicks[folded]; holder != nil && holder != c && holder.ctx.Err() == nil {
		c.anonNick = "" // lost a race for it: the holder keeps it
		return
	}
	s.anonNicks[folded] = c
	c.anonNick = folded
}

// refuseTakenNick answers a registration whose nick another connection
// without a login holds, and waits for another NICK. Reader goroutine.
func (c *Conn) refuseTakenNick() {
	nick := c.Nick()
	c.reply(&irc.Message{Prefix: &irc.Prefix{Name: c.srv.cfg.ServerName}, Command: irc.ERR_NICKNAMEINUSE,
		Params: []string{"*", nick, "Nickname is already in use"}})
	c.reg.nickSet = false
}
