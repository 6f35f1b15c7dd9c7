package mapping

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
)

func TestMessageToIRC(t *testing.T) {
	edit := func(msgType event.MessageType, newBody string) *event.MessageEventContent {
		return &event.MessageEventContent{
			MsgType:    msgType,
			Body:       "* " + newBody,
			NewContent: &event.MessageEventContent{MsgType: msgType, Body: newBody},
			RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: "$orig"},
		}
	}
	cases := []struct {
		name string
		in   *event.MessageEventContent
		want IRCMessage
		ok   bool
	}{
		{"text", &event.MessageEventContent{MsgType: event.MsgText, Body: "hello"}, IRCMessage{"PRIVMSG", false, "hello"}, true},
		{"text trimmed", &event.MessageEventContent{MsgType: event.MsgText, Body: "  hello \n"}, IRCMessage{"PRIVMSG", false, "hello"}, true},
		{"multi-line kept", &event.MessageEventContent{MsgType: event.MsgText, Body: "a\nb"}, IRCMessage{"PRIVMSG", false, "a\nb"}, true},
		{"notice", &event.MessageEventContent{MsgType: event.MsgNotice, Body: "bot says"}, IRCMessage{"NOTICE", false, "bot says"}, true},
		{"emote", &event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves"}, IRCMessage{"PRIVMSG", true, "waves"}, true},
		{"image", &event.MessageEventContent{MsgType: event.MsgImage, Body: "cat.png", URL: "mxc://srv/abc"}, IRCMessage{"PRIVMSG", false, "[image] cat.png"}, true},
		{"file", &event.MessageEventContent{MsgType: event.MsgFile, Body: "doc.pdf"}, IRCMessage{"PRIVMSG", false, "[file] doc.pdf"}, true},
		{"audio", &event.MessageEventContent{MsgType: event.MsgAudio, Body: "voice.ogg"}, IRCMessage{"PRIVMSG", false, "[audio] voice.ogg"}, true},
		{"video", &event.MessageEventContent{MsgType: event.MsgVideo, Body: "clip.mp4"}, IRCMessage{"PRIVMSG", false, "[video] clip.mp4"}, true},
		{"unknown msgtype as text", &event.MessageEventContent{MsgType: "org.example.custom", Body: "x"}, IRCMessage{"PRIVMSG", false, "x"}, true},
		{"no msgtype as text", &event.MessageEventContent{Body: "x"}, IRCMessage{"PRIVMSG", false, "x"}, true},
		{"edit", edit(event.MsgText, "new text"), IRCMessage{"PRIVMSG", false, "* new text"}, true},
		{"edit trimmed", edit(event.MsgText, "  new text  "), IRCMessage{"PRIVMSG", false, "* new text"}, true},
		{"edit of notice", edit(event.MsgNotice, "fixed"), IRCMessage{"NOTICE", false, "* fixed"}, true},
		{"edit of emote", edit(event.MsgEmote, "waves harder"), IRCMessage{"PRIVMSG", true, "* waves harder"}, true},
		{"edit to nothing", edit(event.MsgText, " "), IRCMessage{}, false},
		// Once rendered as "* ": the control byte went after the check.
		{"edit to a control byte", edit(event.MsgText, "\x01"), IRCMessage{}, false},
		{"control bytes stripped", &event.MessageEventContent{MsgType: event.MsgText, Body: "\x01VERSION\x01"}, IRCMessage{"PRIVMSG", false, "VERSION"}, true},
		{"only control bytes", &event.MessageEventContent{MsgType: event.MsgText, Body: " \x01 "}, IRCMessage{}, false},

		{"empty", &event.MessageEventContent{MsgType: event.MsgText}, IRCMessage{}, false},
		{"whitespace", &event.MessageEventContent{MsgType: event.MsgText, Body: " \t\n "}, IRCMessage{}, false},
		{"empty notice", &event.MessageEventContent{MsgType: event.MsgNotice}, IRCMessage{}, false},
		{"empty emote", &event.MessageEventContent{MsgType: event.MsgEmote}, IRCMessage{}, false},
		{"image without body", &event.MessageEventContent{MsgType: event.MsgImage, URL: "mxc://srv/abc"}, IRCMessage{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := MessageToIRC(c.in, nil)
			if ok != c.ok {
				t.Fatalf("MessageToIRC ok = %v, want %v (got %+v)", ok, c.ok, got)
			}
			if ok && got != c.want {
				t.Errorf("MessageToIRC = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestMessageFromIRC(t *testing.T) {
	cases := []struct {
		name, command, text string
		msgType             event.MessageType
		body                string
		ok                  bool
	}{
		{"privmsg", "PRIVMSG", "hello", event.MsgText, "hello", true},
		{"privmsg keeps spaces", "PRIVMSG", "  hello  ", event.MsgText, "  hello  ", true},
		{"notice", "NOTICE", "hello", event.MsgNotice, "hello", true},
		{"action", "PRIVMSG", "\x01ACTION waves\x01", event.MsgEmote, "waves", true},
		{"action with more words", "PRIVMSG", "\x01ACTION waves at you\x01", event.MsgEmote, "waves at you", true},
		{"action without closing", "PRIVMSG", "\x01ACTION waves", event.MsgEmote, "waves", true},
		{"action lowercase verb", "PRIVMSG", "\x01action waves\x01", event.MsgEmote, "waves", true},
		{"action as notice", "NOTICE", "\x01ACTION waves\x01", event.MsgEmote, "waves", true},
		{"ctcp in the middle is text", "PRIVMSG", "a \x01ACTION b\x01", event.MsgText, "a ACTION b", true},
		{"formatting becomes HTML", "PRIVMSG", "\x02bold\x02", event.MsgText, "bold", true},

		{"version", "PRIVMSG", "\x01VERSION\x01", "", "", false},
		{"version without closing", "PRIVMSG", "\x01VERSION", "", "", false},
		{"ping", "PRIVMSG", "\x01PING 123\x01", "", "", false},
		{"actionx", "PRIVMSG", "\x01ACTIONX waves\x01", "", "", false},
		{"empty action", "PRIVMSG", "\x01ACTION\x01", "", "", false},
		{"blank action", "PRIVMSG", "\x01ACTION   \x01", "", "", false},
		{"bare ctcp marker", "PRIVMSG", "\x01", "", "", false},
		{"two ctcp markers", "PRIVMSG", "\x01\x01", "", "", false},
		{"empty", "PRIVMSG", "", "", "", false},
		{"whitespace", "PRIVMSG", " \t ", "", "", false},
		{"empty notice", "NOTICE", "", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := MessageFromIRC(c.command, c.text, nil)
			if ok != c.ok {
				t.Fatalf("MessageFromIRC(%q, %q) ok = %v, want %v (got %+v)", c.command, c.text, ok, c.ok, got)
			}
			if !ok {
				if got != nil {
					t.Errorf("MessageFromIRC(%q, %q) = %+v with ok=false", c.command, c.text, got)
				}
				return
			}
			if got.MsgType != c.msgType || got.Body != c.body {
				t.Errorf("MessageFromIRC(%q, %q) = %q %q, want %q %q", c.command, c.text, got.MsgType, got.Body, c.msgType, c.body)
			}
			if c.name == "formatting becomes HTML" && (got.Format != event.FormatHTML || got.FormattedBody != "<strong>bold</strong>") {
				t.Errorf("formatted = %q %q", got.Format, got.FormattedBody)
			}
		})
	}
}

func FuzzMessageFromIRC(f *testing.F) {
	for _, s := range []string{"hello", "\x01ACTION waves\x01", "\x01ACTION waves", "\x01VERSION\x01", "", " ",
		"\x01", "\x01\x01", "\x01ACTION \x01\x01", "\x01ACTION\x01", "\xff\xfe"} {
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, notice bool, text string) {
		command := "PRIVMSG"
		if notice {
			command = "NOTICE"
		}
		content, ok := MessageFromIRC(command, text, nil)
		if !ok {
			if content != nil {
				t.Fatalf("MessageFromIRC(%q, %q) = %+v with ok=false", command, text, content)
			}
			return
		}
		if content == nil {
			t.Fatalf("MessageFromIRC(%q, %q) = nil with ok=true", command, text)
		}
		if strings.TrimSpace(content.Body) == "" {
			t.Fatalf("MessageFromIRC(%q, %q): blank body %q", command, text, content.Body)
		}
		wantBody, _, _ := IRCToMatrix(strings.ReplaceAll(text, "\x01", ""), nil)
		switch content.MsgType {
		case event.MsgText:
			if notice || strings.HasPrefix(text, "\x01") || content.Body != wantBody {
				t.Fatalf("MessageFromIRC(%q, %q) = m.text %q", command, text, content.Body)
			}
		case event.MsgNotice:
			if !notice || strings.HasPrefix(text, "\x01") || content.Body != wantBody {
				t.Fatalf("MessageFromIRC(%q, %q) = m.notice %q", command, text, content.Body)
			}
		case event.MsgEmote:
			if !strings.HasPrefix(text, "\x01") {
				t.Fatalf("MessageFromIRC(%q, %q) = m.emote %q", command, text, content.Body)
			}
		default:
			t.Fatalf("MessageFromIRC(%q, %q): unknown msgtype %q", command, text, content.MsgType)
		}
		// What an IRC client sent comes back to it the same way.
		back, ok := MessageToIRC(content, nil)
		if !ok {
			t.Fatalf("MessageToIRC(%+v) rejected what MessageFromIRC(%q, %q) made", content, command, text)
		}
		if back.Action != (content.MsgType == event.MsgEmote) || (back.Command == "NOTICE") != (content.MsgType == event.MsgNotice) {
			t.Fatalf("round trip of %q %q gave %+v", command, text, back)
		}
	})
}

func FuzzMessageToIRC(f *testing.F) {
	for _, s := range []string{"hello", "", " ", "a\nb"} {
		f.Add("m.text", s, "", false)
		f.Add("m.image", s, "", false)
		f.Add("m.text", "* "+s, s, true)
	}
	f.Fuzz(func(t *testing.T, msgType, body, newBody string, isEdit bool) {
		c := &event.MessageEventContent{MsgType: event.MessageType(msgType), Body: body}
		shown := body
		if isEdit {
			c.NewContent = &event.MessageEventContent{MsgType: event.MessageType(msgType), Body: newBody}
			shown = newBody
		}
		shown = strings.TrimSpace(strings.ReplaceAll(shown, "\x01", ""))
		msg, ok := MessageToIRC(c, nil)
		if ok != (shown != "") {
			t.Fatalf("MessageToIRC(%+v) ok = %v", c, ok)
		}
		if !ok {
			return
		}
		if msg.Command != "PRIVMSG" && msg.Command != "NOTICE" {
			t.Fatalf("MessageToIRC(%+v): command %q", c, msg.Command)
		}
		if strings.Contains(msg.Text, "\x01") || (isEdit && strings.TrimSpace(strings.TrimPrefix(msg.Text, "* ")) == "") {
			t.Fatalf("MessageToIRC(%+v) = %q: a control byte or nothing to show", c, msg.Text)
		}
		if !strings.Contains(msg.Text, shown) {
			t.Fatalf("MessageToIRC(%+v) = %q: lost the body", c, msg.Text)
		}
	})
}
