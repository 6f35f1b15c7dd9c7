package main

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
)

// whowasReplies sends line and returns WHOWAS's replies (and the errors
// it may give) among the lines before the PONG that follows it.
func whowasReplies(t *testing.T, c *testenv.IRCClient, line, token string) []*irc.Message {
	t.Helper()
	c.Send("%s", line)
	var got []*irc.Message
	for _, m := range linesUntilPong(t, c, token) {
		switch m.Command {
		case irc.RPL_WHOWASUSER, irc.RPL_WHOISSERVER, irc.RPL_ENDOFWHOWAS, irc.ERR_WASNOSUCHNICK,
			irc.ERR_NEEDMOREPARAMS, irc.ERR_NONICKNAMEGIVEN, irc.ERR_UNKNOWNCOMMAND:
			got = append(got, m)
		}
	}
	return got
}

// checkReplies compares replies with want, one "command param param..."
// per line, the client's nick left out; "…" matches any last parameter.
func checkReplies(t *testing.T, what string, got []*irc.Message, want ...string) {
	t.Helper()
	var lines []string
	for _, m := range got {
		lines = append(lines, m.Command+" "+strings.Join(m.Params[1:], " "))
	}
	ok := len(lines) == len(want)
	for i := 0; ok && i < len(want); i++ {
		if prefix, loose := strings.CutSuffix(want[i], "…"); loose {
			ok = strings.HasPrefix(lines[i], prefix)
		} else {
			ok = lines[i] == want[i]
		}
	}
	if !ok {
		t.Errorf("%s:\n got %q\nwant %q", what, lines, want)
	}
}

// WHOWAS names the Matrix user a nick is, since on Matrix no one vanishes
// on disconnecting: a nick of a shared room is its member, from what the
// session knows; a bare nick nobody here holds, or a Matrix ID, is a user
// of the server, from their profile; a nick no one has is 406. Each ends
// with 369; any count is the one entry.
func TestWhowas(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, _, channel := twoInARoom(t, hs, "whowas")
		dave := hs.Register(t, "dave")
		if err := dave.Client.SetDisplayName(ctxFor(t), "Dave Whowas"); err != nil {
			t.Fatal(err)
		}
		bobProfile, err := bob.Client.GetOwnDisplayName(ctxFor(t))
		if err != nil {
			t.Fatal(err)
		}
		bobReal := bobProfile.DisplayName
		if bobReal == "" {
			bobReal = bob.UserID.String()
		}
		c := connect(t, g, "alice", alice)
		awaitBurst(t, c, channel)

		server := hs.ServerName
		ircServer := g.cfg.IRC.ServerName
		for i, count := range []string{"", " 1", " -1"} {
			checkReplies(t, "WHOWAS of a shared room's nick"+count,
				whowasReplies(t, c, "WHOWAS "+strings.ToUpper(bob.Localpart)+count, fmt.Sprintf("shared-%d", i)),
				"314 "+bob.Localpart+" "+bob.Localpart+" "+server+" * "+bobReal,
				"312 "+bob.Localpart+" "+ircServer+" …",
				"369 "+bob.Localpart+" …")
		}

		for i, nick := range []string{dave.Localpart, dave.UserID.String()} {
			checkReplies(t, "WHOWAS of a user sharing no room, as "+nick,
				whowasReplies(t, c, "WHOWAS "+nick+" 0", fmt.Sprintf("profile-%d", i)),
				"314 "+nick+" "+dave.Localpart+" "+server+" * Dave Whowas",
				"312 "+nick+" "+ircServer+" …",
				"369 "+nick+" …")
		}

		missing := uniq("nobody")
		checkReplies(t, "WHOWAS of an unknown nick",
			whowasReplies(t, c, "WHOWAS "+missing, "unknown"),
			"406 "+missing+" …",
			"369 "+missing+" …")
		checkReplies(t, "WHOWAS of a nick that cannot be a user",
			whowasReplies(t, c, "WHOWAS no*such", "invalid"),
			"406 no*such …",
			"369 no*such …")

		checkReplies(t, "WHOWAS without a nick",
			whowasReplies(t, c, "WHOWAS", "no-nick"),
			"461 WHOWAS …")
	})
}
