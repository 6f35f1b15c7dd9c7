package main

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// expectMode waits for a MODE line on channel with the given mode string
// and arguments.
func expectMode(t *testing.T, c *testenv.IRCClient, channel, modes string, args ...string) *irc.Message {
	t.Helper()
	return c.ExpectMatch(t, isCmd("MODE", append([]string{channel, modes}, args...)...),
		"MODE "+channel+" "+modes+" "+strings.Join(args, " "))
}

func powerLevels(t *testing.T, acct *testenv.Account, room id.RoomID) *event.PowerLevelsEventContent {
	t.Helper()
	var pl event.PowerLevelsEventContent
	if err := acct.Client.StateEvent(ctxFor(t), room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	return &pl
}

func joinRule(t *testing.T, acct *testenv.Account, room id.RoomID) event.JoinRule {
	t.Helper()
	var jr event.JoinRulesEventContent
	if err := acct.Client.StateEvent(ctxFor(t), room, event.StateJoinRules, "", &jr); err != nil {
		t.Fatal(err)
	}
	return jr.JoinRule
}

// An op on IRC changes power levels, join rules and bans with MODE, kicks
// and invites; the same changes made from Matrix arrive as MODE and KICK.
func TestModesKickInvite(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "modes")
		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
		waitNames(t, c, channel, bob.Localpart)
		ctx := ctxFor(t)

		c.Send("MODE %s +o %s", channel, bob.Localpart)
		expectMode(t, c, channel, "+o", bob.Localpart)
		if got := powerLevels(t, bob, room).GetUserLevel(bob.UserID); got != 50 {
			t.Errorf("after +o bob's level is %d, want 50", got)
		}
		c.Send("MODE %s -o+v %s %s", channel, bob.Localpart, bob.Localpart)
		expectMode(t, c, channel, "-o+v", bob.Localpart, bob.Localpart)
		if pl := powerLevels(t, bob, room); pl.GetUserLevel(bob.UserID) != pl.UsersDefault+1 {
			t.Errorf("after +v bob's level is %d", pl.GetUserLevel(bob.UserID))
		}

		c.Send("MODE %s +m", channel)
		expectMode(t, c, channel, "+m")
		if pl := powerLevels(t, bob, room); pl.GetEventLevel(event.EventMessage) <= pl.UsersDefault {
			t.Errorf("+m left messages at level %d", pl.GetEventLevel(event.EventMessage))
		}
		c.Send("MODE %s -m+i", channel)
		expectMode(t, c, channel, "-m")
		expectMode(t, c, channel, "+i")
		if jr := joinRule(t, bob, room); jr != event.JoinRuleInvite {
			t.Errorf("join rule after +i: %s", jr)
		}
		c.Send("MODE %s -i", channel)
		expectMode(t, c, channel, "-i")

		// The same from Matrix: alice's other client takes bob's voice.
		pl := powerLevels(t, alice, room)
		pl.SetUserLevel(bob.UserID, pl.UsersDefault)
		if _, err := alice.Client.SendStateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
			t.Fatal(err)
		}
		expectMode(t, c, channel, "-v", bob.Localpart)

		// Bans: +b on a member kicks and bans; the list shows the mask.
		mask := "*!" + bob.Localpart + "@" + hs.ServerName
		c.Send("MODE %s +b %s", channel, bob.Localpart)
		c.ExpectMatch(t, isCmd("KICK", channel, bob.Localpart), "KICK by the ban")
		expectMode(t, c, channel, "+b", mask)
		c.Send("MODE %s +b", channel)
		c.ExpectMatch(t, isCmd(irc.RPL_BANLIST, "alice", channel, mask), "367")
		c.Expect(t, irc.RPL_ENDOFBANLIST)
		c.Send("MODE %s -b %s", channel, mask)
		expectMode(t, c, channel, "-b", mask)

		c.Send("INVITE %s %s", bob.UserID, channel)
		c.ExpectMatch(t, isCmd(irc.RPL_INVITING, "alice", bob.UserID.String(), channel), "341")
		var member event.MemberEventContent
		if err := alice.Client.StateEvent(ctx, room, event.StateMember, bob.UserID.String(), &member); err != nil || member.Membership != event.MembershipInvite {
			t.Fatalf("bob's membership after INVITE: %q, %v", member.Membership, err)
		}
		joinRoom(t, bob, room)
		c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && m.Prefix.Name == bob.Localpart }, "bob back")
		c.Send("KICK %s %s :out you go", channel, bob.Localpart)
		m := c.ExpectMatch(t, isCmd("KICK", channel, bob.Localpart), "KICK")
		if m.Prefix.Name != "alice" || m.Param(2) != "out you go" {
			t.Errorf("KICK = %s", m)
		}

		// bob, with no power, is refused with 482 for each.
		joinRoom(t, bob, room)
		cb := connect(t, g, "bob", bob)
		cb.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "bob", channel), "bob's burst")
		cb.Send("MODE %s +o bob", channel)
		cb.ExpectMatch(t, isCmd(irc.ERR_CHANOPRIVSNEEDED, "bob", channel), "482 for MODE")
		cb.Send("KICK %s %s", channel, alice.Localpart)
		cb.ExpectMatch(t, isCmd(irc.ERR_CHANOPRIVSNEEDED, "bob", channel), "482 for KICK")
		cb.Send("MODE %s +b %s", channel, alice.Localpart)
		cb.ExpectMatch(t, isCmd(irc.ERR_CHANOPRIVSNEEDED, "bob", channel), "482 for a ban")
		cb.Send("KICK %s nobody-here", channel)
		cb.Expect(t, irc.ERR_NOSUCHNICK)
		cb.Send("MODE %s +z", channel)
		cb.Expect(t, irc.ERR_UNKNOWNMODE)
		if got := powerLevels(t, alice, room).GetUserLevel(bob.UserID); got != 0 {
			t.Errorf("refused MODE changed bob's level to %d", got)
		}
		// A message the homeserver refuses is answered, not dropped.
		c.Send("MODE %s +m", channel)
		expectMode(t, c, channel, "+m")
		cb.ExpectMatch(t, isCmd("MODE", channel, "+m"), "+m on bob's side")
		cb.Send("PRIVMSG %s :may I speak", channel)
		cb.ExpectMatch(t, isCmd(irc.ERR_CANNOTSENDTOCHAN, "bob", channel), "404 for a message under +m")
		if bodies := roomBodies(t, alice, room); slices.Contains(bodies, "may I speak") {
			t.Errorf("a refused message is in the room: %q", bodies)
		}
		c.Send("MODE %s -m", channel)
		expectMode(t, c, channel, "-m")
		cb.Send("QUIT")
		cb.ExpectClosed(t)

		// An invitation from Matrix shows as INVITE; JOIN accepts it.
		other, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{alice.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		inv := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "INVITE" && m.Param(1) == other.RoomID.String() }, "INVITE")
		if inv.Prefix.Name != bob.Localpart || inv.Param(0) != "alice" {
			t.Errorf("INVITE = %s", inv)
		}
		c.Send("JOIN %s", other.RoomID)
		c.ExpectMatch(t, isCmd("JOIN", other.RoomID.String()), "JOIN of the invited room")
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", other.RoomID.String()), "its names")
	})
}

