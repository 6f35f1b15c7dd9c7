package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/mapping"
)

// With lazy-loaded members (the default), sync shows of a room only the
// members who speak; what the gateway needs of the others comes from
// sync's room summary, or is fetched: an m.direct room whose third member
// never spoke is a channel, not a query (also when the room has a name),
// an unnamed one named after its members' display names; LIST counts
// every joined member without fetching a member list; the ban list shows
// a ban sync never showed. After a restart (resumed from the stored token)
// the same holds.
func TestLazySummary(t *testing.T) {
	forEachStoreWith(t, func(c *Config) { c.Matrix.LazyMembers = true }, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		ctx := ctxFor(t)
		alice, bob, carol := hs.Register(t, "alice"), hs.Register(t, "bob"), hs.Register(t, "carol")
		dave, eve, mallory := hs.Register(t, "dave"), hs.Register(t, "eve"), hs.Register(t, "mallory")
		for acct, name := range map[*testenv.Account]string{bob: "Bob B", carol: "Caroline Q"} {
			if err := acct.Client.SetDisplayName(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		// group: a room alice's m.direct says is a DM with bob, with carol
		// in it too, silent; only bob speaks, so the first sync's
		// timeline shows neither carol's join nor her member event.
		group, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
			Invite: []id.UserID{alice.UserID, carol.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		joinRoom(t, alice, group.RoomID)
		joinRoom(t, carol, group.RoomID)
		for i := range 12 {
			say(t, bob, group.RoomID, fmt.Sprintf("group talk %d", i))
		}
		// named: the same with a room name (no heroes in its summary).
		named, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Name: "Planning",
			Invite: []id.UserID{alice.UserID, carol.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		joinRoom(t, alice, named.RoomID)
		joinRoom(t, carol, named.RoomID)
		for i := range 12 {
			say(t, bob, named.RoomID, fmt.Sprintf("planning talk %d", i))
		}
		// dm: a DM with bob alone.
		dm, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{alice.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		joinRoom(t, alice, dm.RoomID)
		if err := alice.Client.SetAccountData(ctx, event.AccountDataDirectChats.Type,
			event.DirectChatsEventContent{bob.UserID: {group.RoomID, named.RoomID, dm.RoomID}}); err != nil {
			t.Fatal(err)
		}
		// big: five members and a ban by bob; only alice speaks (Dendrite
		// shows the member events the speakers sent, so not bob's ban).
		aliasLocal := uniq("summary")
		big := createRoom(t, bob, aliasLocal, "")
		bigChannel := "#" + aliasLocal + ":" + hs.ServerName
		for _, acct := range []*testenv.Account{alice, carol, dave, eve, mallory} {
			joinRoom(t, acct, big)
		}
		if _, err := bob.Client.BanUser(ctx, big, &mautrix.ReqBanUser{UserID: mallory.UserID, Reason: "spam"}); err != nil {
			t.Fatal(err)
		}
		var last id.EventID
		for i := range 12 {
			last = say(t, alice, big, fmt.Sprintf("big talk %d", i))
		}

		names := []string{"Bob B", "Caroline Q"}
		if carol.UserID < bob.UserID {
			slices.Reverse(names)
		}
		groupChannel := mapping.ReadableChannel(strings.Join(names, " "))
		namedChannel := mapping.ReadableChannel("Planning")
		mask := "*!" + mallory.Localpart + "@" + hs.ServerName

		check := func(when string) {
			t.Helper()
			a := dialClient(t, b.addr(), "alice", alice, "", "draft/no-implicit-names")
			joins := map[string]bool{}
			a.ExpectMatch(t, func(m *irc.Message) bool {
				if m.Command == "JOIN" {
					joins[m.Param(0)] = true
				}
				return joins[bigChannel] && joins[groupChannel] && joins[namedChannel]
			}, when+": JOINs of "+bigChannel+", "+groupChannel+" and "+namedChannel)
			waitStored(t, b.g, alice.UserID, last)
			fetches := b.g.sessions.MemberFetches()

			a.Send("LIST")
			count := ""
			a.ExpectMatch(t, func(m *irc.Message) bool {
				if m.Command == "JOIN" {
					joins[m.Param(0)] = true
				}
				if m.Command == irc.RPL_LIST && m.Param(1) == bigChannel {
					count = m.Param(2)
				}
				return m.Command == irc.RPL_LISTEND
			}, when+": end of LIST")
			if count != "5" {
				t.Errorf("%s: LIST shows %s with %q members, want 5 (alice, bob, carol, dave, eve)", when, bigChannel, count)
			}
			if n := b.g.sessions.MemberFetches(); n != fetches {
				t.Errorf("%s: LIST fetched %d member lists, want none (the summary counts)", when, n-fetches)
			}
			for ch := range joins {
				if strings.Contains(ch, bob.Localpart) || ch == string(group.RoomID) || ch == string(dm.RoomID) {
					t.Errorf("%s: a channel %s; the group is %s and the DM with bob a query", when, ch, groupChannel)
				}
			}

			a.Send("MODE %s b", bigChannel)
			var bans []string
			a.ExpectMatch(t, func(m *irc.Message) bool {
				if m.Command == irc.RPL_BANLIST && m.Param(1) == bigChannel {
					bans = append(bans, m.Param(2))
				}
				return m.Command == irc.RPL_ENDOFBANLIST
			}, when+": end of the ban list")
			if !slices.Equal(bans, []string{mask}) {
				t.Errorf("%s: ban list of %s: %v, want [%s]", when, bigChannel, bans, mask)
			}

			text := "psst " + when
			say(t, bob, dm.RoomID, text)
			// bob's nick comes from his display name.
			if m := expectFrom(t, a, "PRIVMSG", "Bob_B", text); m.Param(0) != "alice" {
				t.Errorf("%s: bob's DM arrived as %s, want a PRIVMSG to alice", when, m)
			}
			quit(t, a)
		}
		check("first connect")
		b.restart(t)
		waitSessions(t, b.g, 1)
		check("after a restart")
	})
}
