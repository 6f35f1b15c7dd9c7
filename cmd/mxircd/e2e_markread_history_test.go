package main

import (
	"fmt"
	"testing"
	"time"

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
