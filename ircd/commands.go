package ircd

import (
	"strings"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// command is one entry of the command table: the shared checks live in
// dispatch, so handlers stay small.
type command struct {
	handle    func(c *Conn, m *irc.Message)
	minParams int
	preReg    bool // allowed before registration
	postReg   bool // allowed after registration
}

// forward hands a command to the Matrix session.
func forward(c *Conn, m *irc.Message) { c.forward(m) }

var commands map[string]command

func init() {
	commands = map[string]command{
		"CAP":          {handle: (*Conn).handleCap, minParams: 1, preReg: true, postReg: true},
		"AUTHENTICATE": {handle: (*Conn).handleAuthenticate, minParams: 1, preReg: true, postReg: true},
		"PASS":         {handle: (*Conn).handlePass, minParams: 1, preReg: true, postReg: true},
		"NICK":         {handle: (*Conn).handleNick, minParams: 1, preReg: true, postReg: true},
		"USER":         {handle: (*Conn).handleUser, minParams: 4, preReg: true, postReg: true},
		"PING":         {handle: (*Conn).handlePing, minParams: 1, preReg: true, postReg: true},
		"PONG":         {handle: func(*Conn, *irc.Message) {}, preReg: true, postReg: true},
		"QUIT":         {handle: (*Conn).handleQuit, preReg: true, postReg: true},
		"MOTD":         {handle: func(c *Conn, _ *irc.Message) { c.sendMOTD() }, postReg: true},
		"VERSION": {handle: func(c *Conn, _ *irc.Message) {
			c.replyNumeric(irc.RPL_VERSION, c.srv.cfg.Version, c.srv.cfg.ServerName, "Matrix gateway")
			for _, params := range c.srv.isupport.lines() {
				c.replyNumeric(irc.RPL_ISUPPORT, append(params, "are supported by this server")...)
			}
		}, postReg: true},

		// The rest need the Matrix side.
		"JOIN":    {handle: forward, minParams: 1, postReg: true},
		"PART":    {handle: forward, minParams: 1, postReg: true},
		"PRIVMSG": {handle: forwardMessage, minParams: 0, postReg: true},
		"NOTICE":  {handle: forwardMessage, minParams: 0, postReg: true},
		"TOPIC":   {handle: forward, minParams: 1, postReg: true},
		"NAMES":   {handle: forward, postReg: true},
		"WHO":     {handle: forward, postReg: true},
		"WHOIS":   {handle: forward, minParams: 1, postReg: true},
		"MODE":    {handle: (*Conn).handleMode, minParams: 1, postReg: true},
		"KICK":    {handle: forward, minParams: 2, postReg: true},
		"INVITE":  {handle: forward, minParams: 2, postReg: true},
		"LIST":    {handle: forward, postReg: true},
		"TAGMSG":  {handle: forward, minParams: 1, postReg: true},
		"AWAY":    {handle: forward, postReg: true},
		"SETNAME": {handle: forward, minParams: 1, postReg: true},
		"MONITOR": {handle: forward, minParams: 1, postReg: true},
		"BATCH":   {handle: (*Conn).handleBatch, minParams: 1, postReg: true},
		"REDACT":  {handle: forward, minParams: 2, postReg: true},
		// Bouncer commands: history, read markers, always-on.
		"CHATHISTORY": {handle: forward, minParams: 1, postReg: true},
		"MARKREAD":    {handle: forward, minParams: 1, postReg: true},
		"ALWAYSON":    {handle: forward, postReg: true},
	}
}

func (c *Conn) dispatch(m *irc.Message) {
	// A labeled command answered here gets its replies gathered and sent
	// as one labeled response; one that goes to the session is labeled
	// there (the label travels in its tags). A BATCH line's label belongs
	// to the whole multiline message.
	if label := m.Tags["label"]; label != "" && m.Command != "BATCH" && c.registered.Load() &&
		c.HasCap("labeled-response") && c.HasCap("batch") {
		c.resp = ircreply.NewResponse(c, label)
		c.forwarded = false
		defer func() {
			resp := c.resp
			c.resp = nil
			if c.forwarded {
				resp.Unlabeled()
			} else {
				resp.Finish()
			}
		}()
	}
	cmd, ok := commands[m.Command]
	registered := c.registered.Load()
	if _, batched := m.Tags["batch"]; batched && registered && m.Command != "BATCH" {
		c.addToBatch(m)
		return
	}
	switch {
	case !ok:
		if registered {
			c.replyNumeric(irc.ERR_UNKNOWNCOMMAND, m.Command, "Unknown command")
		} else {
			c.replyNumeric(irc.ERR_NOTREGISTERED, "You have not registered")
		}
	case registered && !cmd.postReg:
		c.replyNumeric(irc.ERR_ALREADYREGISTERED, "You may not reregister")
	case !registered && !cmd.preReg:
		c.replyNumeric(irc.ERR_NOTREGISTERED, "You have not registered")
	case len(m.Params) < cmd.minParams:
		c.replyNumeric(irc.ERR_NEEDMOREPARAMS, m.Command, "Not enough parameters")
	default:
		cmd.handle(c, m)
	}
}

// forwardMessage gives PRIVMSG and NOTICE their specific "no recipient" and
// "no text" replies before the session sees them.
func forwardMessage(c *Conn, m *irc.Message) {
	switch {
	case len(m.Params) == 0 || m.Params[0] == "":
		if m.Command == "PRIVMSG" {
			c.replyNumeric(irc.ERR_NORECIPIENT, "No recipient given (PRIVMSG)")
		}
	case len(m.Params) < 2 || m.Params[1] == "":
		if m.Command == "PRIVMSG" {
			c.replyNumeric(irc.ERR_NOTEXTTOSEND, "No text to send")
		}
	default:
		c.forward(m)
	}
}

func (c *Conn) handleNick(m *irc.Message) {
	if !c.registered.Load() {
		c.handleNickPreReg(m)
		return
	}
	if !ValidNick(m.Params[0]) {
		c.replyNumeric(irc.ERR_ERRONEUSNICKNAME, m.Params[0], "Erroneous nickname")
		return
	}
	// The session knows which nicks Matrix users already hold.
	c.forward(m)
}

func (c *Conn) handlePing(m *irc.Message) {
	c.reply(&irc.Message{
		Prefix:  &irc.Prefix{Name: c.srv.cfg.ServerName},
		Command: "PONG",
		Params:  []string{c.srv.cfg.ServerName, m.Params[0]},
	})
}

func (c *Conn) handleQuit(m *irc.Message) {
	reason := "Client quit"
	if len(m.Params) > 0 && m.Params[0] != "" {
		reason = "Quit: " + m.Params[0]
	}
	c.Close(reason)
}

// handleMode answers user modes here and sends channel modes to the session.
func (c *Conn) handleMode(m *irc.Message) {
	target := m.Params[0]
	if target == "" { // "MODE :" would index an empty target below
		c.replyNumeric(irc.ERR_NEEDMOREPARAMS, m.Command, "Not enough parameters")
		return
	}
	if strings.ContainsRune(ChanTypes, rune(target[0])) {
		c.forward(m)
		return
	}
	if !strings.EqualFold(target, c.Nick()) {
		c.replyNumeric(irc.ERR_USERSDONTMATCH, "Cannot change mode for other users")
		return
	}
	if len(m.Params) == 1 {
		c.replyNumeric(irc.RPL_UMODEIS, c.userModes())
		return
	}
	// Only +i exists: nobody outside a shared room can list this user
	// anyway, so it is true either way and clients that set it on connect
	// (irssi does) get a plain answer. Other modes mean nothing in Matrix.
	adding, changed, unknown := true, "", false
	c.mu.Lock()
	for _, r := range m.Params[1] {
		switch r {
		case '+', '-':
			adding = r == '+'
		case 'i':
			if c.invisible != adding {
				c.invisible = adding
				changed += map[bool]string{true: "+i", false: "-i"}[adding]
			}
		default:
			unknown = true
		}
	}
	c.mu.Unlock()
	if changed != "" {
		nick := c.Nick()
		c.reply(&irc.Message{Prefix: &irc.Prefix{Name: nick}, Command: "MODE", Params: []string{nick, changed}})
	}
	if unknown {
		c.replyNumeric(irc.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
	} else if changed == "" {
		c.replyNumeric(irc.RPL_UMODEIS, c.userModes())
	}
}

func (c *Conn) userModes() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.invisible {
		return "+i"
	}
	return "+"
}
