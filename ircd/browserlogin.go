package ircd

import (
	"context"
	"errors"
	"runtime/debug"
	"time"
)

// A login-pending connection may log in in a web browser (LOGIN to the
// service): the OAuth 2.0 device authorization grant, or SSO. The Backend
// knows how (ircd knows no Matrix); ircd shows what it says, waits for the
// result on a goroutine of its own, and hands it to the connection under
// the connection's dispatch lock, so that the login-pending state changes
// as if the reader had done it. Only one browser login waits per
// connection: LOGIN again, IDENTIFY, SASL or the end of the connection
// stop the one waiting, and its goroutine.

// BrowserLogin is a login the user finishes in a web browser, as
// Backend.StartLogin returns it.
type BrowserLogin struct {
	// Lines tell the user what to do: the link to open, the code, until
	// when they work.
	Lines []string
	// Expires is when the link or code stops working; a login-pending
	// connection is kept that long at least.
	Expires time.Time
	// Wait blocks until the user has logged in (the Handler of the
	// connection, not yet attached), or the login failed (an error that
	// says why, in words a person understands), or the context given to
	// StartLogin ended (its error). ircd calls it once, on a goroutine of
	// its own.
	Wait func() (Handler, error)
}

// browserWait is the browser login a connection waits for.
type browserWait struct {
	cancel context.CancelFunc
}

// browserLoginGrace keeps a connection a little past its code's expiry,
// so that it hears that the code expired rather than the login timeout.
const browserLoginGrace = 30 * time.Second

// pendingLogin is LOGIN [<server or Matrix ID>] before login. Reader
// goroutine.
func (c *Conn) pendingLogin(reply func(string), args []string) {
	if len(args) > 1 {
		reply("Usage: " + pendingService["LOGIN"].usage)
		return
	}
	server := ""
	if len(args) == 1 {
		server = args[0]
	}
	// A new LOGIN replaces the one waiting (another homeserver, or a
	// code that was lost).
	c.stopBrowserLogin()
	ctx, cancel := context.WithCancel(c.ctx)
	bl, err := c.srv.backend.StartLogin(ctx, server, c)
	if err != nil {
		cancel()
		c.logger().Info("browser login not started", "server", server, "err", err)
		reply("Not logged in: " + err.Error())
		return
	}
	for _, line := range bl.Lines {
		reply(line)
	}
	if until := time.Until(bl.Expires) + browserLoginGrace; until > time.Until(c.pendingUntil) {
		c.pendingUntil = time.Now().Add(until)
		c.pendingTimer.Reset(until)
	}
	w := &browserWait{cancel: cancel}
	c.browser = w
	go c.waitBrowserLogin(ctx, w, bl, reply)
}

// waitBrowserLogin waits for a browser login's result and hands it to the
// connection. Its own goroutine.
func (c *Conn) waitBrowserLogin(ctx context.Context, w *browserWait, bl *BrowserLogin, reply func(string)) {
	var h Handler
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				c.logger().Error("panic in a browser login", "panic", r, "stack", string(debug.Stack()))
				h, err = nil, errors.New("internal error")
			}
		}()
		h, err = bl.Wait()
	}()
	c.dispatchMu.Lock()
	defer c.dispatchMu.Unlock()
	w.cancel()
	if c.closed || c.browser != w || !c.pending.Load() {
		// The connection has gone, logged in another way, or asked
		// for another login: nobody wants this one.
		if h != nil {
			h.Detach()
		}
		c.logger().Info("browser login ended unused", "err", err, "logged_in", h != nil)
		return
	}
	c.browser = nil
	if err != nil {
		if ctx.Err() != nil && c.ctx.Err() != nil {
			return // the connection is ending
		}
		c.logger().Info("browser login failed", "err", err)
		reply("Not logged in: " + err.Error())
		return
	}
	c.loggedIn(h)
	account := h.Account()
	reply("You are now logged in as " + account + ".")
	reply("Next time your IRC client can log in by itself: set an app password with /msg " + c.srv.cfg.ServiceNick +
		" PASSWORD SET <new password> (over TLS), then use it with SASL PLAIN (or PASS) and " + account + " as the account.")
	c.finishPending(false)
}

// stopBrowserLogin gives up the browser login waiting, if any. Reader
// goroutine.
func (c *Conn) stopBrowserLogin() {
	if c.browser != nil {
		c.browser.cancel()
		c.browser = nil
	}
}
