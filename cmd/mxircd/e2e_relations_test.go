package main

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Replies, reactions, deletions, edits and events IRC cannot show arrive
// as one short, readable line each, quoting only what is needed.
func TestRelationsReadable(t *testing.T) {
	_, _, bob, room, _, c := aliceMeetsBob(t, "relations")
	ctx := ctxFor(t)
	send := func(evType event.Type, content any) id.EventID {
		t.Helper()
		resp, err := bob.Client.SendMessageEvent(ctx, room, evType, content)
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	original := send(event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: "the original words"})
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "the original words")

	reply := &event.MessageEventContent{MsgType: event.MsgText,
		Body: "> <" + bob.UserID.String() + "> the original words\n\nand a reply"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(original)
	send(event.EventMessage, reply)
	m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "and a reply")
	if want := `(re ` + bob.Localpart + `: "the original words") and a reply`; m.Trailing() != want {
		t.Errorf("reply = %q, want %q", m.Trailing(), want)
	}

	send(event.EventReaction, json.RawMessage(`{"m.relates_to":{"rel_type":"m.annotation","event_id":"`+original.String()+`","key":"👍"}}`))
	m = expectFrom(t, c, "NOTICE", bob.Localpart, "reacted")
	if want := `reacted 👍 to ` + bob.Localpart + `: "the original words"`; m.Trailing() != want {
		t.Errorf("reaction = %q, want %q", m.Trailing(), want)
	}

	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* the corrected words",
		NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "the corrected words"}}
	edit.RelatesTo = (&event.RelatesTo{}).SetReplace(original)
	send(event.EventMessage, edit)
	m = expectFrom(t, c, "PRIVMSG", bob.Localpart, "corrected")
	if m.Trailing() != "* the corrected words" {
		t.Errorf("edit = %q", m.Trailing())
	}

	if _, err := bob.Client.RedactEvent(ctx, room, original, mautrix.ReqRedact{Reason: "oops"}); err != nil {
		t.Fatal(err)
	}
	m = expectFrom(t, c, "NOTICE", bob.Localpart, "deleted")
	if want := `deleted their message "the corrected words" (oops)`; m.Trailing() != want {
		t.Errorf("deletion = %q, want %q", m.Trailing(), want)
	}

	send(event.EventEncrypted, json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AAAA","session_id":"x","sender_key":"y","device_id":"z"}`))
	expectFrom(t, c, "NOTICE", bob.Localpart, "encrypted message")
	send(event.NewEventType("org.example.custom"), json.RawMessage(`{"x":1}`))
	expectFrom(t, c, "NOTICE", bob.Localpart, "org.example.custom")
}
