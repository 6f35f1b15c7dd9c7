package ircd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/irctext"
)

// A connection that finishes registration without credentials is not
// refused: it is welcomed in a login-pending state, greeted by the
// service nick with how to log in, and may use only the service nick and
// NickServ (to log in), PING, PONG, QUIT, CAP and SASL, until it logs in
// or Config.LoginPendingTimeout ends it. Logging in (IDENTIFY, LOGIN in a
// web browser, or SASL on the same connection) attaches it to its Matrix
// session, which sends the connect burst. Until then there is no Handler: the service's login
// commands are answered here, knowing nothing of Matrix.

// pendingAllowed lists the commands a login-pending connection may use,
// besides messages to the service.
var pendingAllowed = map[string]bool{
	"CAP": true, "AUTHENTICATE": true, "PING": true, "PONG": true, "QUIT": true,
	"REGISTER": true, "VERIFY": true, // make an account and log in to it (accountreg.go)
}

// pendingServiceCommand is a service command that works before login.
type pendingServiceCommand struct {
	usage, help string
	run         func(c *Conn, reply func(string), args []string)
}

// pendingService is the service's command table before login.
var pendingService map[string]pendingServiceCommand

func init() {
	pendingService = map[string]pendingServiceCommand{
		"HELP": {"HELP", "lists what you can do before you log in", (*Conn).pendingHelp},
		"IDENTIFY": {"IDENTIFY [<account>] <password>",
			"logs you in with your Matrix ID (@name:server, or the name alone on this server's homeserver) and your Matrix password or app password; without an account, your nick is the account",
			(*Conn).pendingIdentify},
		"LOGIN": {"LOGIN [<Matrix ID or server>]",
			"logs you in in your web browser (OAuth 2.0 or SSO, for accounts with no Matrix password): you get a link to open and, for OAuth, a code to approve; this connection then logs in by itself. Without an argument, on this gateway's homeserver",
			(*Conn).pendingLogin},
	}
}

// enterPending welcomes a connection that has no credentials and starts
// the time it has to log in. Reader goroutine.
func (c *Conn) enterPending() {
	c.pending.Store(true)
	lurker, _ := c.srv.backend.(Lurker)
	guests := c.srv.cfg.Guests && lurker != nil
	if guests {
		c.takeGuestNick()
	}
	c.registered.Store(true)
	c.srv.count(c)
	c.sendWelcome()
	if guests && c.startLurking(lurker) {
		return // a lurker is bound by the guests' idle timeout (lurk.go)
	}
	timeout := c.srv.cfg.LoginPendingTimeout
	c.pendingUntil = time.Now().Add(timeout)
	c.pendingTimer = time.AfterFunc(timeout, func() {
		if c.pending.Load() {
			c.Close(fmt.Sprintf("Login timed out: not logged in within %v. Log in with SASL PLAIN or /msg %s IDENTIFY <account> <password>",
				timeout, c.srv.cfg.ServiceNick))
		}
	})
	svc := c.srv.cfg.ServiceNick
	for _, line := range c.greeting(svc, timeout) {
		c.serviceNotice(svc, line)
	}
}

// greeting says how to log in, the way the homeserver prefers first: a
// homeserver without password login (the Matrix Authentication Service)
// gets LOGIN first. Reader goroutine.
func (c *Conn) greeting(svc string, timeout time.Duration) []string {
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	password, browser := c.srv.backend.LoginWays(ctx)
	cancel()
	identify := fmt.Sprintf("  /msg %s IDENTIFY <Matrix ID> <password>   (your Matrix password, or an app password set with PASSWORD SET)", svc)
	login := fmt.Sprintf("  /msg %s LOGIN   (log in in your web browser: you get a link, and a code to approve)", svc)
	lines := []string{"You are connected, but not logged in to Matrix yet, so you have no rooms. Log in now with:"}
	switch {
	case browser && !password:
		lines = append(lines, login,
			fmt.Sprintf("  /msg %s IDENTIFY <Matrix ID> <app password>   (once you have set one with PASSWORD SET)", svc))
	case browser:
		lines = append(lines, identify, login)
	default:
		lines = append(lines, identify)
	}
	return append(lines,
		"Next time, let your IRC client log in by itself with SASL PLAIN (or PASS, with your Matrix ID as the user name).",
		fmt.Sprintf("Until you log in, only /msg %s works; this connection closes in %v if you do not.", svc, timeout))
}

