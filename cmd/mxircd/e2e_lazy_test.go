package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
)

// With lazy-loaded members, sync shows only the members who speak (and
// the account itself); Dendrite leaves silent ones out of the state. NAMES
// and WHO still show everyone: the full list is fetched once for the
// gateway, however many accounts ask; a member who joins after the fetch
// appears; after a restart the list is fetched again, as the stored state
// may lack members.
func TestLazyMembers(t *testing.T) {
	forEachStoreWith(t, func(c *Config) { c.Matrix.LazyMembers = true }, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "lazy")
		carol := hs.Register(t, "carol")
		joinRoom(t, carol, room)
		// More messages than the first sync's timeline holds, so neither
		// bob's nor carol's join is in it: only alice speaks.
		for i := range 15 {
			say(t, alice, room, fmt.Sprintf("talk %d", i))
		}
		last := say(t, alice, room, "the last word")

		// No implicit NAMES: both sessions hold the room before either
		// asks for its members.
		a := dialClient(t, b.addr(), "alice", alice, "", "draft/no-implicit-names")
		a.ExpectMatch(t, isCmd("JOIN", channel), "alice's JOIN burst")
		waitStored(t, b.g, alice.UserID, last)
		bc := dialClient(t, b.addr(), "bob", bob, "", "draft/no-implicit-names")
		bc.ExpectMatch(t, isCmd("JOIN", channel), "bob's JOIN burst")
		waitStored(t, b.g, bob.UserID, last)

		a.Send("NAMES %s", channel)
		bc.Send("NAMES %s", channel)
		for c, wants := range map[*testenv.IRCClient][]string{a: {bob.Localpart, carol.Localpart}, bc: {alice.Localpart, carol.Localpart}} {
			names := namesOf(t, c, channel)
			for _, want := range wants {
				if !slices.Contains(names, want) {
					t.Errorf("NAMES %s: %v, want %s (a member who never spoke) among them", channel, names, want)
				}
			}
		}
		if n := b.g.sessions.MemberFetches(); n != 1 {
			t.Errorf("%d member lists fetched for one room and two accounts, want 1", n)
		}
		a.Send("WHO %s", channel)
		var who []string
		a.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == irc.RPL_WHOREPLY {
				who = append(who, m.Param(5))
			}
			return m.Command == irc.RPL_ENDOFWHO
		}, "end of WHO")
		if !slices.Contains(who, carol.Localpart) {
			t.Errorf("WHO %s: %v, want %s among them", channel, who, carol.Localpart)
		}

		// A member who joins after the fetch comes through sync.
		dave := hs.Register(t, "dave")
		joinRoom(t, dave, room)
		a.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "JOIN" && m.Prefix != nil && m.Prefix.Name == dave.Localpart
		}, "dave's JOIN")
		a.Send("NAMES %s", channel)
		if names := namesOf(t, a, channel); !slices.Contains(names, dave.Localpart) || !slices.Contains(names, carol.Localpart) {
			t.Errorf("NAMES %s after a join: %v, want %s and %s", channel, names, dave.Localpart, carol.Localpart)
		}
		if n := b.g.sessions.MemberFetches(); n != 1 {
			t.Errorf("%d member lists fetched, want still 1", n)
		}

		quit(t, a)
		quit(t, bc)
		b.restart(t)
		waitSessions(t, b.g, 2)
		a = dialClient(t, b.addr(), "alice", alice, "")
		burst := awaitBurst(t, a, channel)
		var names []string
		for _, m := range burst {
			if m.Command == irc.RPL_NAMREPLY && m.Param(2) == channel {
				names = append(names, strings.Fields(m.Trailing())...)
			}
		}
		for _, want := range []string{bob.Localpart, carol.Localpart, dave.Localpart} {
			if !slices.Contains(names, want) {
				t.Errorf("NAMES of the burst after a restart: %v, want %s among them", names, want)
			}
		}
		if n := b.g.sessions.MemberFetches(); n != 1 {
			t.Errorf("%d member lists fetched after the restart, want 1 (the stored state may be partial)", n)
		}

		// With lazy members turned off, what earlier runs stored is still
		// known to be partial.
		quit(t, a)
		b.cfg.Matrix.LazyMembers = false
		b.restart(t)
		waitSessions(t, b.g, 2)
		a = dialClient(t, b.addr(), "alice", alice, "", "draft/no-implicit-names")
		a.ExpectMatch(t, isCmd("JOIN", channel), "alice's JOIN burst")
		a.Send("NAMES %s", channel)
		if names := namesOf(t, a, channel); !slices.Contains(names, carol.Localpart) {
			t.Errorf("NAMES %s after turning lazy members off: %v, want %s among them", channel, names, carol.Localpart)
		}
		if n := b.g.sessions.MemberFetches(); n != 1 {
			t.Errorf("%d member lists fetched after turning lazy members off, want 1", n)
		}
	})
}

// namesOf reads one NAMES reply for channel, without prefixes.
func namesOf(t *testing.T, c *testenv.IRCClient, channel string) []string {
	t.Helper()
	var names []string
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == irc.RPL_NAMREPLY && m.Param(2) == channel {
			for _, n := range strings.Fields(m.Trailing()) {
				names = append(names, strings.TrimLeft(n, "@+%~&"))
			}
		}
		return m.Command == irc.RPL_ENDOFNAMES && m.Param(1) == channel
	}, "the end of NAMES "+channel)
	return names
}
