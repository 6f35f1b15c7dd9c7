package main

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Knocking (issue 18): the join rule "knock" is +K (with +i) both ways;
// KNOCK knocks on Matrix; a knock on a room where the account may invite
// arrives as a NOTICE saying how to answer it.
func TestKnock(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "knock")
		ctx := ctxFor(t)
		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
		waitNames(t, c, channel, bob.Localpart)

		c.Send("MODE %s +K", channel)
		expectMode(t, c, channel, "+iK")
		if jr := joinRule(t, bob, room); jr != event.JoinRuleKnock {
			t.Errorf("join rule after +K: %s", jr)
		}
		c.Send("MODE %s", channel)
		c.ExpectMatch(t, isCmd(irc.RPL_CHANNELMODEIS, "alice", channel, "+iKnst"), "324 +iKnst (not in the directory)")
		c.Send("MODE %s -K", channel)
		expectMode(t, c, channel, "-K")
		if jr := joinRule(t, bob, room); jr != event.JoinRuleInvite {
			t.Errorf("join rule after -K: %s", jr)
		}
		// From Matrix, as Element's "Ask to join" does.
		if _, err := alice.Client.SendStateEvent(ctx, room, event.StateJoinRules, "", &event.JoinRulesEventContent{JoinRule: event.JoinRuleKnock}); err != nil {
			t.Fatal(err)
		}
		expectMode(t, c, channel, "+K")

		// carol knocks. Dendrite v0.15.2 has no /knock endpoint, so the
		// gateway's KNOCK gets its refusal, said plainly ...
		carol := hs.Register(t, "carol")
		cc := connectWithCaps(t, g, "carol", carol, "standard-replies")
		cc.Send("KNOCK %s :let me in", channel)
		fail := cc.ExpectMatch(t, isCmd("FAIL", "KNOCK"), "FAIL KNOCK")
		if fail.Param(1) != "UNSUPPORTED" || !strings.Contains(fail.Trailing(), "does not support knocking") {
			t.Errorf("KNOCK on Dendrite = %s, want UNSUPPORTED saying the homeserver cannot knock", fail)
		}
		cc.Send("KNOCK notachannel")
		cc.ExpectMatch(t, isCmd(irc.ERR_NOSUCHCHANNEL, "carol"), "403 for a bad name")
		c.Send("KNOCK %s", channel)
		c.ExpectMatch(t, isCmd("714", "alice", channel), "714 knocking where one is")

		// ... but its room server takes a knock membership sent as state,
		// which is what /knock would make: alice is told, and answers.
		knock := map[string]any{"membership": "knock", "reason": "let me in"}
		if _, err := carol.Client.SendStateEvent(ctx, room, event.StateMember, carol.UserID.String(), knock); err != nil {
			t.Fatalf("Dendrite refused a knock membership event: %v", err)
		}
		n := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && m.Param(0) == channel && strings.Contains(m.Trailing(), "asks to join")
		}, "NOTICE of carol's knock")
		want := carol.Localpart + " (" + carol.UserID.String() + ") asks to join " + channel + ": let me in. To let them in: /INVITE " +
			carol.Localpart + " " + channel + "; to refuse: /KICK " + channel + " " + carol.Localpart
		if n.Trailing() != want {
			t.Errorf("knock notice = %q, want %q", n.Trailing(), want)
		}
		c.Send("KICK %s %s :not today", channel, carol.Localpart)
		deadline := time.Now().Add(15 * time.Second)
		for {
			var member event.MemberEventContent
			err := alice.Client.StateEvent(ctx, room, event.StateMember, carol.UserID.String(), &member)
			if err == nil && member.Membership == event.MembershipLeave {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("carol's membership after KICK of her knock: %q, %v (IRC: %v)", member.Membership, err, c.Lines())
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Knocking again, and let in this time.
		if _, err := carol.Client.SendStateEvent(ctx, room, event.StateMember, carol.UserID.String(), map[string]any{"membership": "knock"}); err != nil {
			t.Fatal(err)
		}
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && strings.Contains(m.Trailing(), carol.UserID.String()+") asks to join "+channel+". To let")
		}, "NOTICE of carol's second knock, without a reason")
		c.Send("INVITE %s %s", carol.Localpart, channel)
		c.ExpectMatch(t, isCmd(irc.RPL_INVITING, "alice", carol.Localpart, channel), "341")
		cc.ExpectMatch(t, isCmd("INVITE", "carol", channel), "carol invited")
	})
}
