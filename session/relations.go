package session

import (
	"strconv"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
)

// Replies, reactions, deletions and edits point at earlier messages. Each
// room keeps its last few messages so a line can say which one is meant,
// briefly: only new information is shown, never the whole event.

// recentLimit is how many messages per room the session remembers for
// that context.
const recentLimit = 64

type recentMessage struct {
	id     id.EventID
	sender id.UserID
	text   string     // plain, one line
	thread id.EventID // the root of the thread it is in, if any (threads.go)
}

func (r *room) remember(ev *event.Event, text string) { r.recent.add(ev, text) }

func (r *room) recall(eventID id.EventID) *recentMessage { return r.recent.find(eventID) }

// rememberMessage keeps a message (or an edit's new text) for context.
func (s *Session) rememberMessage(r *room, ev *event.Event) {
	c := ev.Content.AsMessage()
	if target := c.RelatesTo.GetReplaceID(); target != "" && c.NewContent != nil {
		r.recent.edit(target, c.NewContent.Body)
		return
	}
	body := c.Body
	if c.RelatesTo.GetReplyTo() != "" {
		if _, _, rest, ok := mapping.ReplyFallback(body); ok {
			body = rest
		}
	}
	r.remember(ev, body)
}

// replyContext is the short quote shown before a reply:
// (re bob: "what they said") — from the remembered message, or from the
// fallback quote older clients put in the body.
func (s *Session) replyContext(a *Attachment, r *room, c *event.MessageEventContent) string {
	target := c.RelatesTo.GetReplyTo()
	if target == "" || c.RelatesTo.GetReplaceID() != "" {
		return ""
	}
	if m := r.recall(target); m != nil {
		return "(re " + s.nickOf(a, m.sender) + ": \"" + m.text + "\") "
	}
	if sender, quoted, _, ok := mapping.ReplyFallback(c.Body); ok && sender != "" {
		return "(re " + s.nickOf(a, sender) + ": \"" + mapping.Snippet(quoted) + "\") "
	}
	return "(reply) "
}

// quoteOf describes a remembered message for a reaction or a deletion.
func (s *Session) quoteOf(a *Attachment, r *room, eventID id.EventID, possessive bool) string {
	m := r.recall(eventID)
	if m == nil {
		return "a message"
	}
	who := s.nickOf(a, m.sender)
	if possessive {
		return who + "'s message \"" + m.text + "\""
	}
	return who + ": \"" + m.text + "\""
}

// showOther shows the room events that are not plain messages to the
// clients to picks: reactions, deletions, stickers, and one clear line for
// what IRC cannot show.
func (s *Session) showOther(r *room, ev *event.Event, to audience) {
	if s.isIgnored(ev.Sender) {
		return
	}
	// Reactions and deletions a client sent come back like its messages.
	switch ev.Type {
	case event.EventReaction:
		if !parseContent(ev) {
			return
		}
		rel := ev.Content.AsReaction().RelatesTo
		key := strings.ReplaceAll(rel.Key, "\x01", "")
		if key == "" {
			return
		}
		// The client that sent the reaction as a TAGMSG shows reactions
		// itself: its echo is the TAGMSG alone.
		var sender *Attachment
		if txn := ev.Unsigned.TransactionID; ev.Sender == s.user && txn != "" {
			sender = s.sentTxns[txn]
		}
		s.broadcastEcho(r, ev, to, func(a *Attachment, out output) {
			if a.client.HasCap("message-tags") {
				tags := s.eventTags(ev)
				tags[tagReact], tags[tagReply] = key, string(rel.EventID)
				out.SendMessage(&irc.Message{Tags: tags, Prefix: s.prefixOf(a, ev.Sender), Command: "TAGMSG",
					Params: []string{s.lineTarget(a, r, ev.Sender)}})
				if !a.fallbackText() || a == sender {
					return
				}
			}
			s.sendNote(a, out, r, ev, "reacted "+key+" to "+s.quoteOf(a, r, rel.EventID, false))
		})
	case event.EventRedaction:
		parseContent(ev)
		target := ev.Redacts
		if target == "" {
			target = ev.Content.AsRedaction().Redacts
		}
		reason := ev.Content.AsRedaction().Reason
		s.broadcastEcho(r, ev, to, func(a *Attachment, out output) {
			if a.client.HasCap("draft/message-redaction") {
				params := []string{s.lineTarget(a, r, ev.Sender), string(target)}
				if reason != "" {
					params = append(params, reason)
				}
				out.SendMessage(&irc.Message{Tags: s.eventTags(ev), Prefix: s.prefixOf(a, ev.Sender), Command: "REDACT", Params: params})
				return
			}
			text := "deleted " + s.quoteOf(a, r, target, true)
			if m := r.recall(target); m != nil && m.sender == ev.Sender {
				text = "deleted their message \"" + m.text + "\""
			}
			if reason != "" {
				text += " (" + reason + ")"
			}
			s.sendNote(a, out, r, ev, text)
		})
	case event.EventSticker:
		if !parseContent(ev) {
			return
		}
		c := ev.Content.AsMessage()
		sticker := *c
		sticker.MsgType = event.MsgImage
		s.broadcastIn(r, ev.ID, to, func(a *Attachment, out output) {
			text := "[sticker] " + strings.TrimSpace(c.Body)
			if link := s.mediaLink(&sticker); link != "" {
				text += " " + link
			}
			s.sendLines(a, out, r, ev, "PRIVMSG", false, text)
		})
	case event.EventEncrypted:
		text := "[sent an encrypted message that this gateway has no key for yet; it is shown when the key arrives]"
		if why := s.waiting.why(ev.Content.AsEncrypted().SessionID); why != "" {
			text = "[sent an encrypted message whose key was withheld from this gateway: " + why + "; it is shown if one of your other devices forwards the key]"
		}
		s.broadcastIn(r, ev.ID, to, func(a *Attachment, out output) {
			s.sendNote(a, out, r, ev, text)
		})
	default:
		if isPollStart(ev.Type.Type) || isPollEnd(ev.Type.Type) {
			s.broadcastIn(r, ev.ID, to, func(a *Attachment, out output) { s.showPoll(a, out, r, ev) })
			return
		}
		if quietEventType(ev.Type.Type) {
			return
		}
		s.broadcastIn(r, ev.ID, to, func(a *Attachment, out output) {
			s.sendNote(a, out, r, ev, "[sent a "+ev.Type.Type+" event, which IRC cannot show]")
		})
	}
}

