package ircd

import (
	"context"
	"fmt"
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
