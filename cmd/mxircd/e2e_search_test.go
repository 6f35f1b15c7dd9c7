package main

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// SEARCH (issue 18) asks the homeserver's /search (Dendrite's
// sync_api.search, on in the test homeserver) and answers with matching
// lines whose msgid CHATHISTORY AROUND opens; encrypted rooms cannot be
// searched, and the answer says so. THREADS lists a channel's threads from
// the stored messages, since Dendrite has no /threads endpoint.
func TestSearch(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) { testSearch(t, hs, g) })
}

func testSearch(t *testing.T, hs *testenv.Homeserver, g *gateway) {
	alice, bob, room, channel := twoInARoom(t, hs, "search")
	c := connectWithCaps(t, g, "alice", alice, "draft/chathistory", "batch", "message-tags", "server-time")
	c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")
	waitNames(t, c, channel, bob.Localpart)

	say(t, bob, room, "good morning")
	found := say(t, bob, room, "the quokka is the happiest animal")
	say(t, bob, room, "see you later")
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "see you later")

	// Dendrite indexes new messages a moment after it stores them: ask
	// until the match comes (or the test times out).
	var line *irc.Message
	for range 50 {
		c.Send("PRIVMSG mxircd :SEARCH %s quokka", channel)
		m := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && m.Prefix.Name == "mxircd" && (strings.Contains(m.Trailing(), "quokka") || strings.HasPrefix(m.Trailing(), "Nothing"))
		}, "a search answer")
		if strings.HasPrefix(m.Trailing(), "Nothing") {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		line = m
		break
	}
	if line == nil {
		t.Fatal("SEARCH never found the message")
	}
	want := channel + " <" + bob.Localpart + "> the quokka is the happiest animal (msgid=" + string(found) + ")"
	if !strings.HasSuffix(line.Trailing(), want) {
		t.Errorf("search line = %q, want it to end %q", line.Trailing(), want)
	}
	expectService(t, c, "End of matches")
	// The msgid opens the conversation around the match.
	lines := chathistory(t, c, channel, "AROUND %s msgid=%s 3", channel, found)
	var got []string
	for _, m := range lines {
		got = append(got, m.Tags["msgid"])
	}
	if !contains(got, string(found)) || len(lines) < 2 {
		t.Errorf("CHATHISTORY AROUND the match gave msgids %v, want the match %s among its neighbours", got, found)
	}

	// Everywhere: the same match; an encrypted room is named as not searched.
	createEncryptedRoom(t, alice, uniq("searchenc"))
	join := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && strings.HasPrefix(m.Param(0), "#searchenc") }, "the encrypted room's JOIN")
	c.Send("PRIVMSG mxircd :SEARCH quokka")
	expectService(t, c, want)
	expectService(t, c, "1 of your rooms are end-to-end encrypted; the homeserver cannot search them")
	c.Send("PRIVMSG mxircd :SEARCH %s quokka", join.Param(0))
	expectService(t, c, join.Param(0)+" is end-to-end encrypted: the homeserver cannot read it, so it cannot search it")
	c.Send("PRIVMSG mxircd :HELP SEARCH")
	expectService(t, c, "SEARCH [<channel>] <words>: searches")
	c.Send("PRIVMSG mxircd :HELP THREADS")
	expectService(t, c, "THREADS <channel>: lists a channel's threads")
	c.Send("PRIVMSG mxircd :SEARCH #nowhere:localhost quokka")
	expectService(t, c, "You are not in #nowhere:localhost")
	c.Send("PRIVMSG mxircd :SEARCH %s", channel)
	expectService(t, c, "Usage: SEARCH")
	c.Send("PRIVMSG mxircd :SEARCH %s zebra", channel)
	expectService(t, c, "Nothing in "+channel+" matches \"zebra\"")
}

func TestThreadList(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) { testThreadList(t, hs, g) })
}

func testThreadList(t *testing.T, hs *testenv.Homeserver, g *gateway) {
	alice, bob, room, channel := twoInARoom(t, hs, "threadlist")
	c := connect(t, g, "alice", alice)
	waitNames(t, c, channel, bob.Localpart)

	c.Send("PRIVMSG mxircd :THREADS %s", channel)
	expectService(t, c, "No threads in "+channel)

	older := say(t, bob, room, "who brings snacks?")
	newer := say(t, bob, room, "talk slides go here")
	reply := func(root id.EventID, text string) {
		t.Helper()
		sendContent(t, bob, room, &event.MessageEventContent{MsgType: event.MsgText, Body: text,
			RelatesTo: (&event.RelatesTo{}).SetThread(root, root)})
	}
	reply(older, "I do")
	reply(older, "me too")
	reply(newer, "slides.pdf")
	reply(older, "and drinks")
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "and drinks")

	c.Send("PRIVMSG mxircd :THREADS %s", channel)
	first := expectService(t, c, "— ")
	second := expectService(t, c, "— ")
	if want := bob.Localpart + ": \"who brings snacks?\" — 3 replies"; !strings.HasPrefix(first.Trailing(), want) || !strings.HasSuffix(first.Trailing(), "(msgid="+older.String()+")") {
		t.Errorf("first thread = %q, want %q… (msgid=%s)", first.Trailing(), want, older)
	}
	if want := bob.Localpart + ": \"talk slides go here\" — 1 reply"; !strings.HasPrefix(second.Trailing(), want) || !strings.HasSuffix(second.Trailing(), "(msgid="+newer.String()+")") {
		t.Errorf("second thread = %q, want %q… (msgid=%s)", second.Trailing(), want, newer)
	}
	expectService(t, c, "End of threads in "+channel)
	c.Send("PRIVMSG mxircd :THREADS #nowhere:localhost")
	expectService(t, c, "You are not in #nowhere:localhost")
}