// quietEventType lists timeline events that carry nothing to show a person
// (call signalling, receipts of other protocols) and would only be noise.
func quietEventType(t string) bool {
	switch {
	case t == event.CallInvite.Type:
		return false
	case strings.HasPrefix(t, "m.call."), strings.HasPrefix(t, "org.matrix.call."),
		strings.HasPrefix(t, "m.key.verification."), strings.HasPrefix(t, "org.matrix.msc3401."),
		strings.HasPrefix(t, "m.poll.response"), strings.HasPrefix(t, "org.matrix.msc3381.poll.response"),
		t == "m.room.message.feedback", strings.HasPrefix(t, "com.beeper."):
		return true
	}
	return false
}

// lineTarget is where a line from sender in r goes for client a: the
// channel, or for a query the client's nick or the peer's.
func (s *Session) lineTarget(a *Attachment, r *room, sender id.UserID) string {
	if r.dm != "" {
		return s.dmTarget(a, r, sender)
	}
	return r.channel
}

// sendNote sends a one-line NOTICE about something a user did in a room.
func (s *Session) sendNote(a *Attachment, out output, r *room, ev *event.Event, text string) {
	s.sendLines(a, out, r, ev, "NOTICE", false, text)
}

// sendLines sends text from the event's sender into the channel (or query)
// as a client sees it, split to fit.
func (s *Session) sendLines(a *Attachment, out output, r *room, ev *event.Event, command string, action bool, text string) {
	s.sendTaggedLines(a, out, r, ev, command, action, text, nil)
}

// sendTaggedLines is sendLines with extra tags on the first line.
func (s *Session) sendTaggedLines(a *Attachment, out output, r *room, ev *event.Event, command string, action bool, text string, extra irc.Tags) {
	prefix := s.prefixOf(a, ev.Sender)
	target := s.lineTarget(a, r, ev.Sender)
	budget := mapping.LineBudget(prefix.String(), target)
	if action {
		budget -= len("\x01ACTION \x01")
	}
	tags := s.eventTags(ev)
	for k, v := range extra {
		tags[k] = v
	}
	if !action && a.client.HasCap("draft/multiline") && a.client.HasCap("batch") && (strings.ContainsAny(text, "\r\n") || len(text) > budget) {
		s.sendMultiline(a, out, prefix, command, target, text, budget, tags)
		return
	}
	for i, chunk := range mapping.SplitText(text, budget) {
		if action {
			chunk = "\x01ACTION " + chunk + "\x01"
		}
		if i == 1 {
			// A msgid names one line; the rest of a split message share its time only.
			tags = irc.Tags{"time": tags["time"]}
		}
		out.SendMessage(&irc.Message{Tags: tags, Prefix: prefix, Command: command, Params: []string{target, chunk}})
	}
}

// sendMultiline sends one message as a draft/multiline batch: a line per
// line of text, long lines cut with draft/multiline-concat, so the client
// shows it as the single message it was. The batch's opening line carries
// the message's msgid and time.
func (s *Session) sendMultiline(a *Attachment, out output, prefix *irc.Prefix, command, target, text string, budget int, tags irc.Tags) {
	s.batchSeq++
	ref := "ml" + strconv.FormatUint(s.batchSeq, 36)
	out.SendMessage(&irc.Message{Tags: tags, Prefix: prefix, Command: "BATCH", Params: []string{"+" + ref, "draft/multiline", target}})
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	for _, line := range strings.Split(strings.Trim(text, "\n"), "\n") {
		for i, piece := range mapping.SplitConcat(line, budget) {
			lineTags := irc.Tags{"batch": ref}
			if i > 0 {
				lineTags["draft/multiline-concat"] = ""
			}
			out.SendMessage(&irc.Message{Tags: lineTags, Prefix: prefix, Command: command, Params: []string{target, piece}})
		}
	}
	out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "BATCH", Params: []string{"-" + ref}})
}
