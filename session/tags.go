package session

import (
	"context"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
)

// IRCv3 client tags with a Matrix meaning: +draft/reply (a reply),
// +draft/react (a reaction, on TAGMSG), +typing (typing notifications), and
// REDACT (draft/message-redaction). Clients that negotiated the tags get
// them; the others get the readable lines in relations.go.

const (
	tagReply  = "+draft/reply"
	tagReact  = "+draft/react"
	tagTyping = "+typing"
)

// replyTarget reads a +draft/reply tag: a msgid, which is an event ID here.
func replyTarget(m *irc.Message) id.EventID {
	if v := m.Tags[tagReply]; strings.HasPrefix(v, "$") && !strings.ContainsAny(v, " \x00") {
		return id.EventID(v)
	}
	return ""
}

// targetRoom finds the room a PRIVMSG-like target names: a channel, or the
// query with a nick; the error is the reply when there is none.
func (s *Session) targetRoom(a *Attachment, command, target string) (*room, error) {
	if r := s.roomByChannel(target); r != nil {
		return r, nil
	}
	if user, ok := s.userForTarget(a, target); ok {
		if r := s.dmRoomWith(user); r != nil {
			return r, nil
		}
	}
	return nil, ircreply.Fail(command, "INVALID_TARGET", target, "No such channel or query")
}

// fail reports an error that has no numeric: FAIL <command> <code>
// [context] :text, or a NOTICE (ircreply's rule). context holds zero or
// more space-separated parameters.
func (s *Session) fail(a *Attachment, out output, command, code, context, text string) {
	s.reply(a, out, command, ircreply.Fail(command, code, context, text))
}

// standardReply sends FAIL, WARN or NOTE, or a NOTICE, by ircreply's
// rule; context holds zero or more space-separated parameters.
func (s *Session) standardReply(a *Attachment, out output, kind, command, code, context, text string) {
	ircreply.StandardReply(out, a.client, kind, command, code, strings.Fields(context), text)
}

// cmdTagmsg carries a reaction or a typing notification.
func (s *Session) cmdTagmsg(a *Attachment, out output, m *irc.Message) error {
	if user, ok := s.userForTarget(a, m.Params[0]); ok && user == s.user && !strings.ContainsRune("#!", rune(m.Params[0][0])) {
		// To oneself, as a PRIVMSG to oneself: no room, back to the
		// account's clients with its client-only tags.
		tags := irc.Tags{}
		for k, v := range m.Tags {
			if strings.HasPrefix(k, "+") {
				tags[k] = v
			}
		}
		s.messageToSelf(a, out, "TAGMSG", "", tags)
		return nil
	}
	r, err := s.targetRoom(a, "TAGMSG", m.Params[0])
	if err != nil {
		return err
	}
	roomID := r.id
	if key := m.Tags[tagReact]; key != "" {
		target := replyTarget(m)
		if target == "" {
			return ircreply.Fail("TAGMSG", "INVALID_PARAMS", tagReact, "A reaction needs +draft/reply naming the message")
		}
		txnID := s.newTxnID(a, out)
		reaction := &event.ReactionEventContent{RelatesTo: event.RelatesTo{Type: event.RelAnnotation, EventID: target, Key: key}}
		p := s.prepareSend(roomID, event.EventReaction, reaction, txnID)
		ok := s.roomRequest(a, out, "TAGMSG", roomID, func(ctx context.Context) func() {
			err := s.sendAccepted(ctx, p)
			return func() {
				if err != nil {
					s.dropTxn(txnID)
					if !s.tellEncrypted(a, out, "TAGMSG", m.Params[0], err) {
						s.fail(a, out, "TAGMSG", "REACT_FAILED", m.Params[0], "Cannot react: "+matrixErrorText(err))
					}
				}
			}
		})
		if ok {
			s.accept(a, p)
		} else {
			s.dropTxn(txnID)
		}
	}
	if state, ok := m.Tags[tagTyping]; ok {
		typing := state == "active"
		s.roomRequest(a, out, "TAGMSG", roomID, func(ctx context.Context) func() {
			if _, err := s.cli.UserTyping(ctx, roomID, typing, 30*time.Second); err != nil {
				s.log.Debug("typing notification failed", "err", err)
			}
			return nil
		})
	}
	return nil
}

// cmdRedact deletes a message: REDACT <target> <msgid> [:reason].
func (s *Session) cmdRedact(a *Attachment, out output, m *irc.Message) error {
	r, err := s.targetRoom(a, "REDACT", m.Params[0])
	if err != nil {
		return err
	}
	msgid := m.Params[1]
	if !strings.HasPrefix(msgid, "$") {
		return ircreply.Fail("REDACT", "UNKNOWN_MSGID", m.Params[0]+" "+msgid, "That is not a message ID of this network")
	}
	roomID, target, reason := r.id, m.Params[0], m.Param(2)
	txnID := s.newTxnID(a, out)
	// Dendrite's sync does not give a redaction its transaction ID back,
	// so neither a labeled response nor a PING after REDACT can wait for
	// the echo, only for the request.
	s.stopWaitingForEcho(txnID)
	s.roomRequest(a, out, "REDACT", roomID, func(ctx context.Context) func() {
		_, err := s.cli.RedactEvent(ctx, roomID, id.EventID(msgid), mautrix.ReqRedact{Reason: reason, TxnID: txnID})
		return func() {
			if err != nil {
				s.dropTxn(txnID)
			}
			switch {
			case err == nil:
				// The REDACT (or notice) comes back through sync.
			case isForbidden(err):
				s.fail(a, out, "REDACT", "REDACT_FORBIDDEN", target+" "+msgid, "You may not delete that message: "+matrixErrorText(err))
			default:
				s.fail(a, out, "REDACT", "UNKNOWN_MSGID", target+" "+msgid, "Cannot delete that message: "+matrixErrorText(err))
			}
		}
	})
	return nil
}

// showTyping turns a room's m.typing into +typing TAGMSGs for clients that
// take client tags: active for who started, done for who stopped.
func (s *Session) showTyping(r *room, ev *event.Event) {
	if !parseContent(ev) {
		return
	}
	now := map[id.UserID]bool{}
	for _, user := range ev.Content.AsTyping().UserIDs {
		if user != s.user && !s.isIgnored(user) {
			now[user] = true
		}
	}
	send := func(user id.UserID, state string) {
		s.broadcast(attached, func(a *Attachment, out output) {
			if a.client.HasCap("message-tags") {
				target := r.channel
				if r.dm != "" {
					target = a.client.Nick()
				}
				out.SendMessage(&irc.Message{Tags: irc.Tags{tagTyping: state}, Prefix: s.prefixOf(a, user),
					Command: "TAGMSG", Params: []string{target}})
			}
		})
	}
	for user := range now {
		if !r.typing[user] {
			send(user, "active")
		}
	}
	for user := range r.typing {
		if !now[user] {
			send(user, "done")
		}
	}
	r.typing = now
}
