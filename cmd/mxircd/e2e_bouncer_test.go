package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// End-to-end tests of the bouncer (issue 5): client names, always-on
// sessions, replay, CHATHISTORY, read markers, away-when-detached,
// ALWAYSON, and restarts of the homeserver and of the gateway. The
// behaviour is docs/bouncer.md; the numbers in comments refer to its
// sections. e2e_restart_test.go kills the binary.

var tagCaps = []string{"server-time", "message-tags"}

// privmsg is a PRIVMSG a test expects (evID "" and ts 0 for a client
// without message-tags and server-time).
func privmsg(from, text string, evID id.EventID, ts int64) wantMsg {
	return wantMsg{cmd: "PRIVMSG", from: from, text: text, id: evID, ts: ts}
}

// 1: a client name after the last '@' of the SASL authcid or of the USER
// name (with PASS); several clients of one account attached at once share
// one session and device; what one says shows on the others from their
// own nick; each name has a delivery cursor of its own.
func TestBouncerClientNames(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "clientnames")

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, channel)
		waitNames(t, laptop, channel, bob.Localpart)
		phone := dialPass(t, b.addr(), "alicephone", alice.Localpart+"@phone", alice.Password)
		awaitBurst(t, phone, channel)
		unnamed := dialClient(t, b.addr(), "alicemain", alice, "") // no caps: no tags
		awaitBurst(t, unnamed, channel)
		if n := b.g.sessions.SessionCount(); n != 1 {
			t.Fatalf("%d sessions for three clients of one account", n)
		}
		if devices := gatewayDevices(t, alice); len(devices) != 1 {
			t.Fatalf("three clients made devices %v", devices)
		}

		// What the laptop says shows on the others, once, from their own
		// nick, and not on the laptop (no echo-message).
		laptop.Send("PRIVMSG %s :said on the laptop", channel)
		bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
			return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "said on the laptop"
		})
		s1 := sentinel(t, bob, room)
		for _, cl := range []struct {
			c    *testenv.IRCClient
			nick string
			want []wantMsg
		}{
			{laptop, "alice", nil},
			{phone, "alicephone", []wantMsg{privmsg("alicephone", "said on the laptop", "", 0)}},
			{unnamed, "alicemain", []wantMsg{privmsg("alicemain", "said on the laptop", "", 0)}},
		} {
			before, _ := untilText(t, cl.c, s1.text)
			checkMessages(t, "what "+cl.nick+" got of the laptop's message", channelMessages(before, channel), cl.want)
		}

		// The phone leaves; what it missed is replayed to it, and only to it.
		quit(t, phone)
		say(t, bob, room, "while the phone was away")
		untilText(t, laptop, "while the phone was away")
		untilText(t, unnamed, "while the phone was away")
		phone = dialPass(t, b.addr(), "alicephone", alice.Localpart+"@phone", alice.Password)
		got, s2 := attachAndReplay(t, phone, bob, room, channel)
		checkMessages(t, "replay to the phone (PASS, USER name@phone)", got, []wantMsg{
			privmsg(bob.Localpart, "while the phone was away", "", 0),
		})
		untilText(t, laptop, s2.text)
		untilText(t, unnamed, s2.text)

		// The laptop and the unnamed client leave; the phone, attached, gets
		// the next message live, which does not count as seen for the others.
		quit(t, laptop)
		quit(t, unnamed)
		missed := say(t, bob, room, "only the phone is here")
		untilText(t, phone, "only the phone is here")

		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, s3 := attachAndReplay(t, laptop, bob, room, channel)
		checkMessages(t, "replay to the laptop", got, []wantMsg{
			privmsg(bob.Localpart, "only the phone is here", missed, eventTime(t, bob, room, missed)),
		})
		unnamed = dialClient(t, b.addr(), "alicemain", alice, "")
		got, _ = attachAndReplay(t, unnamed, bob, room, channel)
		checkMessages(t, "replay to the unnamed client (no tags negotiated)", got, []wantMsg{
			privmsg(bob.Localpart, "only the phone is here", "", 0),
			privmsg(bob.Localpart, s3.text, "", 0),
		})
	})
}

