package mapping

import (
	"strings"

	"maunium.net/go/mautrix/event"
)

// IRCMessage is how one Matrix message is shown on IRC: the command
// (PRIVMSG or NOTICE), whether it is a CTCP ACTION, and its text, which may
// still hold newlines (the caller splits it to fit lines).
type IRCMessage struct {
	Command string
	Action  bool
	Text    string
}

// MessageToIRC renders a room message for IRC. ok is false for content that
// has nothing to show (an empty body).
func MessageToIRC(c *event.MessageEventContent) (IRCMessage, bool) {
	body := strings.TrimSpace(c.Body)
	if c.NewContent != nil {
		// An edit: show what the text became, marked as a correction.
		body = strings.TrimSpace(c.NewContent.Body)
		if body != "" {
			body = "* " + body
		}
	}
	out := IRCMessage{Command: "PRIVMSG", Text: body}
	switch c.MsgType {
	case event.MsgNotice:
		out.Command = "NOTICE"
	case event.MsgEmote:
		out.Action = true
	case event.MsgImage, event.MsgFile, event.MsgAudio, event.MsgVideo:
		out.Text = "[" + strings.TrimPrefix(string(c.MsgType), "m.") + "] " + body
	}
	return out, body != ""
}

// MessageFromIRC turns the text of a PRIVMSG or NOTICE into Matrix message
// content. CTCP ACTION becomes an emote; other CTCP requests have no Matrix
// meaning and give ok=false.
func MessageFromIRC(command, text string) (*event.MessageEventContent, bool) {
	msgType := event.MsgText
	if command == "NOTICE" {
		msgType = event.MsgNotice
	}
	if strings.HasPrefix(text, "\x01") {
		inner := strings.TrimSuffix(text[1:], "\x01")
		verb, rest, _ := strings.Cut(inner, " ")
		if !strings.EqualFold(verb, "ACTION") {
			return nil, false
		}
		msgType, text = event.MsgEmote, rest
	}
	if strings.TrimSpace(text) == "" {
		return nil, false
	}
	return &event.MessageEventContent{MsgType: msgType, Body: text}, true
}
