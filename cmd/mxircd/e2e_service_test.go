package main

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
)

// The service nick always wins: a Matrix user whose display name is the
// service's nick gets another nick, and a line to the service is answered
// by the service and never sent to that user. (VERIFY is tested in
// e2e_e2ee_test.go.)
func TestServiceNickIsNeverAMatrixUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "service")
		if err := bob.Client.SetDisplayName(ctxFor(t), "mxircd"); err != nil {
			t.Fatal(err)
		}
		c := connect(t, g, "alice", alice)
		names := waitNames(t, c, channel, bob.Localpart)
		for _, n := range strings.Fields(names.Trailing()) {
			if strings.EqualFold(strings.TrimLeft(n, "@+"), "mxircd") {
				t.Errorf("a Matrix user was given the service's nick: %s", names)
			}
		}
		for _, to := range []string{"mxircd", "NickServ"} {
			c.Send("PRIVMSG %s :HELP", to)
			c.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "NOTICE" && m.Prefix.Name == to && strings.Contains(m.Trailing(), "HELP")
			}, "the service's HELP as "+to)
			c.Send("PRIVMSG %s :NOSUCHTHING", to)
			c.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "NOTICE" && m.Prefix.Name == to && strings.Contains(m.Trailing(), "Unknown command")
			}, "the service's answer to an unknown command")
		}
		for _, raw := range roomRaw(t, bob, room) {
			if strings.Contains(raw, "HELP") || strings.Contains(raw, "NOSUCHTHING") {
				t.Errorf("a line to the service reached Matrix: %s", raw)
			}
		}
	})
}