// 2, 3: the last client leaving keeps the session; a client coming back
// without draft/chathistory gets, after its burst, every message it
// missed, once, in order, with time and msgid, except what it typed
// itself; at once again, nothing. Another client name gets its own share,
// including what the first client typed, from its own nick.
func TestBouncerReplay(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "replay")
		ctx := ctxFor(t)

		phone := dialClient(t, b.addr(), "alicephone", alice, "phone", tagCaps...)
		awaitBurst(t, phone, channel)
		waitNames(t, phone, channel, bob.Localpart)
		seeLive(t, phone, bob, room)
		quit(t, phone)

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, channel)
		s0 := seeLive(t, laptop, bob, room) // the phone misses it
		laptop.Send("PRIVMSG %s :leaving now", channel)
		quit(t, laptop)
		leaving := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
			return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "leaving now"
		}).ID

		r1 := say(t, bob, room, "r1 plain")
		r2 := sendContent(t, bob, room, &event.MessageEventContent{MsgType: event.MsgNotice, Body: "r2 a notice"})
		r3 := sendContent(t, bob, room, &event.MessageEventContent{MsgType: event.MsgEmote, Body: "r3 waves"})
		r4 := say(t, alice, room, "r4 from another Matrix client of alice")
		r5 := say(t, bob, room, "r5 last")
		waitStored(t, b.g, alice.UserID, r5)
		if n := b.g.sessions.SessionCount(); n != 1 {
			t.Errorf("%d sessions after the last client left, want the always-on one", n)
		}
		ts := eventTimes(t, bob, room, leaving, r1, r2, r3, r4, r5)
		missed := func(self string) []wantMsg {
			return []wantMsg{
				privmsg(bob.Localpart, "r1 plain", r1, ts[1]),
				{cmd: "NOTICE", from: bob.Localpart, text: "r2 a notice", id: r2, ts: ts[2]},
				privmsg(bob.Localpart, "\x01ACTION r3 waves\x01", r3, ts[3]),
				privmsg(self, "r4 from another Matrix client of alice", r4, ts[4]),
				privmsg(bob.Localpart, "r5 last", r5, ts[5]),
			}
		}

		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, s1 := attachAndReplay(t, laptop, bob, room, channel)
		checkMessages(t, "replay to the laptop (without its own 'leaving now')", got, missed("alice"))

		quit(t, laptop)
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, s2 := attachAndReplay(t, laptop, bob, room, channel)
		checkMessages(t, "replay to the laptop coming straight back", got, nil)

		sts := eventTimes(t, bob, room, s0.id, s1.id, s2.id)
		phone = dialClient(t, b.addr(), "alicephone", alice, "phone", tagCaps...)
		got, _ = attachAndReplay(t, phone, bob, room, channel)
		want := []wantMsg{privmsg(bob.Localpart, s0.text, s0.id, sts[0]), privmsg("alicephone", "leaving now", leaving, ts[0])}
		want = append(want, missed("alicephone")...)
		want = append(want, privmsg(bob.Localpart, s1.text, s1.id, sts[1]), privmsg(bob.Localpart, s2.text, s2.id, sts[2]))
		checkMessages(t, "replay to the phone", got, want)
	})
}

// 3: a client that was attached but was shown nothing before it left
// still gets everything since it left: it connected before, so it is not
// a new client name starting from the other clients' cursor (there is
// none here).
func TestBouncerReplayAfterEmptyVisit(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "emptyvisit")

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, channel)
		laptop.Drain(t)
		quit(t, laptop)
		m1 := say(t, bob, room, "said after a visit that saw nothing")
		waitStored(t, b.g, alice.UserID, m1)

		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, _ := attachAndReplay(t, laptop, bob, room, channel)
		checkMessages(t, "replay after a visit that saw nothing", got, []wantMsg{
			privmsg(bob.Localpart, "said after a visit that saw nothing", m1, eventTime(t, bob, room, m1)),
		})
	})
}

// 3: at most replay_limit messages per channel, the newest, after a
// NOTICE saying older ones were not replayed; a channel under the limit
// gets all of its own and no notice.
func TestBouncerReplayLimit(t *testing.T) {
	forEachStoreWith(t, func(cfg *Config) { cfg.Bouncer.ReplayLimit = 3 }, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, roomA, chanA := twoInARoom(t, hs, "limita")
		aliasB := uniq("limitb")
		roomB := createRoom(t, bob, aliasB, "")
		joinRoom(t, alice, roomB)
		chanB := "#" + aliasB + ":" + hs.ServerName

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, chanA, chanB)
		seeLive(t, laptop, bob, roomA)
		quit(t, laptop)

		a1 := say(t, bob, roomA, "a1")
		b1 := say(t, bob, roomB, "b1")
		a2 := say(t, bob, roomA, "a2")
		a3 := say(t, bob, roomA, "a3")
		b2 := say(t, bob, roomB, "b2")
		a4 := say(t, bob, roomA, "a4")
		a5 := say(t, bob, roomA, "a5")
		waitStored(t, b.g, alice.UserID, a5)
		tsA := eventTimes(t, bob, roomA, a1, a2, a3, a4, a5)
		tsB := eventTimes(t, bob, roomB, b1, b2)

		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, _ := attachAndReplay(t, laptop, bob, roomA, chanA, chanB)
		gotA, gotB := channelMessages(got, chanA), channelMessages(got, chanB)
		if len(gotA) == 0 || gotA[0].Command != "NOTICE" || !strings.Contains(gotA[0].Trailing(), "not replayed") {
			t.Errorf("replay of %s does not start with a NOTICE saying older messages were not replayed:%s", chanA, formatMsgs(gotA))
		} else {
			gotA = gotA[1:]
		}
		checkMessages(t, "replay of "+chanA+" after the notice (limit 3 of 5)", gotA, []wantMsg{
			privmsg(bob.Localpart, "a3", a3, tsA[2]),
			privmsg(bob.Localpart, "a4", a4, tsA[3]),
			privmsg(bob.Localpart, "a5", a5, tsA[4]),
		})
		checkMessages(t, "replay of "+chanB+" (2, under the limit, no notice)", gotB, []wantMsg{
			privmsg(bob.Localpart, "b1", b1, tsB[0]),
			privmsg(bob.Localpart, "b2", b2, tsB[1]),
		})
	})
}

// 3: a client name never seen before starts from the newest cursor of the
// account's other clients: it gets what none of them has seen.
func TestBouncerNewClientName(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "newclient")

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, channel)
		waitNames(t, laptop, channel, bob.Localpart)
		say(t, bob, room, "seen by the laptop")
		untilText(t, laptop, "seen by the laptop")
		quit(t, laptop)

		m2 := say(t, bob, room, "m2 unseen")
		m3 := say(t, bob, room, "m3 unseen")
		waitStored(t, b.g, alice.UserID, m3)
		ts := eventTimes(t, bob, room, m2, m3)
		unseen := []wantMsg{privmsg(bob.Localpart, "m2 unseen", m2, ts[0]), privmsg(bob.Localpart, "m3 unseen", m3, ts[1])}

		tablet := dialClient(t, b.addr(), "alicetab", alice, "tablet", tagCaps...)
		got, s1 := attachAndReplay(t, tablet, bob, room, channel)
		checkMessages(t, "first connection of a new client name", got, unseen)
		quit(t, tablet)

		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, s2 := attachAndReplay(t, laptop, bob, room, channel)
		checkMessages(t, "the laptop, whose cursor the tablet's first connection did not move", got,
			append(unseen, privmsg(bob.Localpart, s1.text, s1.id, eventTime(t, bob, room, s1.id))))
		quit(t, laptop)

		tablet = dialClient(t, b.addr(), "alicetab", alice, "tablet", tagCaps...)
		got, _ = attachAndReplay(t, tablet, bob, room, channel)
		checkMessages(t, "the tablet's second connection", got, []wantMsg{
			privmsg(bob.Localpart, s2.text, s2.id, eventTime(t, bob, room, s2.id)),
		})
	})
}

