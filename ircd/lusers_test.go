package ircd

import (
	"strconv"
	"testing"

	"gopkg.in/irc.v4"
)

// lusersOf sends LUSERS and returns its numerics by command.
func lusersOf(c *testClient) map[string]*irc.Message {
	c.t.Helper()
	c.send("LUSERS")
	got := map[string]*irc.Message{}
	for {
		m := c.next()
		got[m.Command] = m
		if m.Command == rplGlobalUsers {
			return got
		}
	}
}

// checkLusers checks LUSERS against the users (of which invisible), the
// unregistered connections and the most users at once.
func checkLusers(t *testing.T, c *testClient, users, invisible, unknown, most int) {
	t.Helper()
	got := lusersOf(c)
	want := map[string]string{
		irc.RPL_LUSERCLIENT: "There are " + strconv.Itoa(users-invisible) + " users and " + strconv.Itoa(invisible) + " invisible on 1 servers",
		irc.RPL_LUSERME:     "I have " + strconv.Itoa(users) + " clients and 0 servers",
		rplLocalUsers:       "Current local users " + strconv.Itoa(users) + ", max " + strconv.Itoa(most),
		rplGlobalUsers:      "Current global users " + strconv.Itoa(users) + ", max " + strconv.Itoa(most),
	}
	for cmd, text := range want {
		if m := got[cmd]; m == nil || m.Trailing() != text {
			t.Errorf("%s = %v, want %q", cmd, m, text)
		}
	}
	if m := got[rplLocalUsers]; m != nil && (m.Param(1) != strconv.Itoa(users) || m.Param(2) != strconv.Itoa(most)) {
		t.Errorf("265 = %s", m)
	}
	switch m := got[irc.RPL_LUSERUNKNOWN]; {
	case unknown == 0 && m != nil:
		t.Errorf("253 = %s with no unregistered connection", m)
	case unknown > 0 && (m == nil || m.Param(1) != strconv.Itoa(unknown)):
		t.Errorf("253 = %v, want %d", m, unknown)
	}
}

// LUSERS counts the server's own connections: registered ones as users
// (invisible with +i), the others as unknown, and the most at once; one
// that quit is gone from the count at once.
func TestLusersCountsConnections(t *testing.T) {
	ts := startServer(t, testConfig())
	bar, _ := ts.registered(t, "bar")
	checkLusers(t, bar, 1, 0, 0, 1)

	unregistered := ts.dial(t)
	unregistered.send("NICK qux")
	unregistered.syncPing()
	checkLusers(t, bar, 1, 0, 1, 1)

	qux, _ := ts.registered(t, "qux")
	qux.send("MODE qux +i")
	qux.expect("MODE", "qux", "+i")
	checkLusers(t, bar, 2, 1, 1, 2)

	qux.send("QUIT")
	qux.expectClosed("Client quit")
	unregistered.send("QUIT")
	unregistered.expect("ERROR")
	unregistered.expectEOF()
	checkLusers(t, bar, 1, 0, 0, 2)
}

func TestTime(t *testing.T) {
	ts := startServer(t, testConfig())
	c, _ := ts.registered(t, "bar")
	c.send("TIME")
	if m := c.expect(irc.RPL_TIME, "bar", ts.srv.cfg.ServerName); m.Trailing() == "" {
		t.Errorf("391 = %s", m)
	}
}