// Bans and +o name users who share no room as PRIVMSG does: a nick
// nobody here holds is the user of that name on the server. +n is always
// on in Matrix, so +n is accepted and -n refused.
func TestModesOfStrangers(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, _, room, channel := twoInARoom(t, hs, "strangermodes")
		dave := hs.Register(t, "dave")
		c := connect(t, g, "alice", alice)
		awaitBurst(t, c, channel)

		c.Send("MODE %s +b %s!*@*", channel, dave.Localpart)
		expectMode(t, c, channel, "+b", "*!"+dave.Localpart+"@"+hs.ServerName)
		var member event.MemberEventContent
		if err := alice.Client.StateEvent(ctxFor(t), room, event.StateMember, dave.UserID.String(), &member); err != nil || member.Membership != event.MembershipBan {
			t.Errorf("dave's membership after +b: %q, %v", member.Membership, err)
		}

		c.Send("MODE %s +o %s", channel, dave.Localpart)
		c.ExpectMatch(t, isCmd(irc.ERR_USERNOTINCHANNEL, "alice", dave.Localpart, channel), "441 for a user not on the channel")
		nobody := uniq("nobody")
		c.Send("MODE %s +o %s", channel, nobody)
		c.ExpectMatch(t, isCmd(irc.ERR_NOSUCHNICK, "alice", nobody), "401 for a user who does not exist")

		c.Send("MODE %s +n", channel)
		c.Send("MODE %s -n", channel)
		lines := linesUntilPong(t, c, "after-n")
		if !hasLine(lines, isCmd(irc.ERR_UNKNOWNMODE, "alice", "n")) || len(lines) != 1 {
			t.Errorf("+n then -n: %v, want one refusal of -n", lines)
		}
	})
}
