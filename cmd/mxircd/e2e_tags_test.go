package main

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// With message-tags and draft/message-redaction, replies, reactions,
// typing and deletions travel as tags and REDACT, both ways, with msgid as
// the Matrix event ID.
func TestClientTags(t *testing.T) {
	_, alice, bob, room, channel, c := aliceMeetsBob(t, "tags", "message-tags", "draft/message-redaction")
	ctx := ctxFor(t)

	first, err := bob.Client.SendText(ctx, room, "first")
	if err != nil {
		t.Fatal(err)
	}
	m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "first")
	if m.Tags["msgid"] != first.EventID.String() || m.Tags["time"] == "" {
		t.Errorf("tags = %v, want msgid %s and time", m.Tags, first.EventID)
	}

	// From IRC: a reply, a reaction, typing, a deletion.
	c.Send("@+draft/reply=%s PRIVMSG %s :an answer", first.EventID, channel)
	answer := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == alice.UserID
	})
	if got := answer.Content.AsMessage().RelatesTo.GetReplyTo(); got != first.EventID {
		t.Errorf("reply relation = %q, want %s", got, first.EventID)
	}
	c.Send("@+draft/react=👍;+draft/reply=%s TAGMSG %s", first.EventID, channel)
	reaction := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool { return ev.Type == event.EventReaction })
	if rel := reaction.Content.AsReaction().RelatesTo; rel.EventID != first.EventID || rel.Key != "👍" {
		t.Errorf("reaction = %+v", rel)
	}
	c.Send("@+typing=active TAGMSG %s", channel)
	bob.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
		if joined := resp.Rooms.Join[room]; joined != nil {
			for _, ev := range joined.Ephemeral.Events {
				ev.Content.ParseRaw(ev.Type)
				for _, u := range ev.Content.AsTyping().UserIDs {
					if u == alice.UserID {
						return true
					}
				}
			}
		}
		return false
	})
	c.Send("REDACT %s %s :never mind", channel, answer.ID)
	redaction := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool { return ev.Type == event.EventRedaction })
	if redaction.Redacts != answer.ID && redaction.Content.AsRedaction().Redacts != answer.ID {
		t.Errorf("redaction of %s, want %s", redaction.Redacts, answer.ID)
	}
	c.Send("REDACT %s notanid", channel)
	c.ExpectMatch(t, isCmd("FAIL", "REDACT", "UNKNOWN_MSGID"), "FAIL for a bad msgid")

	// From Matrix: the same as tags.
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "a reply"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(first.EventID)
	if _, err := bob.Client.SendMessageEvent(ctx, room, event.EventMessage, reply); err != nil {
		t.Fatal(err)
	}
	m = expectFrom(t, c, "PRIVMSG", bob.Localpart, "a reply")
	// The quote goes along by default (TAGSONLY, e2e_tagsonly_test.go).
	if m.Trailing() != "(re "+bob.Localpart+": \"first\") a reply" || m.Tags["+draft/reply"] != first.EventID.String() {
		t.Errorf("reply on IRC = %s", m)
	}
	if _, err := bob.Client.SendReaction(ctx, room, first.EventID, "🎉"); err != nil {
		t.Fatal(err)
	}
	m = c.ExpectMatch(t, isCmd("TAGMSG", channel), "TAGMSG reaction")
	if m.Tags["+draft/react"] != "🎉" || m.Tags["+draft/reply"] != first.EventID.String() || m.Prefix.Name != bob.Localpart {
		t.Errorf("reaction on IRC = %s", m)
	}
	if _, err := bob.Client.UserTyping(ctx, room, true, 30*time.Second); err != nil {
		t.Logf("typing: %v", err)
	}
	m = c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "TAGMSG" && m.Tags["+typing"] == "active" }, "+typing=active")
	if m.Prefix.Name != bob.Localpart {
		t.Errorf("typing from %s", m.Prefix.Name)
	}
	if _, err := bob.Client.RedactEvent(ctx, room, first.EventID); err != nil {
		t.Fatal(err)
	}
	c.ExpectMatch(t, isCmd("REDACT", channel, first.EventID.String()), "REDACT from Matrix")
}

// A reaction sent as a TAGMSG comes back to its sender as that TAGMSG
// alone (labeled when the TAGMSG was): the client that sends reactions
// shows them. The account's other clients still get the readable line.
func TestReactionEchoIsTheTagmsg(t *testing.T) {
	g, alice, bob, room, channel, c := aliceMeetsBob(t, "reactecho", "message-tags", "echo-message", "labeled-response", "batch")
	other := connectWithCaps(t, g, "alice", alice, "message-tags")
	awaitBurst(t, other, channel)
	first, err := bob.Client.SendText(ctxFor(t), room, "react to me")
	if err != nil {
		t.Fatal(err)
	}
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "react to me")
	expectFrom(t, other, "PRIVMSG", bob.Localpart, "react to me")

	c.Send("@label=r1;+draft/react=👍;+draft/reply=%s TAGMSG %s", first.EventID, channel)
	echo := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Tags["label"] == "r1" }, "the labeled answer")
	if echo.Command != "TAGMSG" || echo.Tags["+draft/react"] != "👍" {
		t.Errorf("answer to a labeled reaction = %s, want the TAGMSG itself", echo)
	}
	for _, m := range linesUntilPong(t, c, "after-react") {
		if m.Command == "NOTICE" || m.Command == "PRIVMSG" {
			t.Errorf("the reacting client also got %s", m)
		}
	}
	other.ExpectMatch(t, isCmd("TAGMSG", channel), "the other client's TAGMSG")
	other.ExpectMatch(t, func(m *irc.Message) bool {
		return (m.Command == "NOTICE" || m.Command == "PRIVMSG") && strings.Contains(m.Trailing(), "reacted 👍")
	}, "the other client's readable line")
}
