package main

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
)

// With draft/multiline, a multi-line Matrix message arrives as one batch,
// and a batch from the client becomes one Matrix message.
func TestMultiline(t *testing.T) {
	_, alice, bob, room, channel, c := aliceMeetsBob(t, "multiline", "batch", "draft/multiline", "message-tags")
	ctx := ctxFor(t)

	long := strings.Repeat("word ", 150) + "end"
	sent, err := bob.Client.SendText(ctx, room, "first line\n\n"+long)
	if err != nil {
		t.Fatal(err)
	}
	open := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "BATCH" && strings.HasPrefix(m.Param(0), "+") }, "BATCH +")
	if open.Param(1) != "draft/multiline" || open.Param(2) != channel || open.Prefix.Name != bob.Localpart || open.Tags["msgid"] != sent.EventID.String() {
		t.Fatalf("BATCH opening = %s", open)
	}
	ref := open.Param(0)[1:]
	var text strings.Builder
	lines := 0
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "PRIVMSG" && m.Tags["batch"] == ref {
			if _, concat := m.Tags["draft/multiline-concat"]; !concat && lines > 0 {
				text.WriteByte('\n')
			}
			text.WriteString(m.Trailing())
			lines++
			untagged := *m
			untagged.Tags = nil
			if n := len(untagged.String()) + 2; n > 512 {
				t.Errorf("line of %d bytes without tags", n)
			}
		}
		return m.Command == "BATCH" && m.Param(0) == "-"+ref
	}, "BATCH -"+ref)
	if text.String() != "first line\n\n"+long {
		t.Errorf("batch text = %q", text.String())
	}

	c.Send("BATCH +b1 draft/multiline %s", channel)
	c.Send("@batch=b1 PRIVMSG %s :line one", channel)
	c.Send("@batch=b1 PRIVMSG %s :line two starts", channel)
	c.Send("@batch=b1;draft/multiline-concat PRIVMSG %s : and goes on", channel)
	c.Send("BATCH -b1")
	ev := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == alice.UserID
	})
	if body := ev.Content.AsMessage().Body; body != "line one\nline two starts and goes on" {
		t.Errorf("bob got %q", body)
	}

	c.Send("BATCH +b2 draft/multiline %s", channel)
	c.Send("@batch=b2 PRIVMSG #elsewhere :wrong target")
	c.ExpectMatch(t, isCmd("FAIL", "BATCH", "MULTILINE_INVALID_TARGET"), "FAIL for a mixed target")
	c.Send("BATCH -b2")
	c.ExpectMatch(t, isCmd("FAIL", "BATCH", "INVALID_REFTAG"), "FAIL closing a refused batch")
	// A blank line may not carry the concat tag (the specification).
	c.Send("BATCH +b4 draft/multiline %s", channel)
	c.Send("@batch=b4 PRIVMSG %s :hi", channel)
	c.Send("@batch=b4;draft/multiline-concat PRIVMSG %s :", channel)
	c.ExpectMatch(t, isCmd("FAIL", "BATCH", "MULTILINE_INVALID"), "FAIL for a blank concatenated line")
	c.Send("BATCH -b4")
	c.ExpectMatch(t, isCmd("FAIL", "BATCH", "INVALID_REFTAG"), "FAIL closing the refused batch")
	c.Send("BATCH +b3 chathistory %s", channel)
	c.ExpectMatch(t, isCmd("FAIL", "BATCH", "UNKNOWN_TYPE"), "FAIL for another batch type")
}
