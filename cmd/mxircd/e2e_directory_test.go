package main

import (
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

func directoryVisibility(t *testing.T, acct *testenv.Account, room id.RoomID) mautrix.RoomDirectoryVisibility {
	t.Helper()
	vis, err := acct.Client.GetRoomDirectoryVisibility(ctxFor(t), room)
	if err != nil {
		t.Fatal(err)
	}
	return vis
}

// Directory visibility (issue 18): a room not in the room directory is
// +s; MODE -s publishes it and +s (or +p) takes it out; a change made in
// Matrix shows at the next MODE query, to every client.
func TestDirectoryVisibility(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "dirvis")
		c := connect(t, g, "alice", alice)
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
		waitNames(t, c, channel, bob.Localpart)
		c.Send("MODE %s", channel)
		c.ExpectMatch(t, isCmd(irc.RPL_CHANNELMODEIS, "alice", channel, "+nst"), "324 +nst for a room not in the directory")

		c.Send("MODE %s -s", channel)
		expectMode(t, c, channel, "-s")
		if vis := directoryVisibility(t, bob, room); vis != mautrix.RoomDirectoryVisibilityPublic {
			t.Errorf("after -s the room's directory visibility is %q", vis)
		}
		c.Send("MODE %s", channel)
		c.ExpectMatch(t, isCmd(irc.RPL_CHANNELMODEIS, "alice", channel, "+nt"), "324 +nt once published")
		if m := waitNames(t, c, channel, bob.Localpart); m.Param(1) != "=" {
			t.Errorf("NAMES of a published room = %s, want =", m)
		}
		c.Send("MODE %s +p", channel)
		expectMode(t, c, channel, "+s")
		if vis := directoryVisibility(t, bob, room); vis != mautrix.RoomDirectoryVisibilityPrivate {
			t.Errorf("after +p the room's directory visibility is %q", vis)
		}
		// A secret channel's NAMES says @.
		if m := waitNames(t, c, channel, bob.Localpart); m.Param(1) != "@" {
			t.Errorf("NAMES of a secret room = %s, want @", m)
		}

		// Element publishes it: the next MODE query sees it, and the
		// account's other client is told.
		c2 := connect(t, g, "alice2", alice)
		c2.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice2", channel), "second client's burst")
		if err := alice.Client.PublishRoomToDirectory(ctxFor(t), room, mautrix.RoomDirectoryVisibilityPublic); err != nil {
			t.Fatal(err)
		}
		c.Send("MODE %s", channel)
		c.ExpectMatch(t, isCmd(irc.RPL_CHANNELMODEIS, "alice", channel, "+nt"), "324 +nt after Element published it")
		m := c2.ExpectMatch(t, isCmd("MODE", channel, "-s"), "MODE -s on the other client")
		if m.Prefix.Name != "mxircd" {
			t.Errorf("the change found by a query comes from %s, want the server", m.Prefix)
		}

		// bob may not change the directory.
		cb := connect(t, g, "bob", bob)
		cb.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "bob", channel), "bob's burst")
		cb.Send("MODE %s +s", channel)
		cb.ExpectMatch(t, isCmd(irc.ERR_CHANOPRIVSNEEDED, "bob", channel), "482 for bob's +s")
		if vis := directoryVisibility(t, alice, room); vis != mautrix.RoomDirectoryVisibilityPublic {
			t.Errorf("bob's refused +s left the visibility %q", vis)
		}

		// alice's +s reaches bob's session here at once, though Matrix
		// tells it nothing, and its NAMES says @ without asking.
		c.Send("MODE %s +s", channel)
		expectMode(t, c, channel, "+s")
		m = cb.ExpectMatch(t, isCmd("MODE", channel, "+s"), "alice's MODE +s on bob's client")
		if m.Prefix.Name != alice.Localpart {
			t.Errorf("bob sees the +s from %s, want alice", m.Prefix)
		}
		if m := waitNames(t, cb, channel, alice.Localpart); m.Param(1) != "@" {
			t.Errorf("bob's NAMES of the room alice made secret = %s, want @", m)
		}
		// An account that joins later sees @ in its first NAMES: what a
		// session here learned holds for all.
		carol := hs.Register(t, "carol")
		cc := connect(t, g, "carol", carol)
		cc.Expect(t, irc.RPL_ENDOFMOTD)
		cc.Send("JOIN %s", channel)
		if m := cc.ExpectMatch(t, isCmd(irc.RPL_NAMREPLY, "carol"), "carol's NAMES on JOIN"); m.Param(1) != "@" {
			t.Errorf("NAMES on joining a secret room = %s, want @", m)
		}
	})
}

// matrix.list_new_channels: a channel made by JOIN is published in the
// room directory (not +s), so LIST shows it as IRC's LIST does; by
// default it is +s, out of the directory.
func TestListNewChannels(t *testing.T) {
	for _, list := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "on"}[list], func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, "sqlite", func(c *Config) { c.Matrix.ListNewChannels = list }))
			alice := hs.Register(t, "alice")
			c := connect(t, g, "alice", alice)
			c.Expect(t, irc.RPL_ENDOFMOTD)
			channel := "#" + uniq("fresh") + ":" + hs.ServerName
			c.Send("JOIN %s", channel)
			c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "the new channel's burst")
			room, err := alice.Client.ResolveAlias(ctxFor(t), id.RoomAlias(channel))
			if err != nil {
				t.Fatal(err)
			}
			want, modes := mautrix.RoomDirectoryVisibilityPrivate, "+nst"
			if list {
				want, modes = mautrix.RoomDirectoryVisibilityPublic, "+nt"
			}
			if vis := directoryVisibility(t, alice, room.RoomID); vis != want {
				t.Errorf("directory visibility of the new room = %q, want %q", vis, want)
			}
			c.Send("MODE %s", channel)
			c.ExpectMatch(t, isCmd(irc.RPL_CHANNELMODEIS, "alice", channel, modes), "324 "+modes)
		})
	}
}
