package main

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

// connectNamed logs acct in over SASL as client name (acct@name) with caps.
func connectNamed(t *testing.T, g *gateway, nick string, acct *testenv.Account, name string, caps ...string) *testenv.IRCClient {
	t.Helper()
	c := testenv.DialIRC(t, g.ircAddr())
	c.Send("CAP LS 302")
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :test", acct.Localpart)
	c.Send("CAP REQ :%s", strings.Join(append([]string{"sasl"}, caps...), " "))
	c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "CAP" && m.Param(1) == "ACK" }, "CAP ACK")
	c.Send("AUTHENTICATE PLAIN")
	c.Expect(t, "AUTHENTICATE")
	c.Send("AUTHENTICATE %s", b64("\x00"+acct.UserID.String()+"@"+name+"\x00"+acct.Password))
	c.Expect(t, irc.RPL_SASLSUCCESS)
	c.Send("CAP END")
	c.Expect(t, irc.RPL_WELCOME)
	return c
}

// untilFrom consumes c's lines until a PRIVMSG from nick containing text,
// and returns the lines from nick before it.
func untilFrom(t *testing.T, c *testenv.IRCClient, nick, text string) (*irc.Message, []*irc.Message) {
	t.Helper()
	var before []*irc.Message
	m := c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Prefix == nil || m.Prefix.Name != nick {
			return false
		}
		if m.Command == "PRIVMSG" && strings.Contains(m.Trailing(), text) {
			return true
		}
		before = append(before, m)
		return false
	}, "PRIVMSG from "+nick+" containing "+text)
	return m, before
}

// A client with message-tags gets a Matrix reaction both as a TAGMSG and
// as the NOTICE clients without message-tags get, and a reply both with
// +draft/reply and with their quote; TAGSONLY ON for its client name
// leaves only the tags, for that name only, and is kept for its next
// connection.
func TestTagsOnly(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) { testTagsOnly(t, hs, g) })
}

