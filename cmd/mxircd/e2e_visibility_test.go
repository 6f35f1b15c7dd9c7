package main

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

// 4: the gateway keeps a room's events once for all its accounts, but each
// account's history shows only what the homeserver let it see: in a room
// whose history is for members since they joined, what bob's session
// stored before carol joined is not in carol's CHATHISTORY.
func TestChatHistoryKeepsHistoryVisibility(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		bob, carol := hs.Register(t, "bob"), hs.Register(t, "carol")
		alias := uniq("members")
		resp, err := bob.Client.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{
			RoomAliasName: alias, Preset: "public_chat",
			InitialState: []*event.Event{{
				Type: event.StateHistoryVisibility, StateKey: ptr(""),
				Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		room, channel := resp.RoomID, "#"+alias+":"+hs.ServerName

		bc := dialClient(t, b.addr(), "bob", bob, "laptop")
		awaitBurst(t, bc, channel)
		secret := say(t, bob, room, "before carol joined")
		waitStored(t, b.g, bob.UserID, secret)
		quit(t, bc)

		joinRoom(t, carol, room)
		after := say(t, bob, room, "after carol joined")
		cc := dialClient(t, b.addr(), "carol", carol, "laptop", historyCaps...)
		awaitBurst(t, cc, channel)
		waitStored(t, b.g, carol.UserID, after)
		var bodies []string
		for _, m := range chathistory(t, cc, channel, "LATEST %s * 100", channel) {
			if m.Command == "PRIVMSG" {
				bodies = append(bodies, m.Trailing())
			}
		}
		if len(bodies) != 1 || bodies[0] != "after carol joined" {
			t.Errorf("carol's history of a room for members since their join: %q, want only what came after she joined", bodies)
		}
	})
}
