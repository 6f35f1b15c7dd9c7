package main

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// membershipOf is user's membership of room as acct sees it.
func membershipOf(t *testing.T, acct *testenv.Account, room id.RoomID, user id.UserID) event.Membership {
	t.Helper()
	var m event.MemberEventContent
	if err := acct.Client.StateEvent(ctxFor(t), room, event.StateMember, user.String(), &m); err != nil {
		t.Fatalf("reading %s's membership of %s: %v", user, room, err)
	}
	return m.Membership
}

func waitMembership(t *testing.T, acct *testenv.Account, room id.RoomID, user id.UserID, want event.Membership) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for got := membershipOf(t, acct, room, user); got != want; got = membershipOf(t, acct, room, user) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's membership of %s is %q, want %q", user, room, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serviceLines sends the service a command and returns its NOTICEs up to
// and including the first one containing last.
func serviceLines(t *testing.T, c *testenv.IRCClient, command, last string) []string {
	t.Helper()
	c.Send("PRIVMSG mxircd :%s", command)
	var lines []string
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command != "NOTICE" || m.Prefix == nil || m.Prefix.Name != "mxircd" || m.Prefix.User != "service" {
			return false
		}
		lines = append(lines, m.Trailing())
		return strings.Contains(m.Trailing(), last)
	}, "service answer to "+command+" containing "+last)
	return lines
}

// Invite spam (issue 18): a direct chat invitation is accepted by itself
// only from someone alice already shares a room with; others are one
// INVITE line, accepted by JOIN and refused by the service's DECLINE
// (with IGNORE, the sender is ignored too); one sender's flood of
// invitations is summed up, not shown line by line.
func TestInviteSpam(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, _, channel := twoInARoom(t, hs, "invites")
		carol, dave, erin := hs.Register(t, "carol"), hs.Register(t, "dave"), hs.Register(t, "erin")
		ctx := ctxFor(t)
		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
		waitNames(t, c, channel, bob.Localpart)
		dmWith := func(from *testenv.Account) id.RoomID {
			resp, err := from.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
				Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{alice.UserID},
			})
			if err != nil {
				t.Fatal(err)
			}
			return resp.RoomID
		}

		// carol is a stranger: one INVITE line, not joined.
		carolDM := dmWith(carol)
		inv := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "INVITE" && m.Prefix.Name == carol.Localpart }, "carol's INVITE")
		if inv.Param(0) != "alice" || !strings.HasPrefix(inv.Param(1), "!") {
			t.Errorf("carol's invitation = %s, want INVITE alice <room>", inv)
		}
		// bob shares a room with alice: his DM is accepted by itself (after
		// carol's would have been, as joins go in order).
		bobDM := dmWith(bob)
		waitMembership(t, bob, bobDM, alice.UserID, event.MembershipJoin)
		if _, err := bob.Client.SendText(ctx, bobDM, "hi, it's bob"); err != nil {
			t.Fatal(err)
		}
		expectFrom(t, c, "PRIVMSG", bob.Localpart, "hi, it's bob")
		if got := membershipOf(t, carol, carolDM, alice.UserID); got != event.MembershipInvite {
			t.Errorf("a stranger's DM invitation was answered: alice's membership is %q", got)
		}

		// dave floods: five rooms. Three INVITE lines, the rest summed up.
		var daves []id.RoomID
		for range 5 {
			resp, err := dave.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{alice.UserID}})
			if err != nil {
				t.Fatal(err)
			}
			daves = append(daves, resp.RoomID)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			lines := serviceLines(t, c, "INVITES", "waiting")
			if strings.HasPrefix(lines[len(lines)-1], "6 invitation(s) waiting") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("INVITES never listed six invitations: %q", lines)
			}
			time.Sleep(100 * time.Millisecond)
		}
		shown, summaries := 0, 0
		for _, line := range c.Lines() {
			if strings.Contains(line, " INVITE alice ") && strings.HasPrefix(line, ":"+dave.Localpart+"!") {
				shown++
			}
			if strings.Contains(line, dave.UserID.String()+") sent you") && strings.Contains(line, "not shown one by one") {
				summaries++
			}
		}
		if shown != 3 || summaries == 0 || summaries > 2 {
			t.Errorf("dave's five invitations showed as %d INVITE lines and %d summaries, want 3 and 1 or 2:\n%s", shown, summaries, strings.Join(c.Lines(), "\n"))
		}

		// A client attaching now sees three of dave's and a summary too.
		c2 := connect(t, g, "alice2", alice)
		c2.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "2 more invitation(s), not shown one by one (5 waiting")
		}, "the summary in a new client's burst")

		// DECLINE refuses carol's; DECLINE dave IGNORE refuses his five and
		// ignores him.
		serviceLines(t, c, "DECLINE "+carolDM.String(), "Declined 1 invitation(s).")
		waitMembership(t, carol, carolDM, alice.UserID, event.MembershipLeave)
		serviceLines(t, c, "DECLINE "+dave.UserID.String()+" IGNORE", "Ignoring "+dave.UserID.String())
		for _, room := range daves {
			waitMembership(t, dave, room, alice.UserID, event.MembershipLeave)
		}
		if ig := ignoredOnMatrix(t, alice); !ig[dave.UserID] {
			t.Errorf("DECLINE ... IGNORE left m.ignored_user_list %v", ig)
		}
		serviceLines(t, c, "DECLINE #nothing:localhost", "No invitation is waiting for #nothing:localhost")
		serviceLines(t, c, "DECLINE", "Usage: DECLINE")

		// erin's DM, accepted with JOIN, is a query.
		erinDM := dmWith(erin)
		inv = c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "INVITE" && m.Prefix.Name == erin.Localpart }, "erin's INVITE")
		c.Send("JOIN %s", inv.Param(1))
		waitMembership(t, erin, erinDM, alice.UserID, event.MembershipJoin)
		if _, err := erin.Client.SendText(ctx, erinDM, "thanks for accepting"); err != nil {
			t.Fatal(err)
		}
		if m := expectFrom(t, c, "PRIVMSG", erin.Localpart, "thanks for accepting"); m.Param(0) != "alice" {
			t.Errorf("erin's DM accepted with JOIN arrived as %s, want a PRIVMSG to alice", m)
		}
	})
}