// serviceNotice sends a NOTICE from the service, named as from.
func (c *Conn) serviceNotice(from, text string) {
	c.reply(&irc.Message{
		Prefix:  &irc.Prefix{Name: from, User: "service", Host: c.srv.cfg.ServerName},
		Command: "NOTICE",
		Params:  []string{c.Nick(), text},
	})
}

// dispatchPending handles a line of a login-pending connection that the
// command table must not see; it reports whether it did. Reader goroutine.
func (c *Conn) dispatchPending(m *irc.Message) bool {
	c.lurkActivity(m.Command)
	if !c.pending.Load() || pendingAllowed[m.Command] {
		return false
	}
	if (m.Command == "PRIVMSG" || m.Command == "NOTICE") && len(m.Params) >= 2 && c.isServiceNick(m.Params[0]) {
		if m.Command == "PRIVMSG" {
			c.pendingServiceMessage(m.Params[0], m.Params[1])
		}
		return true
	}
	if c.lurk != nil {
		return false // the read-only Handler answers the rest
	}
	c.replyNumeric(irc.ERR_NOTREGISTERED, fmt.Sprintf("You are not logged in: /msg %s IDENTIFY <account> <password>, or /msg %[1]s LOGIN", c.srv.cfg.ServiceNick))
	return true
}

func (c *Conn) isServiceNick(nick string) bool {
	folded := irctext.Casefold(nick)
	return folded == irctext.Casefold(c.srv.cfg.ServiceNick) || folded == "nickserv"
}

func (c *Conn) pendingServiceMessage(to, text string) {
	reply := func(line string) { c.serviceNotice(to, line) }
	args, err := irctext.SplitArgs(text)
	if err != nil {
		reply("Cannot read that: " + err.Error() + ".")
		return
	}
	if len(args) == 0 {
		return
	}
	cmd, ok := pendingService[strings.ToUpper(args[0])]
	if !ok {
		reply(fmt.Sprintf("You are not logged in yet, so %q is not available; HELP lists what is.", args[0]))
		return
	}
	cmd.run(c, reply, args[1:])
}

func (c *Conn) pendingHelp(reply func(string), _ []string) {
	for _, name := range []string{"IDENTIFY", "LOGIN", "HELP"} {
		cmd := pendingService[name]
		reply(cmd.usage + ": " + cmd.help)
	}
}

func (c *Conn) pendingIdentify(reply func(string), args []string) {
	var account, password string
	switch len(args) {
	case 1:
		account, password = c.Nick(), args[0]
	case 2:
		account, password = args[0], args[1]
	default:
		reply("Usage: " + pendingService["IDENTIFY"].usage)
		return
	}
	if msg, ok := c.tryLogin(account, password); !ok {
		reply("Not logged in: " + msg)
		return
	}
	reply("You are now logged in as " + c.handler.Account() + ".")
	c.finishPending(false)
}

// finishPending turns a login-pending connection that has just logged in
// (by SASL or not) into a full session. Reader goroutine.
func (c *Conn) finishPending(sasl bool) {
	account := c.handler.Account()
	c.reg.loggedInAs = account
	if c.pendingTimer != nil { // a lurker has none
		c.pendingTimer.Stop()
	}
	c.stopBrowserLogin()
	c.pending.Store(false)
	c.replyNumeric(irc.RPL_LOGGEDIN, loggedInMask(c, account), account, "You are now logged in as "+account)
	if sasl {
		c.replyNumeric(irc.RPL_SASLSUCCESS, "SASL authentication successful")
	}
	c.logger().Info("logged in from the login-pending state", "account", account)
	c.endLurk(account)
	c.handler.Attach()
}