func testTagsOnly(t *testing.T, hs *testenv.Homeserver, g *gateway) {
	alice, bob, room, channel := twoInARoom(t, hs, "tagsonly")
	plain := connect(t, g, "alice", alice)
	plain.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alice", channel), "burst")
	waitNames(t, plain, channel, bob.Localpart)
	tagged := connectNamed(t, g, "alicew", alice, "weechat", "message-tags")
	tagged.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alicew", channel), "tagged client's burst")
	ctx := ctxFor(t)

	first := say(t, bob, room, "lunch at one?")
	expectFrom(t, plain, "PRIVMSG", bob.Localpart, "lunch at one?")
	expectFrom(t, tagged, "PRIVMSG", bob.Localpart, "lunch at one?")

	react := func(key string) {
		t.Helper()
		if _, err := bob.Client.SendReaction(ctx, room, first, key); err != nil {
			t.Fatal(err)
		}
	}
	reply := func(text string) {
		t.Helper()
		sendContent(t, bob, room, &event.MessageEventContent{MsgType: event.MsgText, Body: text,
			RelatesTo: (&event.RelatesTo{}).SetReplyTo(first)})
	}
	quote := "(re " + bob.Localpart + ": \"lunch at one?\") "
	// checkReaction wants the lines from bob before marker to be the
	// reaction's TAGMSG (with tags) and its NOTICE (with note).
	checkReaction := func(c *testenv.IRCClient, who, key, marker string, withTags, withNote bool) {
		t.Helper()
		_, before := untilFrom(t, c, bob.Localpart, marker)
		var tagmsg, notice int
		for _, m := range before {
			switch {
			case m.Command == "TAGMSG" && m.Tags["+draft/react"] == key && m.Tags["+draft/reply"] == first.String():
				tagmsg++
			case m.Command == "NOTICE" && m.Trailing() == "reacted "+key+" to "+bob.Localpart+": \"lunch at one?\"":
				notice++
			default:
				t.Errorf("%s: unexpected line from bob before %q: %s", who, marker, m)
			}
		}
		if want := map[bool]int{true: 1}[withTags]; tagmsg != want {
			t.Errorf("%s: %d TAGMSG reactions %s, want %d; lines: %v", who, tagmsg, key, want, before)
		}
		if want := map[bool]int{true: 1}[withNote]; notice != want {
			t.Errorf("%s: %d reaction NOTICEs %s, want %d; lines: %v", who, notice, key, want, before)
		}
	}
	checkReply := func(c *testenv.IRCClient, who, text string, withTag, withQuote bool) {
		t.Helper()
		m := expectFrom(t, c, "PRIVMSG", bob.Localpart, text)
		want := text
		if withQuote {
			want = quote + text
		}
		if m.Trailing() != want {
			t.Errorf("%s: reply = %q, want %q", who, m.Trailing(), want)
		}
		if got, wantTag := m.Tags["+draft/reply"], map[bool]string{true: first.String()}[withTag]; got != wantTag {
			t.Errorf("%s: +draft/reply = %q, want %q", who, got, wantTag)
		}
	}

	// By default: both forms for the tagged client, text for the plain one.
	react("👍")
	say(t, bob, room, "marker one")
	checkReaction(tagged, "tagged", "👍", "marker one", true, true)
	checkReaction(plain, "plain", "👍", "marker one", false, true)
	reply("sounds good")
	checkReply(tagged, "tagged", "sounds good", true, true)
	checkReply(plain, "plain", "sounds good", false, true)

	// Bad input is explained and changes nothing.
	tagged.Send("PRIVMSG mxircd :TAGSONLY MAYBE")
	m := tagged.ExpectMatch(t, isCmd("NOTICE", "alicew"), "answer to TAGSONLY MAYBE")
	if !strings.Contains(m.Trailing(), "TAGSONLY takes ON or OFF") {
		t.Errorf("TAGSONLY MAYBE answered %q", m.Trailing())
	}
	tagged.Send("PRIVMSG mxircd :TAGSONLY ON not/a/name")
	m = tagged.ExpectMatch(t, isCmd("NOTICE", "alicew"), "answer to a bad client name")
	if !strings.Contains(m.Trailing(), "is not one") {
		t.Errorf("TAGSONLY ON not/a/name answered %q", m.Trailing())
	}
	tagged.Send("PRIVMSG mxircd :HELP TAGSONLY")
	m = tagged.ExpectMatch(t, isCmd("NOTICE", "alicew"), "HELP TAGSONLY")
	if !strings.HasPrefix(m.Trailing(), "TAGSONLY [ON|OFF [<client>]]: with it on, ") {
		t.Errorf("HELP TAGSONLY answered %q", m.Trailing())
	}
	tagged.Send("PRIVMSG mxircd :TAGSONLY")
	m = tagged.ExpectMatch(t, isCmd("NOTICE", "alicew"), "TAGSONLY state")
	if !strings.HasPrefix(m.Trailing(), "Tags only is off for client \"weechat\"") {
		t.Errorf("TAGSONLY answered %q, want off for weechat", m.Trailing())
	}

	tagged.Send("PRIVMSG mxircd :TAGSONLY ON")
	m = tagged.ExpectMatch(t, isCmd("NOTICE", "alicew"), "answer to TAGSONLY ON")
	if m.Trailing() != "Tags only is now on for client \"weechat\"." {
		t.Errorf("TAGSONLY ON answered %q", m.Trailing())
	}
	react("🎉")
	say(t, bob, room, "marker two")
	checkReaction(tagged, "tagged, tags only", "🎉", "marker two", true, false)
	checkReaction(plain, "plain", "🎉", "marker two", false, true)
	reply("see you then")
	checkReply(tagged, "tagged, tags only", "see you then", true, false)
	checkReply(plain, "plain", "see you then", false, true)

	// The setting is kept for the client name's next connection, and a
	// tagged client of another name still gets both.
	tagged.Close()
	again := connectNamed(t, g, "alicew2", alice, "weechat", "message-tags")
	again.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alicew2", channel), "reconnected client's burst")
	other := connectNamed(t, g, "alicel", alice, "lounge", "message-tags")
	other.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, "alicel", channel), "other client's burst")
	react("🙂")
	say(t, bob, room, "marker three")
	checkReaction(again, "reconnected, tags only", "🙂", "marker three", true, false)
	checkReaction(other, "other client name", "🙂", "marker three", true, true)

	// OFF, set from another client by name, brings the text back.
	other.Send("PRIVMSG mxircd :TAGSONLY OFF weechat")
	m = other.ExpectMatch(t, isCmd("NOTICE", "alicel"), "answer to TAGSONLY OFF weechat")
	if m.Trailing() != "Tags only is now off for client \"weechat\"." {
		t.Errorf("TAGSONLY OFF weechat answered %q", m.Trailing())
	}
	reply("or two")
	checkReply(again, "reconnected, after OFF", "or two", true, true)
}