var historyCaps = []string{"draft/chathistory", "batch", "server-time", "message-tags", "standard-replies"}

// 4: CHATHISTORY, every subcommand with msgid and timestamp anchors,
// exclusive bounds, TARGETS, errors, event-playback; no automatic replay
// with draft/chathistory.
func TestChatHistory(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		ctx := ctxFor(t)
		alice, bob, room, channel := twoInARoom(t, hs, "history")
		carol := hs.Register(t, "carol")
		aliasB := uniq("historyb")
		roomB := createRoom(t, bob, aliasB, "")
		joinRoom(t, alice, roomB)
		chanB := "#" + aliasB + ":" + hs.ServerName

		h := dialClient(t, b.addr(), "alice", alice, "hist", historyCaps...)
		burst := awaitBurst(t, h, channel, chanB)
		is := isupport(burst)
		if is["CHATHISTORY"] != "100" || is["MSGREFTYPES"] != "msgid,timestamp" {
			t.Errorf("ISUPPORT CHATHISTORY=%q MSGREFTYPES=%q, want 100 and msgid,timestamp", is["CHATHISTORY"], is["MSGREFTYPES"])
		}
		waitNames(t, h, channel, bob.Localpart)
		quit(t, h)

		// The room's history while no client is attached: four messages,
		// then membership and topic changes, then two more.
		m1 := say(t, bob, room, "history 1")
		m2 := say(t, bob, room, "history 2")
		m3 := say(t, bob, room, "history 3")
		m4 := say(t, bob, room, "history 4")
		joinRoom(t, carol, room)
		topic, err := alice.Client.SendStateEvent(ctx, room, event.StateTopic, "", &event.TopicEventContent{Topic: "history topic"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := carol.Client.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		joinRoom(t, carol, room)
		if _, err := alice.Client.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "history kick"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond) // m5 later than the kick (spacing, not synchronisation)
		m5 := say(t, bob, room, "history 5")
		m6 := say(t, bob, room, "history 6")
		waitStored(t, b.g, alice.UserID, m6)

		// No automatic replay for a client with draft/chathistory.
		h = dialClient(t, b.addr(), "alice", alice, "hist", historyCaps...)
		got, s7 := attachAndReplay(t, h, bob, room, channel, chanB)
		if len(got) != 0 {
			t.Errorf("a client with draft/chathistory got an automatic replay:%s", formatMsgs(got))
		}
		b1 := say(t, bob, roomB, "history in b")
		untilText(t, h, "history in b")

		ids := []id.EventID{m1, m2, m3, m4, m5, m6, s7.id}
		texts := []string{"history 1", "history 2", "history 3", "history 4", "history 5", "history 6", s7.text}
		ts := eventTimes(t, bob, room, ids...)
		tsB1 := eventTime(t, bob, roomB, b1)
		// msgs(2, 3) are the wantMsgs of m2 and m3.
		msgs := func(ns ...int) []wantMsg {
			var out []wantMsg
			for _, n := range ns {
				out = append(out, privmsg(bob.Localpart, texts[n-1], ids[n-1], ts[n-1]))
			}
			return out
		}
		mid := func(n int) string { return "msgid=" + ids[n-1].String() }
		tsr := func(n int) string { return tsRef(ts[n-1]) }
		query := func(want []wantMsg, format string, args ...any) {
			t.Helper()
			line := fmt.Sprintf(format, args...)
			checkMessages(t, "CHATHISTORY "+line, chathistory(t, h, channel, "%s", line), want)
		}

		query(msgs(6, 7), "LATEST %s * 2", channel)
		query(msgs(6, 7), "LATEST %s %s 10", channel, mid(5))
		query(msgs(6, 7), "LATEST %s %s 10", channel, tsr(5))
		query(msgs(6, 7), "LATEST %s %s 2", channel, mid(1)) // the newest 2 after m1
		query(msgs(2, 3), "BEFORE %s %s 2", channel, mid(4))
		query(msgs(2, 3), "BEFORE %s %s 2", channel, tsr(4))
		query(msgs(1), "BEFORE %s %s 10", channel, mid(2))
		query(msgs(1), "BEFORE %s %s 10", channel, tsr(2))
		query(msgs(2, 3), "AFTER %s %s 2", channel, mid(1))
		query(msgs(2, 3), "AFTER %s %s 2", channel, tsr(1))
		// Without event-playback the membership and topic events between
		// m4 and m5 are not shown and do not use up the limit.
		query(msgs(5, 6), "AFTER %s %s 2", channel, mid(4))
		query(msgs(5, 6), "AFTER %s %s 2", channel, tsr(4))
		query(msgs(2, 3), "BETWEEN %s %s %s 10", channel, mid(1), mid(4))
		query(msgs(2, 3), "BETWEEN %s %s %s 10", channel, tsr(1), tsr(4))
		query(msgs(2, 3), "BETWEEN %s %s %s 10", channel, mid(1), tsr(4))
		query(msgs(2, 3), "BETWEEN %s %s %s 2", channel, mid(1), mid(7)) // counted from the first ref
		query(msgs(5, 6), "BETWEEN %s %s %s 2", channel, mid(7), mid(1)) // counted from the first ref, backwards
		query(msgs(5, 6), "BETWEEN %s %s %s 2", channel, tsr(7), tsr(1)) // the same with timestamps
		query(nil, "BETWEEN %s %s %s 10", channel, mid(4), mid(5))       // only non-messages in between
		query(msgs(1, 2, 3, 4, 5, 6, 7), "LATEST %s * 100", channel)     // nothing else, nothing twice
		query(msgs(7), "AFTER %s %s 10", channel, mid(6))

		// AROUND: 3 messages around m3, oldest first. Whether the anchor
		// itself counts is left open: m2 m3 m4, or m1 m2 m4, or m2 m4 m5.
		for _, anchor := range []string{mid(3), tsr(3)} {
			line := fmt.Sprintf("AROUND %s %s 3", channel, anchor)
			got := chathistory(t, h, channel, "%s", line)
			var pos []int
			for _, m := range got {
				n := slices.Index(ids, id.EventID(m.Tags["msgid"])) + 1
				if n == 0 || matchMsg(m, msgs(n)[0]) != "" {
					t.Errorf("CHATHISTORY %s: unexpected line %s", line, m)
				}
				pos = append(pos, n)
			}
			okWindow := slices.Equal(pos, []int{2, 3, 4}) || slices.Equal(pos, []int{1, 2, 4}) || slices.Equal(pos, []int{2, 4, 5})
			if !okWindow {
				t.Errorf("CHATHISTORY %s gave messages %v (m1=1...), want 3 around m3, oldest first", line, pos)
			}
		}

		// TARGETS: channels whose latest message is in the range, by its
		// time, oldest first; the bounds are exclusive. A reaction is not
		// a message: chanB's latest stays b1.
		reaction, err := bob.Client.SendReaction(ctx, roomB, b1, "👍")
		if err != nil {
			t.Fatal(err)
		}
		waitStored(t, b.g, alice.UserID, reaction.EventID)
		later := time.Now().Add(time.Hour).UnixMilli()
		all := chathistoryTargets(t, h, ts[0], later, 10)
		if want := []historyTarget{{channel, ts[6]}, {chanB, tsB1}}; !slices.Equal(all, want) {
			t.Errorf("CHATHISTORY TARGETS (m1, in an hour) = %v, want %v", all, want)
		}
		// The channel's latest message, m7, is at the end of the range,
		// which excludes it: neither room is a target of it.
		if upToM7 := chathistoryTargets(t, h, ts[0], ts[6], 10); len(upToM7) != 0 {
			t.Errorf("CHATHISTORY TARGETS (m1, m7) = %v, want none", upToM7)
		}
		// With more targets than the limit, those nearest the first bound.
		if got, want := chathistoryTargets(t, h, ts[0], later, 1), []historyTarget{{channel, ts[6]}}; !slices.Equal(got, want) {
			t.Errorf("CHATHISTORY TARGETS (m1, in an hour, 1) = %v, want %v", got, want)
		}
		if got, want := chathistoryTargets(t, h, later, ts[0], 1), []historyTarget{{chanB, tsB1}}; !slices.Equal(got, want) {
			t.Errorf("CHATHISTORY TARGETS (in an hour, m1, 1) = %v, want %v", got, want)
		}

		// Errors.
		historyFail(t, h, "CHATHISTORY LATEST #"+uniq("nosuchroom")+":"+hs.ServerName+" * 10", "INVALID_TARGET")
		historyFail(t, h, fmt.Sprintf("CHATHISTORY BEFORE %s foo=bar 10", channel), "INVALID_MSGREFTYPE")
		historyFail(t, h, fmt.Sprintf("CHATHISTORY SIDEWAYS %s * 10", channel), "INVALID_PARAMS", "UNKNOWN_COMMAND")
		historyFail(t, h, fmt.Sprintf("CHATHISTORY LATEST %s * many", channel), "INVALID_PARAMS")
		historyFail(t, h, fmt.Sprintf("CHATHISTORY BEFORE %s msgid=$nosuchevent:%s 10", channel, hs.ServerName), "MESSAGE_ERROR", "INVALID_PARAMS")
		h.Drain(t) // still answering

		// With draft/event-playback, JOIN, TOPIC, PART and KICK are in the
		// batches too, and count towards the limit.
		p := dialClient(t, b.addr(), "alicepb", alice, "playback", append(slices.Clone(historyCaps), "draft/event-playback")...)
		awaitBurst(t, p, channel, chanB)
		checkPlayback := func(what string, got []*irc.Message) {
			t.Helper()
			var cmds []string
			for _, m := range got {
				cmds = append(cmds, m.Command)
			}
			if !slices.Equal(cmds, []string{"JOIN", "TOPIC", "PART", "JOIN", "KICK"}) {
				t.Fatalf("%s: commands %v, want JOIN TOPIC PART JOIN KICK:%s", what, cmds, formatMsgs(got))
			}
			for _, m := range got {
				ms, ok := tagTime(m)
				if m.Tags["msgid"] == "" || !ok || ms < ts[3] || ms > ts[4] {
					t.Errorf("%s: %s lacks a msgid or a time between m4 and m5", what, m)
				}
				if m.Param(0) != channel {
					t.Errorf("%s: %s is not about %s", what, m, channel)
				}
			}
			if j := got[0]; j.Prefix.Name != carol.Localpart {
				t.Errorf("%s: JOIN = %s, want carol's", what, j)
			}
			if tp := got[1]; tp.Prefix.Name != "alicepb" || tp.Param(1) != "history topic" || tp.Tags["msgid"] != topic.EventID.String() {
				t.Errorf("%s: TOPIC = %s, want the topic from alice's own nick with msgid %s", what, tp, topic.EventID)
			}
			if pt := got[2]; pt.Prefix.Name != carol.Localpart {
				t.Errorf("%s: PART = %s, want carol's", what, pt)
			}
			if k := got[4]; k.Prefix.Name != "alicepb" || k.Param(1) != carol.Localpart || k.Param(2) != "history kick" {
				t.Errorf("%s: KICK = %s, want alice kicking carol for \"history kick\"", what, k)
			}
		}
		line := fmt.Sprintf("BETWEEN %s %s %s 10", channel, mid(4), mid(5))
		checkPlayback("event-playback CHATHISTORY "+line, chathistory(t, p, channel, "%s", line))
		line = fmt.Sprintf("AFTER %s %s 6", channel, mid(4))
		after := chathistory(t, p, channel, "%s", line)
		if len(after) != 6 {
			t.Fatalf("event-playback CHATHISTORY %s: %d lines, want 5 events and m5:%s", line, len(after), formatMsgs(after))
		}
		checkPlayback("event-playback CHATHISTORY "+line, after[:5])
		checkMessages(t, "event-playback CHATHISTORY "+line+", last line", after[5:], msgs(5))
		line = fmt.Sprintf("BETWEEN %s %s %s 10", channel, tsr(1), tsr(4))
		checkMessages(t, "event-playback CHATHISTORY "+line, chathistory(t, p, channel, "%s", line), msgs(2, 3))
	})
}

