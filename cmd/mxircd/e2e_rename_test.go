package main

import (
	"errors"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// RENAME gives a room a new alias: it becomes the canonical alias, the old
// alias is removed so the old name makes a new channel, and every client
// sees the rename (RENAME with draft/channel-rename, PART and JOIN
// without). Refusals: no power (482, and the alias made for it is taken
// back), a name elsewhere, a name in use.
func TestRename(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
		oldLocal, newLocal := uniq("renamefrom"), uniq("renameto")
		channel, newChannel := "#"+oldLocal+":"+hs.ServerName, "#"+newLocal+":"+hs.ServerName
		room := createRoom(t, alice, oldLocal, "")
		joinRoom(t, bob, room)
		c := connectWithCaps(t, g, "alice", alice, "draft/channel-rename", "standard-replies")
		c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "alice's burst")
		b := connect(t, g, "bob", bob)
		b.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "bob", channel), "bob's burst")

		b.Send("RENAME %s %s :mine now", channel, newChannel)
		b.Expect(t, irc.ERR_CHANOPRIVSNEEDED)
		c.Send("RENAME %s #elsewhere:example.org :far away", channel)
		if m := c.Expect(t, "FAIL"); m.Param(1) != "CANNOT_RENAME" {
			t.Errorf("rename to another server = %s", m)
		}

		c.Send("RENAME %s %s :a tidier name", channel, newChannel)
		c.ExpectMatch(t, isCmd("RENAME", channel, newChannel, "a tidier name"), "RENAME with its reason")
		b.ExpectMatch(t, isCmd("PART", channel), "bob's PART of the old name")
		b.ExpectMatch(t, isCmd("JOIN", newChannel), "bob's JOIN of the new name")

		ctx := ctxFor(t)
		if resp, err := bob.Client.ResolveAlias(ctx, id.RoomAlias(newChannel)); err != nil || resp.RoomID != room {
			t.Errorf("new alias resolves to %v (%v), want %s", resp, err, room)
		}
		if _, err := bob.Client.ResolveAlias(ctx, id.RoomAlias(channel)); !errors.Is(err, mautrix.MNotFound) {
			t.Errorf("old alias after the rename: %v, want M_NOT_FOUND", err)
		}
		// The old name is free: joining it makes a new channel.
		c.Send("JOIN %s", channel)
		c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN of the freed name")

		takenLocal := uniq("taken")
		createRoom(t, bob, takenLocal, "")
		c.Send("RENAME %s #%s:%s :clash", newChannel, takenLocal, hs.ServerName)
		if m := c.Expect(t, "FAIL"); m.Param(1) != "CHANNEL_NAME_IN_USE" {
			t.Errorf("rename to a taken alias = %s", m)
		}
	})
}
