package ircd

import (
	"testing"

	"gopkg.in/irc.v4"
)

// OPER always refuses: Matrix has no IRC operators, so no name and
// password make one (491), and nothing else follows, no MODE +o; too few
// parameters is 461, and before registration it is 451 as any command.
func TestOperAlwaysRefuses(t *testing.T) {
	ts := startServer(t, testConfig())

	unregistered := ts.dial(t)
	unregistered.send("OPER operuser operpassword")
	unregistered.expect(irc.ERR_NOTREGISTERED, "*")

	c, _ := ts.registered(t, "bar")
	for _, line := range []string{"OPER operuser operpassword", "OPER notanoperuser somepassword", "OPER bar " + testPassword} {
		c.send(line)
		if m := c.expect(irc.ERR_NOOPERHOST, "bar"); len(m.Params) != 2 || m.Trailing() != "No operator blocks here: Matrix has no IRC operators" {
			t.Errorf("%s: got %s", line, m)
		}
		c.syncPing()
	}
	c.send("OPER operuser")
	c.expect(irc.ERR_NEEDMOREPARAMS, "bar", "OPER")
	c.syncPing()
}
