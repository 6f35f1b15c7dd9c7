package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Ignore lists (issue 18): SILENCE is the account's m.ignored_user_list.
// An ignore set from Matrix (as Element does) silences the user on every
// IRC client of the account, in replay, live and in CHATHISTORY; SILENCE
// on IRC edits the same list, which Matrix clients then see.

// ignoredOnMatrix reads acct's m.ignored_user_list as a Matrix client would.
func ignoredOnMatrix(t *testing.T, acct *testenv.Account) map[id.UserID]bool {
	t.Helper()
	var content event.IgnoredUserListEventContent
	if err := acct.Client.GetAccountData(ctxFor(t), event.AccountDataIgnoredUserList.Type, &content); err != nil {
		t.Fatalf("reading m.ignored_user_list: %v", err)
	}
	out := map[id.UserID]bool{}
	for user := range content.IgnoredUsers {
		out[user] = true
	}
	return out
}

// silenceList sends SILENCE and returns the masks listed.
func silenceList(t *testing.T, c *testenv.IRCClient) []string {
	t.Helper()
	c.Send("SILENCE")
	var masks []string
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "271" {
			masks = append(masks, m.Param(1))
		}
		return m.Command == "272"
	}, "272 end of SILENCE list")
	return masks
}

func TestIgnore(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "ignore")
		ctx := ctxFor(t)
		bobMask := "*!" + bob.Localpart + "@" + hs.ServerName

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		burst := awaitBurst(t, laptop, channel)
		if got := isupport(burst)["SILENCE"]; got != "1000" {
			t.Errorf("ISUPPORT SILENCE = %q, want 1000", got)
		}
		waitNames(t, laptop, channel, bob.Localpart)
		seeLive(t, laptop, bob, room)
		quit(t, laptop)

		// While the laptop is away bob speaks; then alice ignores him in
		// Element. The message is stored from before the ignore.
		before := say(t, bob, room, "said before the ignore")
		waitStored(t, b.g, alice.UserID, before)
		if err := alice.Client.SetAccountData(ctx, event.AccountDataIgnoredUserList.Type, map[string]any{
			"ignored_users": map[id.UserID]any{bob.UserID: map[string]any{}},
		}); err != nil {
			t.Fatal(err)
		}
		// The phone shows when the gateway has taken the list.
		phone := dialClient(t, b.addr(), "alicephone", alice, "phone")
		awaitBurst(t, phone, channel)
		deadline := time.Now().Add(30 * time.Second)
		for got := silenceList(t, phone); len(got) != 1 || got[0] != bobMask; got = silenceList(t, phone) {
			if time.Now().After(deadline) {
				t.Fatalf("SILENCE list = %v, want [%s] after Element's ignore", got, bobMask)
			}
			time.Sleep(100 * time.Millisecond)
		}

		// Replay to the laptop leaves bob's message out.
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, _ := attachAndReplay(t, laptop, alice, room, channel)
		for _, m := range got {
			if m.Prefix.Name == bob.Localpart {
				t.Errorf("replay shows an ignored user's message: %s", m)
			}
		}
		// Live: bob's message and reaction never show.
		live := say(t, bob, room, "said while ignored")
		if _, err := bob.Client.SendReaction(ctx, room, live, "👍"); err != nil {
			t.Fatal(err)
		}
		lines, _ := untilText(t, laptop, sentinel(t, alice, room).text)
		for _, m := range lines {
			if m.Prefix != nil && m.Prefix.Name == bob.Localpart && (m.Command == "PRIVMSG" || m.Command == "TAGMSG" || m.Command == "NOTICE") {
				t.Errorf("live line from an ignored user: %s", m)
			}
		}
		// History: neither message, though both are in the store. (A
		// client with draft/chathistory gets no replay: it asks.)
		hist := dialClient(t, b.addr(), "alicehist", alice, "hist", historyCaps...)
		awaitBurst(t, hist, channel)
		for _, m := range chathistory(t, hist, channel, "LATEST %s * 50", channel) {
			if m.Prefix.Name == bob.Localpart {
				t.Errorf("CHATHISTORY shows an ignored user's message: %s", m)
			}
		}

		// From IRC: SILENCE -nick lifts the ignore on Matrix too, and on
		// every client of the account.
		hist.Send("SILENCE -%s", bob.Localpart)
		hist.ExpectMatch(t, isCmd("SILENCE", "-"+bobMask), "SILENCE -mask")
		laptop.ExpectMatch(t, isCmd("SILENCE", "-"+bobMask), "SILENCE -mask on the laptop")
		phone.ExpectMatch(t, isCmd("SILENCE", "-"+bobMask), "SILENCE -mask on the phone")
		if ig := ignoredOnMatrix(t, alice); ig[bob.UserID] {
			t.Errorf("after SILENCE -: m.ignored_user_list = %v", ig)
		}
		say(t, bob, room, "heard again")
		expectFrom(t, laptop, "PRIVMSG", bob.Localpart, "heard again")

		// nick!*@* and a Matrix ID are taken; wildcards are refused.
		hist.Send("SILENCE +%s!*@*", bob.Localpart)
		hist.ExpectMatch(t, isCmd("SILENCE", "+"+bobMask), "SILENCE +mask")
		if ig := ignoredOnMatrix(t, alice); !ig[bob.UserID] || len(ig) != 1 {
			t.Errorf("after SILENCE +nick!*@*: m.ignored_user_list = %v", ig)
		}
		if masks := silenceList(t, laptop); len(masks) != 1 || masks[0] != bobMask {
			t.Errorf("SILENCE list = %v, want [%s]", masks, bobMask)
		}
		hist.Send("SILENCE -%s", bob.UserID)
		hist.ExpectMatch(t, isCmd("SILENCE", "-"+bobMask), "SILENCE -@mxid")

		hist.Send("SILENCE +*!*@*.example.org")
		fail := hist.ExpectMatch(t, isCmd("FAIL", "SILENCE", "INVALID_MASK"), "FAIL for a wildcard mask")
		if !strings.Contains(fail.Trailing(), "Matrix ignores single users") {
			t.Errorf("wildcard mask refused with %s", fail)
		}
		hist.Send("SILENCE +nobodyknown")
		hist.ExpectMatch(t, isCmd("FAIL", "SILENCE", "UNKNOWN_USER"), "FAIL for an unknown nick")
		hist.Send("SILENCE -%s", bob.Localpart)
		hist.ExpectMatch(t, isCmd("FAIL", "SILENCE", "NOT_SILENCED"), "FAIL for removing who is not silenced")
		if ig := ignoredOnMatrix(t, alice); len(ig) != 0 {
			t.Errorf("refused masks changed m.ignored_user_list: %v", ig)
		}
		var raw json.RawMessage
		_ = alice.Client.GetAccountData(ctx, event.AccountDataIgnoredUserList.Type, &raw)
		if !strings.Contains(string(raw), `"ignored_users"`) {
			t.Errorf("m.ignored_user_list lost its ignored_users key: %s", raw)
		}
	})
}
