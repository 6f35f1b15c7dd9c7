package ircd

import (
	"strings"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// Command is one entry of the command table: what dispatch checks before
// the command runs (registration, parameters), so handlers stay small.
// The table is ircd's own commands (localCommands) and those the Backend
// answers (Backend.Commands), each declared once.
type Command struct {
	MinParams int
	PreReg    bool // also allowed before registration (every command is allowed after)
	// Local answers the command on the reader goroutine; the error it
	// returns carries its reply (ircreply). Without Local, the command is
	// the Backend's: it goes to Handler.HandleCommand. A Local command the
	// Backend answers too takes its share first (registration, user
	// modes, empty messages) and passes the rest on with forward.
	Local func(c *Conn, m *irc.Message) error
}

// localCommands are the commands ircd answers itself, without the Matrix
// side.
var localCommands map[string]Command

func init() {
	localCommands = map[string]Command{
		"CAP":          {Local: (*Conn).handleCap, MinParams: 1, PreReg: true},
		"AUTHENTICATE": {Local: (*Conn).handleAuthenticate, MinParams: 1, PreReg: true},
		"PASS":         {Local: (*Conn).handlePass, MinParams: 1, PreReg: true},
		"NICK":         {Local: (*Conn).handleNick, MinParams: 1, PreReg: true},
		"USER":         {Local: (*Conn).handleUser, MinParams: 4, PreReg: true},
		"PING":         {Local: (*Conn).handlePing, MinParams: 1, PreReg: true},
		"PONG":         {Local: func(*Conn, *irc.Message) error { return nil }, PreReg: true},
		"QUIT":         {Local: (*Conn).handleQuit, PreReg: true},
		"MOTD":         {Local: func(c *Conn, _ *irc.Message) error { c.sendMOTD(); return nil }},
		"VERSION":      {Local: (*Conn).handleVersion},
		"LUSERS":       {Local: (*Conn).handleLusers},
		"TIME":         {Local: (*Conn).handleTime},
		"MODE":         {Local: (*Conn).handleMode, MinParams: 1},
		"PRIVMSG":      {Local: forwardMessage},
		"NOTICE":       {Local: forwardMessage},
		"BATCH":        {Local: (*Conn).handleBatch, MinParams: 1},
		"REGISTER":     {Local: (*Conn).handleRegister, MinParams: 3, PreReg: true},
		"VERIFY":       {Local: (*Conn).handleVerify, MinParams: 2, PreReg: true},
		"OPER":         {Local: (*Conn).handleOper, MinParams: 2},
	}
}

// commandTable joins ircd's own commands and the Backend's.
func commandTable(backend Backend) map[string]Command {
	table := make(map[string]Command, len(localCommands))
	if backend != nil {
		for name, cmd := range backend.Commands() {
			cmd.Local = nil // the Backend answers on its own goroutine, not the reader's
			table[name] = cmd
		}
	}
	for name, cmd := range localCommands {
		table[name] = cmd
	}
	return table
}

func (c *Conn) dispatch(m *irc.Message) {
	// A labeled command answered here gets its replies gathered and sent
	// as one labeled response; one that goes to the session is labeled
	// there (the label travels in its tags). A BATCH line's label belongs
	// to the whole multiline message.
	if label := m.Tags["label"]; label != "" && m.Command != "BATCH" && c.registered.Load() &&
		c.HasCap("labeled-response") {
		c.resp = ircreply.NewResponse(c, label, c.HasCap("batch"))
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
	if c.dispatchPending(m) {
		return
	}
	registered := c.registered.Load()
	if _, batched := m.Tags["batch"]; batched && registered && m.Command != "BATCH" {
		c.addToBatch(m)
		return
	}
	c.replyError(m.Command, c.run(m, registered))
}

// replyError sends the reply err carries (none for nil), into the labeled
// response if there is one.
func (c *Conn) replyError(command string, err error) {
	var out ircreply.Output = c
	if c.resp != nil {
		out = c.resp
	}
	ircreply.Send(out, c, command, err)
}

// run does the table's checks and runs the command.
func (c *Conn) run(m *irc.Message, registered bool) error {
	cmd, ok := c.srv.commands[m.Command]
	switch {
	case !ok && registered:
		return ircreply.Numeric(irc.ERR_UNKNOWNCOMMAND, m.Command, "Unknown command")
	case !ok || (!registered && !cmd.PreReg):
		return ircreply.Numeric(irc.ERR_NOTREGISTERED, "You have not registered")
	case len(m.Params) < cmd.MinParams:
		return errNeedMoreParams(m.Command)
	case cmd.Local == nil:
		c.forward(m)
		return nil
	}
	return cmd.Local(c, m)
}

func errNeedMoreParams(command string) error {
	return ircreply.Numeric(irc.ERR_NEEDMOREPARAMS, command, "Not enough parameters")
}

// forwardMessage gives PRIVMSG and NOTICE their specific "no recipient" and
// "no text" replies before the session sees them.
func forwardMessage(c *Conn, m *irc.Message) error {
	notice := m.Command == "NOTICE" // NOTICE never gets an automatic reply
	switch {
	case len(m.Params) == 0 || m.Params[0] == "":
		if !notice {
			return ircreply.Numeric(irc.ERR_NORECIPIENT, "No recipient given (PRIVMSG)")
		}
	case len(m.Params) < 2 || m.Params[1] == "":
		if !notice {
			return ircreply.Numeric(irc.ERR_NOTEXTTOSEND, "No text to send")
		}
	default:
		c.forward(m)
	}
	return nil
}

func (c *Conn) handleNick(m *irc.Message) error {
	if !c.registered.Load() {
		return c.handleNickPreReg(m)
	}
	if !ValidNick(m.Params[0]) {
		return ircreply.Numeric(irc.ERR_ERRONEUSNICKNAME, m.Params[0], "Erroneous nickname")
	}
	if c.srv.anonNickTaken(c, m.Params[0]) {
		return ircreply.Numeric(irc.ERR_NICKNAMEINUSE, m.Params[0], "Nickname is already in use")
	}
	// The session knows which nicks Matrix users already hold.
	c.forward(m)
	return nil
}

// handlePing answers at once unless commands before it are still with
// the session: then the PING goes the same way, so its PONG follows their
// replies (clients and test suites use PING as a barrier).
func (c *Conn) handlePing(m *irc.Message) error {
	if c.handler != nil && c.settled.Load() != c.posted {
		c.forward(m)
		return nil
	}
	c.reply(&irc.Message{
		Prefix:  &irc.Prefix{Name: c.srv.cfg.ServerName},
		Command: "PONG",
		Params:  []string{c.srv.cfg.ServerName, m.Params[0]},
	})
	return nil
}

func (c *Conn) handleQuit(m *irc.Message) error {
	reason := "Client quit"
	if len(m.Params) > 0 && m.Params[0] != "" {
		reason = "Quit: " + m.Params[0]
	}
	c.Close(reason)
	return nil
}

func (c *Conn) handleVersion(*irc.Message) error {
	c.replyNumeric(irc.RPL_VERSION, c.srv.cfg.Version, c.srv.cfg.ServerName, "Matrix gateway")
	for _, params := range c.srv.isupport.lines() {
		c.replyNumeric(irc.RPL_ISUPPORT, append(params, "are supported by this server")...)
	}
	return nil
}

// handleMode answers user modes here and sends channel modes to the session.
func (c *Conn) handleMode(m *irc.Message) error {
	target := m.Params[0]
	if target == "" { // "MODE :" would index an empty target below
		return errNeedMoreParams(m.Command)
	}
	if strings.ContainsRune(ChanTypes, rune(target[0])) {
		c.forward(m)
		return nil
	}
	if !strings.EqualFold(target, c.Nick()) {
		return ircreply.Numeric(irc.ERR_USERSDONTMATCH, "Cannot change mode for other users")
	}
	if len(m.Params) == 1 {
		c.replyNumeric(irc.RPL_UMODEIS, c.userModes())
		return nil
	}
	// Only +i exists: nobody outside a shared room can list this user
	// anyway, so it is true either way and clients that set it on connect
	// (irssi does) get a plain answer. Other modes mean nothing in Matrix.
	adding, changed, unknown := true, "", false
	for _, r := range m.Params[1] {
		switch r {
		case '+', '-':
			adding = r == '+'
		case 'i':
			if c.invisible.Swap(adding) != adding {
				changed += map[bool]string{true: "+i", false: "-i"}[adding]
			}
		default:
			unknown = true
		}
	}
	if changed != "" {
		c.reply(&irc.Message{Prefix: c.selfPrefix(), Command: "MODE", Params: []string{c.Nick(), changed}})
	}
	if unknown {
		return ircreply.Numeric(irc.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
	}
	if changed == "" {
		c.replyNumeric(irc.RPL_UMODEIS, c.userModes())
	}
	return nil
}

func (c *Conn) userModes() string {
	if c.invisible.Load() {
		return "+i"
	}
	return "+"
}
