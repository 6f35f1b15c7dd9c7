package main

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Rooms without an alias get readable channel names from their room name,
// unique for the account and the same after a reconnect; an alias or name
// change renames the channel with PART and JOIN.
func TestReadableChannelNames(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
		ctx := ctxFor(t)
		name := uniq("Same Name ")
		base := "#" + strings.ReplaceAll(name, " ", "-")
		var rooms []id.RoomID
		c := connect(t, g, "alice", alice)
		c.Drain(t)
		for i, want := range []string{base, base + "-2"} {
			resp, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: name, Preset: "public_chat"})
			if err != nil {
				t.Fatal(err)
			}
			rooms = append(rooms, resp.RoomID)
			joinRoom(t, alice, resp.RoomID)
			c.ExpectMatch(t, isCmd("JOIN", want), "JOIN "+want+" for room "+string(rune('A'+i)))
		}
		alwaysOff(t, c)
		c.Send("QUIT")
		c.ExpectClosed(t)
		waitNoSession(t, g)
		saved, err := g.store.ChannelNames(ctx, alice.UserID)
		if err != nil || saved[rooms[0]] != base || saved[rooms[1]] != base+"-2" {
			t.Fatalf("stored channel names = %v, %v", saved, err)
		}

		c = connect(t, g, "alice", alice)
		got := map[string]bool{}
		c.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == "JOIN" {
				got[m.Param(0)] = true
			}
			return got[base] && got[base+"-2"]
		}, "both names again after reconnecting")
		c.Drain(t)

		// The second room gets an alias: its channel is renamed.
		aliasLocal := uniq("renamed")
		alias := id.NewRoomAlias(aliasLocal, hs.ServerName)
		if _, err := bob.Client.CreateAlias(ctx, alias, rooms[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Client.SendStateEvent(ctx, rooms[1], event.StateCanonicalAlias, "", &event.CanonicalAliasEventContent{Alias: alias}); err != nil {
			t.Fatal(err)
		}
		c.ExpectMatch(t, isCmd("PART", base+"-2"), "PART of the old name")
		c.ExpectMatch(t, isCmd("JOIN", alias.String()), "JOIN of the new name")
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && strings.Contains(m.Trailing(), "is now called "+alias.String())
		}, "notice about the rename")
		c.Send("PRIVMSG %s :into the renamed room", alias)
		bob.WaitForEvent(t, ctx, rooms[1], func(ev *event.Event) bool {
			return ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "into the renamed room"
		})
	})
}

// With short_aliases, aliases on the user's own server drop ":server", and
// JOIN #name finds them.
func TestShortAliases(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := startTestGateway(t, gatewayConfig(t, hs, "sqlite", func(c *Config) { c.Matrix.ShortAliases = true }))
	alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
	aliasLocal := uniq("short")
	createRoom(t, bob, aliasLocal, "")
	c := connect(t, g, "alice", alice)
	c.Drain(t)
	c.Send("JOIN #%s", aliasLocal)
	c.ExpectMatch(t, isCmd("JOIN", "#"+aliasLocal), "JOIN under the short name")
	c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", "#"+aliasLocal), "names")

	// An invitation names the channel as it will be once joined.
	invitedLocal := uniq("shortinv")
	invited := createRoom(t, bob, invitedLocal, "")
	if _, err := bob.Client.InviteUser(ctxFor(t), invited, &mautrix.ReqInviteUser{UserID: alice.UserID}); err != nil {
		t.Fatal(err)
	}
	inv := c.ExpectMatch(t, isCmd("INVITE"), "the INVITE")
	if inv.Param(1) != "#"+invitedLocal {
		t.Errorf("INVITE = %s, want the short name #%s", inv, invitedLocal)
	}
}

// A group DM without a name is a channel named after its members.
func TestGroupDMName(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bob, carol := hs.Register(t, "alice"), hs.Register(t, "bob"), hs.Register(t, "carol")
	ctx := ctxFor(t)
	c := connect(t, g, "alice", alice)
	c.Drain(t)
	resp, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", Invite: []id.UserID{alice.UserID, carol.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	joinRoom(t, alice, resp.RoomID)
	first, second := bob.Localpart, carol.Localpart
	if carol.UserID < bob.UserID {
		first, second = second, first
	}
	c.ExpectMatch(t, isCmd("JOIN", "#"+first+"-"+second), "JOIN #"+first+"-"+second)
}
