package ircd

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Lurkers: with Config.Guests and a Backend that is a Lurker, a
// login-pending connection is not limited to the service: it gets a guest
// nick and a read-only Handler from Lurker.Lurk, through which it may
// JOIN public rooms and read them. The Backend decides what a lurker may
// do (it refuses to talk, with a line saying how to log in); ircd only
// passes the commands on, drops a lurker idle for Config.GuestIdleTimeout,
// and, when the connection logs in, ends the lurk (its channels are
// parted) before the account's connect burst.

// Lurker is a Backend that can serve connections without a login.
type Lurker interface {
	// Lurk gives a login-pending connection a read-only Handler. It is
	// called on the connection's reader goroutine; ctx ends with the
	// connection or the login timeout.
	Lurk(ctx context.Context, c *Conn) (LurkHandler, error)
}

// LurkHandler is the Handler of a lurking connection.
type LurkHandler interface {
	Handler
	// EndLurk parts the connection's channels and detaches it, returning
	// once the PART lines are queued, so that what the connection gets
	// next (its account's burst) comes after them. Reader goroutine;
	// Detach is not called after it.
	EndLurk(reason string)
}

// GuestNickPrefix starts every guest nick; a client cannot take such a
// nick itself while it lurks, and the Backend gives it to no Matrix user.
const GuestNickPrefix = "Guest"

// takeGuestNick gives the connection a guest nick no other connection
// holds. Reader goroutine, before registration.
func (c *Conn) takeGuestNick() {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.guests == nil {
		s.guests = map[string]bool{}
	}
	for width := 10000; ; width *= 10 {
		for range 8 {
			nick := GuestNickPrefix + strconv.Itoa(width+rand.IntN(9*width))
			if !s.guests[nick] {
				s.guests[nick] = true
				c.guestNick = nick
				c.storeNick(nick)
				return
			}
		}
		if width > math.MaxInt32/100 {
			panic("no guest nick left") // 9e8 guests: unreachable with connection caps
		}
	}
}

// startLurking makes a login-pending connection a lurker; false when the
// Backend could not (the connection stays login-pending). Reader goroutine.
func (c *Conn) startLurking(l Lurker) bool {
	svc := c.srv.cfg.ServiceNick
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.LoginTimeout)
	h, err := l.Lurk(ctx, c)
	cancel()
	if err != nil {
		c.logger().Warn("cannot serve a guest", "err", err)
		c.serviceNotice(svc, "Reading public rooms without logging in is not available right now ("+err.Error()+").")
		return false
	}
	c.lurk, c.handler = h, h
	c.lurking.Store(true)
	idle := c.srv.cfg.GuestIdleTimeout
	for _, line := range []string{
		"You are connected as a guest: you can read the public rooms of this server without logging in, but not talk.",
		"  /join #room:server   (a room whose join rule is public or whose history is world-readable); /list shows the public rooms.",
		fmt.Sprintf("To talk, log in: /msg %s IDENTIFY <Matrix ID> <password>, or let your IRC client log in with SASL PLAIN.", svc),
		fmt.Sprintf("Guests who send nothing for %v are disconnected.", idle),
	} {
		c.serviceNotice(svc, line)
	}
	c.lastActive.Store(time.Now().UnixNano())
	var t *time.Timer
	check := func() {
		if c.ctx.Err() != nil || !c.lurking.Load() {
			return
		}
		since := time.Since(time.Unix(0, c.lastActive.Load()))
		if since >= idle {
			c.Close(fmt.Sprintf("Idle guest: nothing sent for %v. Reconnect to read again, or log in to stay (SASL PLAIN, or /msg %s IDENTIFY)", idle, svc))
			return
		}
		t.Reset(idle - since)
	}
	// check reads t: arm it only once t is set (as startIdleTimer does).
	t = time.AfterFunc(math.MaxInt64, check)
	t.Reset(idle)
	c.lurkTimer = t
	h.Attach()
	return true
}

// lurkActivity notes that a lurker did something: PING and PONG, which a
// client sends by itself, do not count. Reader goroutine.
func (c *Conn) lurkActivity(command string) {
	if c.lurk != nil && command != "PING" && command != "PONG" {
		c.lastActive.Store(time.Now().UnixNano())
	}
}

// endLurk parts a lurker that has logged in from its channels, before
// its account's burst. Reader goroutine.
func (c *Conn) endLurk(account string) {
	if c.lurk == nil {
		return
	}
	c.stopLurking()
	h := c.lurk
	c.lurk = nil
	h.EndLurk("Logged in as " + account)
}

// stopLurking stops counting the connection as a lurker and its idle
// timer. Reader goroutine.
func (c *Conn) stopLurking() {
	if c.lurking.Swap(false) {
		c.lurkTimer.Stop()
	}
}

// releaseGuestNick lets another connection have this one's guest nick.
func (s *Server) releaseGuestNick(c *Conn) {
	if c.guestNick == "" {
		return
	}
	s.mu.Lock()
	delete(s.guests, c.guestNick)
	s.mu.Unlock()
}
