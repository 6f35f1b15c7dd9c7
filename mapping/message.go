package mapping

import (
	"fmt"
	"strconv"
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

// MessageToIRC renders a room message for IRC, with its formatting as IRC
// codes and pills as the nicks users gives. ok is false for content that
// has nothing to show (an empty body).
func MessageToIRC(c *event.MessageEventContent, users UserResolver) (IRCMessage, bool) {
	// \x01 would let a Matrix user send CTCP requests to IRC clients: it
	// goes before the text is judged empty, so nothing shows as "* ".
	clean := func(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\x01", "")) }
	var body string
	switch c.MsgType {
	case event.MsgImage, event.MsgFile, event.MsgAudio, event.MsgVideo:
		body = clean(c.Body) // the file name (or caption)
	default:
		body = clean(MatrixToIRC(c, users))
	}
	if c.NewContent != nil {
		// An edit: show what the text became, marked as a correction.
		body = clean(MatrixToIRC(c.NewContent, users))
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
	case event.MsgAudio:
		if c.MSC3245Voice != nil {
			out.Text = "[voice message" + durationOf(c) + "] " + body
		} else {
			out.Text = "[audio" + durationOf(c) + "] " + body
		}
	case event.MsgImage, event.MsgFile, event.MsgVideo:
		out.Text = "[" + strings.TrimPrefix(string(c.MsgType), "m.") + "] " + body
	case event.MsgLocation:
		if link := GeoLink(c.GeoURI); link != "" && c.NewContent == nil {
			out.Text = "[location] " + body + " " + link
		}
	}
	return out, body != ""
}

// durationOf is ", m:ss" for an audio message that says how long it is
// (info.duration, or MSC1767's audio.duration, in milliseconds).
func durationOf(c *event.MessageEventContent) string {
	ms := 0
	if c.Info != nil {
		ms = c.Info.Duration
	}
	if ms <= 0 && c.MSC1767Audio != nil {
		ms = c.MSC1767Audio.Duration
	}
	if ms <= 0 {
		return ""
	}
	secs := (ms + 500) / 1000
	return fmt.Sprintf(", %d:%02d", secs/60, secs%60)
}

// GeoLink turns a geo: URI (RFC 5870, as m.location carries it) into an
// OpenStreetMap link to the point; "" when it is not one.
func GeoLink(uri string) string {
	rest, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(uri)), "geo:")
	if !ok {
		return ""
	}
	coords, _, _ := strings.Cut(rest, ";")
	parts := strings.Split(coords, ",")
	if len(parts) < 2 {
		return ""
	}
	lat, err1 := strconv.ParseFloat(parts[0], 64)
	lon, err2 := strconv.ParseFloat(parts[1], 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return ""
	}
	la, lo := strconv.FormatFloat(lat, 'f', -1, 64), strconv.FormatFloat(lon, 'f', -1, 64)
	return "https://www.openstreetmap.org/?mlat=" + la + "&mlon=" + lo + "#map=16/" + la + "/" + lo
}

// MessageFromIRC turns the text of a PRIVMSG or NOTICE into Matrix message
// content: IRC formatting becomes HTML, nicks the resolver knows become
// pills and m.mentions. CTCP ACTION becomes an emote; other CTCP requests
// have no Matrix meaning and give ok=false.
func MessageFromIRC(command, text string, nicks NickResolver) (*event.MessageEventContent, bool) {
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
	// A stray \x01 inside the text means nothing to Matrix clients.
	body, formatted, mentions := IRCToMatrix(strings.ReplaceAll(text, "\x01", ""), nicks)
	if strings.TrimSpace(body) == "" {
		return nil, false
	}
	content := &event.MessageEventContent{MsgType: msgType, Body: body, Mentions: &event.Mentions{UserIDs: mentions}}
	if formatted != "" {
		content.Format, content.FormattedBody = event.FormatHTML, formatted
	}
	return content, true
}