func tagTime(m *irc.Message) (int64, bool) {
	v, ok := m.Tags["time"]
	if !ok {
		return 0, false
	}
	ms, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, false
	}
	return ms.UnixMilli(), true
}

// 4: history from before what the gateway stored comes from the
// homeserver, seamlessly, in pages of at most 100.
func TestChatHistoryFromHomeserver(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
		aliasLocal := uniq("deephistory")
		room := createRoom(t, bob, aliasLocal, "")
		joinRoom(t, alice, room)
		channel := "#" + aliasLocal + ":" + hs.ServerName

		// 150 messages before the gateway has ever seen alice: more than one
		// sync brings, so the oldest can only come from the homeserver.
		var old []wantMsg
		for i := 1; i <= 150; i++ {
			text := fmt.Sprintf("old %03d", i)
			resp, err := bob.Client.SendText(ctxFor(t), room, text)
			if err != nil {
				t.Fatal(err)
			}
			old = append(old, privmsg(bob.Localpart, text, resp.EventID, anyTime))
		}
		h := dialClient(t, b.addr(), "alice", alice, "hist", historyCaps...)
		awaitBurst(t, h, channel)
		newest := say(t, bob, room, "said after connecting")
		untilText(t, h, "said after connecting")

		// The limit is capped at ISUPPORT CHATHISTORY=100.
		got := chathistory(t, h, channel, "BEFORE %s msgid=%s 500", channel, newest)
		checkMessages(t, "CHATHISTORY BEFORE the first live message", got, old[50:])
		got = chathistory(t, h, channel, "BEFORE %s msgid=%s 500", channel, old[50].id)
		checkMessages(t, "CHATHISTORY BEFORE old 051", got, old[:50])
		got = chathistory(t, h, channel, "BEFORE %s msgid=%s 10", channel, old[0].id)
		checkMessages(t, "CHATHISTORY BEFORE the first message of the room", got, nil)
		got = chathistory(t, h, channel, "AFTER %s msgid=%s 3", channel, old[98].id)
		checkMessages(t, "CHATHISTORY AFTER old 099", got, old[99:102])
	})
}

