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

// listLines sends a LIST command and returns its 322 lines by channel,
// failing on a FAIL.
func listLines(t *testing.T, c *testenv.IRCClient, command string) map[string]*irc.Message {
	t.Helper()
	c.Send("%s", command)
	got := map[string]*irc.Message{}
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "FAIL" {
			t.Fatalf("%s: %s", command, m)
		}
		if m.Command == irc.RPL_LIST {
			got[m.Param(1)] = m
		}
		return m.Command == irc.RPL_LISTEND
	}, "323 answering "+command)
	return got
}

// Spaces (issue 18): LIST >#space lists a space's rooms, joined or not,
// with member counts and topics, from /hierarchy (ELIST=S); joining a
// space says how to see its rooms.
func TestSpacesInList(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, joinedRoom, channel := twoInARoom(t, hs, "spacechild")
		ctx := ctxFor(t)
		mkRoom := func(req *mautrix.ReqCreateRoom) id.RoomID {
			req.Preset = "public_chat"
			resp, err := bob.Client.CreateRoom(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return resp.RoomID
		}
		spaceAlias := uniq("space")
		space := mkRoom(&mautrix.ReqCreateRoom{RoomAliasName: spaceAlias, Name: "Conference",
			CreationContent: map[string]any{"type": "m.space"}})
		other := mkRoom(&mautrix.ReqCreateRoom{Name: "Hallway", Topic: "coffee and chat"})
		sub := mkRoom(&mautrix.ReqCreateRoom{Name: "Devrooms", CreationContent: map[string]any{"type": "m.space"}})
		for _, child := range []id.RoomID{joinedRoom, other, sub} {
			if _, err := bob.Client.SendStateEvent(ctx, space, event.StateSpaceChild, child.String(),
				map[string]any{"via": []string{hs.ServerName}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := alice.Client.SendStateEvent(ctx, joinedRoom, event.StateTopic, "", map[string]any{"topic": "the joined one"}); err != nil {
			t.Fatal(err)
		}

		// Dendrite v0.15.2 shows a space's hierarchy only to its members
		// (or when it is world-readable), and its public rooms only to
		// members of the space: alice is in it, as people in a community are.
		joinRoom(t, alice, space)
		spaceChannel := "#" + spaceAlias + ":" + hs.ServerName

		c := connect(t, g, "alice", alice)
		burst := awaitBurst(t, c, channel, spaceChannel)
		if got := isupport(burst)["ELIST"]; got != "S" {
			t.Errorf("ISUPPORT ELIST = %q, want S", got)
		}
		got := listLines(t, c, "LIST >"+spaceChannel)
		if len(got) != 3 {
			t.Errorf("LIST >%s gave %d rooms, want 3: %v", spaceChannel, len(got), got)
		}
		if m := got[channel]; m == nil || m.Param(2) != "2" || !strings.Contains(m.Trailing(), "the joined one") {
			t.Errorf("the joined child = %v, want %s with 2 members and its topic", m, channel)
		}
		if m := got[other.String()]; m == nil || m.Param(2) != "1" || m.Trailing() != "[Hallway] coffee and chat" {
			t.Errorf("the child alice is not in = %v, want %s, 1 member, [Hallway] coffee and chat", m, other)
		}
		if m := got[sub.String()]; m == nil || !strings.HasPrefix(m.Trailing(), "[space] [Devrooms]") {
			t.Errorf("the subspace = %v, want it marked [space]", m)
		}
		// Joining a space from IRC says what it is and how to see its rooms.
		space2Alias := uniq("space")
		mkRoom(&mautrix.ReqCreateRoom{RoomAliasName: space2Alias, CreationContent: map[string]any{"type": "m.space"}})
		space2Channel := "#" + space2Alias + ":" + hs.ServerName
		c.Send("JOIN %s", space2Channel)
		note := c.ExpectMatch(t, isCmd("NOTICE", space2Channel), "the NOTICE that the joined channel is a space")
		if !strings.Contains(note.Trailing(), "is a Matrix space") || !strings.Contains(note.Trailing(), "LIST >"+space2Channel) {
			t.Errorf("joining a space: %s", note)
		}

		// By room ID too; and clear refusals.
		if got := listLines(t, c, "LIST >"+space.String()); len(got) != 3 {
			t.Errorf("LIST >%s gave %v", space, got)
		}
		c.Send("LIST >#nosuchspace-%s:%s", spaceAlias, hs.ServerName)
		c.ExpectMatch(t, isCmd("NOTICE", "alice"), "a refusal for an unknown space")
		c.Send("LIST >%s", channel)
		m := c.ExpectMatch(t, isCmd("NOTICE", "alice"), "a refusal for a room")
		if !strings.Contains(m.Trailing(), "is a room, not a space") {
			t.Errorf("LIST >room = %s", m)
		}
	})
}
