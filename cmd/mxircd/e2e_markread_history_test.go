package main

import (
	"fmt"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/mapping"
)

// CHATHISTORY AROUND splits its limit around the anchor: the older half
// before it, the rest from it on, so that a message ID anchor is in the
// window (limit 1 is the anchor alone); when one side runs out the other
// fills the limit. Channels and queries alike.
func TestChathistoryAroundWindow(t *testing.T) {
	unencryptedDMs := func(c *Config) { c.Encryption.EncryptNewDMs = false }
	forEachStoreWith(t, unencryptedDMs, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "around")
		h := dialClient(t, b.addr(), "alice", alice, "around", append(historyCaps, "echo-message")...)
		awaitBurst(t, h, channel)
		waitNames(t, h, channel, bob.Localpart)

		// The channel: seven messages from bob on Matrix.
		var ids []id.EventID
		var texts []string
		for i := 1; i <= 7; i++ {
			texts = append(texts, fmt.Sprintf("around %d", i))
			ids = append(ids, say(t, bob, room, texts[i-1]))
		}
		ts := eventTimes(t, bob, room, ids...)
		untilText(t, h, texts[6])
		msgs := func(from, to int) []wantMsg {
			var out []wantMsg
			for n := from; n <= to; n++ {
				out = append(out, privmsg(bob.Localpart, texts[n-1], ids[n-1], ts[n-1]))
			}
			return out
		}
		around := func(target string, want []wantMsg, ref string, limit int) {
			t.Helper()
			line := fmt.Sprintf("AROUND %s %s %d", target, ref, limit)
			checkMessages(t, "CHATHISTORY "+line, chathistory(t, h, target, "%s", line), want)
		}
		mid := func(n int) string { return "msgid=" + ids[n-1].String() }
		for _, ref := range []func(int) string{mid, func(n int) string { return tsRef(ts[n-1]) }} {
			around(channel, msgs(4, 4), ref(4), 1) // the anchor alone
			around(channel, msgs(3, 4), ref(4), 2)
			around(channel, msgs(3, 5), ref(4), 3)
			around(channel, msgs(2, 5), ref(4), 4)
			around(channel, msgs(1, 3), ref(1), 3) // nothing before m1: more after
			around(channel, msgs(5, 7), ref(7), 3) // nothing after m7: more before
			around(channel, msgs(1, 7), ref(4), 100)
		}

		// A query: alice's own messages to bob, with the msgids and times
		// of their echoes.
		var dm []wantMsg
		for i := 1; i <= 5; i++ {
			text := fmt.Sprintf("dm around %d", i)
			h.Send("PRIVMSG %s :%s", bob.Localpart, text)
			_, echo := untilText(t, h, text)
			ms, ok := mapping.ParseTime(echo.Tags["time"])
			if !ok || echo.Tags["msgid"] == "" {
				t.Fatalf("echo without msgid and time: %s", echo)
			}
			dm = append(dm, privmsg("alice", text, id.EventID(echo.Tags["msgid"]), ms))
			time.Sleep(3 * time.Millisecond)
		}
		for i := 1; i < len(dm); i++ {
			if dm[i].ts < dm[i-1].ts+2 {
				t.Fatalf("query messages %d and %d are %d ms apart; the test needs them apart", i, i+1, dm[i].ts-dm[i-1].ts)
			}
		}
		dmRef := "msgid=" + dm[2].id.String()
		around(bob.Localpart, dm[2:3], dmRef, 1)
		around(bob.Localpart, dm[1:4], dmRef, 3)
		around(bob.Localpart, dm[1:4], tsRef(dm[2].ts), 3)
		around(bob.Localpart, dm[2:5], "msgid="+dm[4].id.String(), 3) // more before the newest
	})
}