// 5: draft/read-marker both ways: MARKREAD from IRC sets the m.read
// receipt and m.fully_read on the newest event at or before the time and
// reaches every client with the cap; a receipt from a Matrix client of the
// same account arrives as MARKREAD; MARKREAD <target> asks; the burst ends
// with the channel's marker.
func TestReadMarkers(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "markread")
		ctx := ctxFor(t)
		rmCaps := append([]string{"draft/read-marker"}, tagCaps...)

		// The read-marker spec: after the JOIN of a channel and before its
		// RPL_ENDOFNAMES, one MARKREAD for it.
		markerInBurst := func(c *testenv.IRCClient) *irc.Message {
			t.Helper()
			burst := awaitBurst(t, c, channel)
			join, marker, end := -1, -1, -1
			for i, m := range burst {
				switch {
				case m.Command == "JOIN" && m.Param(0) == channel && join < 0:
					join = i
				case m.Command == "MARKREAD" && m.Param(0) == channel:
					if marker >= 0 {
						t.Errorf("two MARKREAD for %s in the burst", channel)
					}
					marker = i
				case m.Command == irc.RPL_ENDOFNAMES && m.Param(1) == channel:
					end = i
				}
			}
			if join < 0 || marker < join || end < marker {
				t.Fatalf("want a MARKREAD for %s after its JOIN and before its 366:%s", channel, formatMsgs(burst))
			}
			return burst[marker]
		}
		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", rmCaps...)
		if _, _, star, ok := markread(markerInBurst(laptop)); !ok || !star {
			t.Errorf("first MARKREAD of a room nobody read: want *")
		}
		phone := dialClient(t, b.addr(), "alicephone", alice, "phone", rmCaps...)
		markerInBurst(phone)
		tablet := dialClient(t, b.addr(), "alicetab", alice, "tablet", tagCaps...) // no read-marker
		awaitBurst(t, tablet, channel)
		waitNames(t, laptop, channel, bob.Localpart)

		m1 := say(t, bob, room, "read 1")
		m2 := say(t, bob, room, "read 2")
		m3 := say(t, bob, room, "read 3")
		m4 := say(t, bob, room, "read 4")
		ts := eventTimes(t, bob, room, m1, m2, m3, m4)
		for _, c := range []*testenv.IRCClient{laptop, phone, tablet} {
			untilText(t, c, "read 4")
		}
		alice.SyncUntil(t, ctx, func(*mautrix.RespSync) bool { return true }) // from here on, receipts arrive incrementally

		// A time between m1 and m2 marks m1.
		laptop.Send("MARKREAD %s %s", channel, tsRef(ts[0]+1))
		expectMarkread(t, laptop, channel, ts[0]+1, ts[0])
		expectMarkread(t, phone, channel, ts[0]+1, ts[0])
		waitReceipt(t, alice, room, m1)

		laptop.Send("MARKREAD %s %s", channel, tsRef(ts[1]))
		expectMarkread(t, laptop, channel, ts[1])
		expectMarkread(t, phone, channel, ts[1])
		waitReceipt(t, alice, room, m2)
		waitFullyRead(t, alice, room, m2)

		phone.Send("MARKREAD %s", channel)
		expectMarkread(t, phone, channel, ts[1])

		// Alice reads on another Matrix client.
		if err := alice.Client.SendReceipt(ctx, room, m3, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		expectMarkread(t, laptop, channel, ts[2])
		expectMarkread(t, phone, channel, ts[2])
		if err := alice.Client.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{Read: m4, FullyRead: m4}); err != nil {
			t.Fatal(err)
		}
		expectMarkread(t, laptop, channel, ts[3])
		expectMarkread(t, phone, channel, ts[3])

		s := sentinel(t, bob, room)
		for _, c := range []*testenv.IRCClient{laptop, phone, tablet} {
			untilText(t, c, s.text)
		}
		for _, line := range tablet.Lines() {
			if m, err := irc.ParseMessage(line); err == nil && m.Command == "MARKREAD" {
				t.Errorf("MARKREAD sent to a client without draft/read-marker: %s", line)
			}
		}
		// The marker a client is shown never goes back.
		for name, c := range map[string]*testenv.IRCClient{"laptop": laptop, "phone": phone} {
			var last int64
			for _, line := range c.Lines() {
				m, err := irc.ParseMessage(line)
				if err != nil {
					continue
				}
				if target, ms, star, ok := markread(m); ok && !star && target == channel {
					if ms < last {
						t.Errorf("%s: MARKREAD went back from %s to %s", name, fmtMS(last), fmtMS(ms))
					}
					last = ms
				}
			}
		}

		quit(t, laptop)
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", rmCaps...)
		if _, ms, star, ok := markread(markerInBurst(laptop)); !ok || star || ms != ts[3] {
			t.Errorf("MARKREAD after the burst of a reconnecting client: %s, want %s", fmtMS(ms), fmtMS(ts[3]))
		}
	})
}

