package ircd

import (
	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// OPER <name> <password> asks for IRC operator privileges. Matrix has no
// IRC operators: no one here may kill, rehash or see other users'
// connections, and a homeserver's admins are admins of Matrix, not of
// this gateway. So OPER always refuses, whatever name and password it is
// given, with 491 (no operator block matches), and LUSERS counts no
// operators. irctest's testOperSuccess, which expects an operator block
// to log in to, fails by design; its failure tests pass.
func (c *Conn) handleOper(*irc.Message) error {
	return ircreply.Numeric(irc.ERR_NOOPERHOST, "No operator blocks here: Matrix has no IRC operators")
}