// draft/read-marker keeps the time a client marks, exactly, whether or not
// an event of the room has it: MARKREAD answers it back, the account's
// other clients get it, a JOIN burst and the next run of the gateway show
// it. A query marks like a channel, with or without a room. A target with
// no marker, or one the account does not know, is '*'; the marker never
// goes back.
func TestMarkreadKeepsTheClientsTime(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, _, channel := twoInARoom(t, hs, "markexact")
		carol := hs.Register(t, "carol") // shares no room with alice
		rmCaps := append([]string{"draft/read-marker", "standard-replies"}, tagCaps...)
		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", rmCaps...)
		awaitBurst(t, laptop, channel)
		phone := dialClient(t, b.addr(), "alicephone", alice, "phone", rmCaps...)
		awaitBurst(t, phone, channel)
		waitNames(t, laptop, channel, bob.Localpart)

		// No target at all is the spec's FAIL, not the 461 numeric.
		laptop.Send("MARKREAD")
		laptop.ExpectMatch(t, isCmd("FAIL", "MARKREAD", "NEED_MORE_PARAMS"), "FAIL for MARKREAD without a target")

		get := func(c *testenv.IRCClient, target string) string {
			t.Helper()
			c.Send("MARKREAD %s", target)
			return c.ExpectMatch(t, isCmd("MARKREAD", target), "MARKREAD "+target).Param(1)
		}
		set := func(c *testenv.IRCClient, target, value string) string {
			t.Helper()
			c.Send("MARKREAD %s %s", target, value)
			m := c.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "FAIL" || m.Command == "MARKREAD" && m.Param(0) == target
			}, "MARKREAD "+target)
			if m.Command == "FAIL" {
				return "FAIL " + m.Param(1)
			}
			return m.Param(1)
		}

		nowhere := "#" + uniq("nowhere") + ":" + hs.ServerName
		if got := get(laptop, nowhere); got != "*" {
			t.Errorf("MARKREAD of a channel alice is not in = %q, want *", got)
		}
		if got := get(laptop, channel); got != "*" {
			t.Errorf("MARKREAD of a channel nobody marked = %q, want *", got)
		}

		// Before any event of the room: Matrix cannot hold it, the gateway does.
		const early, earlier = "timestamp=2019-01-04T14:33:26.123Z", "timestamp=2019-01-01T00:00:00.000Z"
		if got := set(laptop, channel, early); got != early {
			t.Errorf("MARKREAD %s %s answered %q", channel, early, got)
		}
		if m := phone.ExpectMatch(t, isCmd("MARKREAD", channel), "MARKREAD on the other client"); m.Param(1) != early {
			t.Errorf("the other client got %s, want %s", m, early)
		}
		if got := get(laptop, channel); got != early {
			t.Errorf("MARKREAD %s after setting it = %q, want %s", channel, got, early)
		}
		if got := set(laptop, channel, earlier); got != early {
			t.Errorf("an earlier marker answered %q, want the stored %s", got, early)
		}
		if got := set(laptop, channel, "*"); got != "FAIL INVALID_PARAMS" {
			t.Errorf("MARKREAD %s * answered %q, want FAIL INVALID_PARAMS", channel, got)
		}
		if got := set(laptop, channel, tsRef(time.Now().Add(time.Hour).UnixMilli())); got != "FAIL INVALID_PARAMS" {
			t.Errorf("a marker an hour ahead answered %q, want FAIL INVALID_PARAMS", got)
		}

		// A query with no room yet, by nick.
		const dmTime = "timestamp=2023-07-04T00:00:00.000Z"
		if got := get(laptop, carol.Localpart); got != "*" {
			t.Errorf("MARKREAD of a query nobody marked = %q, want *", got)
		}
		if got := set(laptop, carol.Localpart, dmTime); got != dmTime {
			t.Errorf("MARKREAD %s %s answered %q", carol.Localpart, dmTime, got)
		}
		phone.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "MARKREAD" && m.Param(1) == dmTime }, "the query's MARKREAD on the other client")
		if got := get(phone, carol.Localpart); got != dmTime {
			t.Errorf("MARKREAD %s after setting it = %q, want %s", carol.Localpart, got, dmTime)
		}

		// Part and join again: the JOIN burst shows it.
		laptop.Send("PART %s", channel)
		laptop.ExpectMatch(t, isCmd("PART", channel), "PART")
		laptop.Send("JOIN %s", channel)
		burst := awaitBurst(t, laptop, channel)
		if !hasLine(burst, isCmd("MARKREAD", channel, early)) {
			t.Errorf("JOIN burst without MARKREAD %s %s:%s", channel, early, formatMsgs(burst))
		}

		// The next run of the gateway has them from its store.
		quit(t, laptop)
		quit(t, phone)
		b.restart(t)
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", rmCaps...)
		burst = awaitBurst(t, laptop, channel)
		if !hasLine(burst, isCmd("MARKREAD", channel, early)) {
			t.Errorf("connect burst after a restart without MARKREAD %s %s:%s", channel, early, formatMsgs(burst))
		}
		if got := get(laptop, carol.Localpart); got != dmTime {
			t.Errorf("MARKREAD %s after a restart = %q, want %s", carol.Localpart, got, dmTime)
		}
	})
}