// waitReceipt syncs acct until its m.read receipt in room is on ev.
func waitReceipt(t *testing.T, acct *testenv.Account, room id.RoomID, ev id.EventID) {
	t.Helper()
	acct.SyncUntil(t, ctxFor(t), func(resp *mautrix.RespSync) bool {
		joined := resp.Rooms.Join[room]
		if joined == nil {
			return false
		}
		for _, e := range joined.Ephemeral.Events {
			if e.Type.Type != event.EphemeralEventReceipt.Type {
				continue
			}
			var content map[string]map[string]map[string]json.RawMessage
			if json.Unmarshal(e.Content.VeryRaw, &content) != nil {
				continue
			}
			if _, ok := content[ev.String()]["m.read"][acct.UserID.String()]; ok {
				return true
			}
		}
		return false
	})
}

// waitFullyRead polls acct's m.fully_read marker in room until it is ev.
func waitFullyRead(t *testing.T, acct *testenv.Account, room id.RoomID, ev id.EventID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var marker struct {
			EventID id.EventID `json:"event_id"`
		}
		err := acct.Client.GetRoomAccountData(ctxFor(t), room, "m.fully_read", &marker)
		if err == nil && marker.EventID == ev {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("m.fully_read of %s in %s = %q (%v), want %s", acct.UserID, room, marker.EventID, err, ev)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// 6: with away_when_detached, presence is unavailable while no client is
// attached and online again once one is.
func TestAwayWhenDetached(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, _, channel := twoInARoom(t, hs, "detached")

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop")
		awaitBurst(t, laptop, channel)
		waitPresence(t, bob, alice.UserID, event.PresenceOnline)
		phone := dialClient(t, b.addr(), "alicephone", alice, "phone")
		awaitBurst(t, phone, channel)
		quit(t, laptop)
		if p, err := bob.Client.GetPresence(ctxFor(t), alice.UserID); err != nil || p.Presence != event.PresenceOnline {
			t.Errorf("presence with the phone still attached = %+v (%v), want online", p, err)
		}
		quit(t, phone)
		waitPresence(t, bob, alice.UserID, event.PresenceUnavailable)
		if n := b.g.sessions.SessionCount(); n != 1 {
			t.Errorf("%d sessions while detached, want the always-on one", n)
		}
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop")
		awaitBurst(t, laptop, channel)
		waitPresence(t, bob, alice.UserID, event.PresenceOnline)
	})
}

var labeledCaps = append([]string{"labeled-response", "batch"}, tagCaps...)

// alwaysOnReply runs ALWAYSON and returns the text of its reply, failing
// on an error reply or none.
func alwaysOnReply(t *testing.T, c *testenv.IRCClient, args string) string {
	t.Helper()
	line := strings.TrimSpace("ALWAYSON " + args)
	lines := labeled(t, c, line)
	var texts []string
	for _, m := range lines {
		if m.Command == "FAIL" || len(m.Command) == 3 && (m.Command[0] == '4' || m.Command[0] == '5') {
			t.Errorf("%s answered with an error: %s", line, m)
		}
		texts = append(texts, m.Trailing())
	}
	if args == "" && len(texts) == 0 {
		t.Errorf("ALWAYSON showed nothing")
	}
	return strings.Join(texts, "\n")
}

// waitAlwaysOn polls the account's stored ALWAYSON setting until it is
// want (nil: follow the server's default).
func waitAlwaysOn(t *testing.T, g *gateway, user id.UserID, want *bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		acct, err := g.store.Account(ctxFor(t), user)
		if err == nil && (acct.AlwaysOn == nil) == (want == nil) && (want == nil || *acct.AlwaysOn == *want) {
			return
		}
		if time.Now().After(deadline) {
			var got any = err
			if err == nil {
				got = acct.AlwaysOn
				if acct.AlwaysOn != nil {
					got = *acct.AlwaysOn
				}
			}
			t.Fatalf("stored always-on setting of %s = %v, want %v", user, got, fmtBoolPtr(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fmtBoolPtr(b *bool) string {
	if b == nil {
		return "default"
	}
	return fmt.Sprint(*b)
}

func ptr[T any](v T) *T { return &v }

// 9: ALWAYSON shows and changes the account's setting; OFF ends the
// session with the last client, DEFAULT follows always_on (true here).
func TestAlwaysOnCommand(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "alwayson")

		c := dialClient(t, b.addr(), "alice", alice, "laptop", labeledCaps...)
		awaitBurst(t, c, channel)
		onText := alwaysOnReply(t, c, "")
		alwaysOnReply(t, c, "OFF")
		waitAlwaysOn(t, b.g, alice.UserID, ptr(false))
		offText := alwaysOnReply(t, c, "")
		if !strings.Contains(strings.ToLower(offText), "off") || offText == onText {
			t.Errorf("ALWAYSON after OFF shows %q (before: %q)", offText, onText)
		}
		quit(t, c)
		waitSessions(t, b.g, 0)

		c = dialClient(t, b.addr(), "alice", alice, "laptop", labeledCaps...)
		awaitBurst(t, c, channel)
		if got := alwaysOnReply(t, c, ""); got != offText {
			t.Errorf("ALWAYSON after reconnecting shows %q, want the stored OFF: %q", got, offText)
		}
		alwaysOnReply(t, c, "DEFAULT")
		waitAlwaysOn(t, b.g, alice.UserID, nil)
		if got := alwaysOnReply(t, c, ""); got == offText {
			t.Errorf("ALWAYSON after DEFAULT still shows %q", got)
		}
		keptWhileDetached(t, b, c, alice, bob, room, channel, "kept while detached", "ALWAYSON DEFAULT and always_on = true")
	})
}

// keptWhileDetached quits c, has bob say text, and checks that the
// account's session stayed and replays it to the client when it comes
// back.
func keptWhileDetached(t *testing.T, b *bouncer, c *testenv.IRCClient, alice, bob *testenv.Account, room id.RoomID, channel, text, setting string) {
	t.Helper()
	seeLive(t, c, bob, room)
	quit(t, c)
	kept := say(t, bob, room, text)
	waitStored(t, b.g, alice.UserID, kept)
	if n := b.g.sessions.SessionCount(); n != 1 {
		t.Errorf("%d sessions with %s, want 1", n, setting)
	}
	c = dialClient(t, b.addr(), "alice", alice, "laptop", labeledCaps...)
	got, _ := attachAndReplay(t, c, bob, room, channel)
	checkMessages(t, "replay after "+setting, got, []wantMsg{
		privmsg(bob.Localpart, text, kept, eventTime(t, bob, room, kept)),
	})
}

// 9: with always_on = false an account can turn it on for itself.
func TestAlwaysOnCommandWhenOffByDefault(t *testing.T) {
	forEachStoreWith(t, func(cfg *Config) { cfg.Bouncer.AlwaysOn = false }, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "alwaysoff")

		c := dialClient(t, b.addr(), "alice", alice, "laptop", labeledCaps...)
		awaitBurst(t, c, channel)
		if got := alwaysOnReply(t, c, ""); !strings.Contains(strings.ToLower(got), "off") {
			t.Errorf("ALWAYSON with always_on = false shows %q", got)
		}
		quit(t, c)
		waitSessions(t, b.g, 0)

		c = dialClient(t, b.addr(), "alice", alice, "laptop", labeledCaps...)
		awaitBurst(t, c, channel)
		alwaysOnReply(t, c, "ON")
		waitAlwaysOn(t, b.g, alice.UserID, ptr(true))
		keptWhileDetached(t, b, c, alice, bob, room, channel, "kept because of ALWAYSON ON", "ALWAYSON ON")
	})
}

// 8: the homeserver stopping and coming back under an attached client is
// said in NOTICEs; a message typed meanwhile is sent once it is back, once;
// messages then flow both ways, and a detached client of the account gets
// what it missed.
func TestBouncerHomeserverRestart(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { homeserverRestart(t, driver) })
	}
}

func homeserverRestart(t *testing.T, driver string) {
	hs := testenv.StartHomeserver(t)
	b := startBouncer(t, bouncerConfig(t, hs, driver, nil))
	alice, bob, room, channel := twoInARoom(t, hs, "hsbounce")

	phone := dialClient(t, b.addr(), "alicephone", alice, "phone", tagCaps...)
	awaitBurst(t, phone, channel)
	waitNames(t, phone, channel, bob.Localpart)
	seeLive(t, phone, bob, room)
	quit(t, phone)
	laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
	awaitBurst(t, laptop, channel)

	hs.Stop()
	laptop.Timeout = 60 * time.Second
	laptop.ExpectMatch(t, func(m *irc.Message) bool {
		text := strings.ToLower(m.Trailing())
		return m.Command == "NOTICE" && (strings.Contains(text, "cannot reach") || strings.Contains(text, "unreachable"))
	}, "NOTICE that the homeserver is unreachable")
	laptop.Send("PRIVMSG %s :typed while the homeserver was down", channel)
	waitOutboxHolds(t, b.g, alice, "typed while the homeserver was down")
	hs.Restart(t)
	laptop.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && strings.Contains(strings.ToLower(m.Trailing()), "reachable again")
	}, "NOTICE that it is reachable again")
	typedWhileDown := bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "typed while the homeserver was down"
	}).ID

	fromBob := say(t, bob, room, "after the homeserver restart")
	before, m := untilText(t, laptop, "after the homeserver restart")
	if m.Tags["msgid"] != fromBob.String() {
		t.Errorf("live message after the restart: %s, want msgid %s", m, fromBob)
	}
	laptop.Send("PRIVMSG %s :the laptop after the restart", channel)
	fromLaptop := bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == alice.UserID && ev.Content.AsMessage().Body == "the laptop after the restart"
	}).ID
	ts := eventTimes(t, bob, room, typedWhileDown, fromBob, fromLaptop)
	if n := count(roomBodies(t, bob, room), "typed while the homeserver was down"); n != 1 {
		t.Errorf("the message typed while the homeserver was down is in the room %d times, want once", n)
	}

	phone = dialClient(t, b.addr(), "alicephone", alice, "phone", tagCaps...)
	got, s := attachAndReplay(t, phone, bob, room, channel)
	checkMessages(t, "replay to the phone after the homeserver restart", got, []wantMsg{
		privmsg("alicephone", "typed while the homeserver was down", typedWhileDown, ts[0]),
		privmsg(bob.Localpart, "after the homeserver restart", fromBob, ts[1]),
		privmsg("alicephone", "the laptop after the restart", fromLaptop, ts[2]),
	})
	after, _ := untilText(t, laptop, s.text)
	if msgs := channelMessages(append(before, after...), channel); len(msgs) != 0 {
		t.Errorf("the laptop got more than the one message:%s", formatMsgs(msgs))
	}
	if n := b.g.sessions.SessionCount(); n != 1 {
		t.Errorf("%d sessions after the homeserver restart", n)
	}
}

// 7 (graceful): a gateway stopped and started again on the same store
// resumes every always-on session by itself, without logging in again and
// without any client, and a client reconnecting gets what it missed while
// detached and while the gateway was down. An account with ALWAYSON OFF is
// not resumed.
func TestBouncerGatewayRestart(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "gwrestart")
		dave, carol := hs.Register(t, "dave"), hs.Register(t, "carol")

		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		awaitBurst(t, laptop, channel)
		waitNames(t, laptop, channel, bob.Localpart)
		say(t, bob, room, "before the restart")
		untilText(t, laptop, "before the restart")
		quit(t, laptop)

		d := dialClient(t, b.addr(), "dave", dave, "")
		d.Drain(t)
		quit(t, d)
		c := dialClient(t, b.addr(), "carol", carol, "", labeledCaps...)
		alwaysOnReply(t, c, "OFF")
		waitAlwaysOn(t, b.g, carol.UserID, ptr(false))
		quit(t, c)
		waitSessions(t, b.g, 2) // alice's and dave's

		detached := say(t, bob, room, "while detached")
		waitStored(t, b.g, alice.UserID, detached)
		before, err := b.g.store.Account(ctxFor(t), alice.UserID)
		if err != nil {
			t.Fatal(err)
		}

		b.stop(t)
		down1 := say(t, bob, room, "while the gateway is down 1")
		down2 := say(t, bob, room, "while the gateway is down 2")
		b.start(t)
		waitSessions(t, b.g, 2)
		resumed := say(t, bob, room, "after the restart, still detached")
		waitStored(t, b.g, alice.UserID, resumed)
		after, err := b.g.store.Account(ctxFor(t), alice.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if after.AccessToken != before.AccessToken || after.DeviceID != before.DeviceID {
			t.Errorf("the resumed session logged in again: device %s -> %s, token changed: %v",
				before.DeviceID, after.DeviceID, after.AccessToken != before.AccessToken)
		}
		if devices := gatewayDevices(t, alice); len(devices) != 1 {
			t.Errorf("gateway devices after the restart: %v", devices)
		}

		ts := eventTimes(t, bob, room, detached, down1, down2, resumed)
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		got, _ := attachAndReplay(t, laptop, bob, room, channel)
		checkMessages(t, "replay after the gateway restart", got, []wantMsg{
			privmsg(bob.Localpart, "while detached", detached, ts[0]),
			privmsg(bob.Localpart, "while the gateway is down 1", down1, ts[1]),
			privmsg(bob.Localpart, "while the gateway is down 2", down2, ts[2]),
			privmsg(bob.Localpart, "after the restart, still detached", resumed, ts[3]),
		})
		if n := b.g.sessions.SessionCount(); n != 2 {
			t.Errorf("%d sessions after the restart, want alice's and dave's (carol has ALWAYSON OFF)", n)
		}
	})
}
