package session

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
)

// AWAY is Matrix presence: away with a message is "unavailable" with that
// status message, back is "online". Others' presence shows in WHOIS (301)
// and WHO (G for gone).

type presence struct {
	state     event.Presence
	statusMsg string
}

// away says whether a user's presence reads as away on IRC, and why.
func (p presence) away() (string, bool) {
	switch p.state {
	case event.PresenceUnavailable:
		if p.statusMsg != "" {
			return p.statusMsg, true
		}
		return "Away", true
	case event.PresenceOffline:
		if p.statusMsg != "" {
			return "Offline: " + p.statusMsg, true
		}
		return "Offline", true
	}
	return "", false
}

// setAway is away for a user who set themselves away (unavailable), not
// one merely offline: what a message to them answers with RPL_AWAY, which
// for every offline Matrix user would be noise on each line.
func (p presence) setAway() (string, bool) {
	if p.state != event.PresenceUnavailable {
		return "", false
	}
	return p.away()
}

// online says whether the presence counts as online for MONITOR: online
// or away, not offline or unknown.
func (p presence) online() bool {
	return p.state != "" && p.state != event.PresenceOffline
}

// applyPresence records m.presence events from a sync. For an account
// with a session on this gateway the event only says "look again": the
// gateway knows its presence first-hand (here.go).
func (s *Session) applyPresence(events []*event.Event) {
	for _, ev := range events {
		if ev.Type.Type != event.EphemeralEventPresence.Type {
			continue
		}
		var c event.PresenceEventContent
		if err := json.Unmarshal(ev.Content.VeryRaw, &c); err != nil {
			continue
		}
		p := presence{state: c.Presence, statusMsg: c.StatusMessage}
		if ev.Sender != s.user {
			// When the homeserver last saw them active; currently_active
			// says only "within the last minute or so", which a session
			// that just ended here also is.
			activeAt := time.Time{}
			if c.LastActiveAgo > 0 {
				activeAt = time.Now().Add(-time.Duration(c.LastActiveAgo) * time.Millisecond)
			}
			if here, ok := s.mgr.here.fromHomeserver(ev.Sender, activeAt); ok {
				p = here
			}
		}
		s.notePresence(ev.Sender, p)
	}
}

// showAway tells away-notify clients that a user they know of went away
// or came back; with extended-monitor, also one they only MONITOR.
func (s *Session) showAway(user id.UserID, message string, away bool) {
	_, seen := s.nicks[user]
	s.broadcast(attached, func(a *Attachment, out output) {
		if !a.client.HasCap("away-notify") || !(seen || (a.client.HasCap("extended-monitor") && a.monitors(user))) {
			return
		}
		m := &irc.Message{Prefix: s.prefixOf(a, user), Command: "AWAY"}
		if away {
			m.Params = []string{message}
		}
		out.SendMessage(m)
	})
}

// cmdSetname changes the account's display name; the homeserver's member
// events bring the SETNAME back to every client that takes it.
func (s *Session) cmdSetname(a *Attachment, out output, m *irc.Message) error {
	name := strings.TrimSpace(m.Params[0])
	if name == "" {
		return ircreply.Fail("SETNAME", "INVALID_REALNAME", "", "A display name cannot be empty")
	}
	s.request(a, out, "SETNAME", func(ctx context.Context) func() {
		err := s.cli.SetDisplayName(ctx, name)
		return func() {
			if err != nil {
				s.fail(a, out, "SETNAME", "CANNOT_CHANGE_REALNAME", "", "The homeserver did not take the name: "+matrixErrorText(err))
				return
			}
			if s.ownName != name {
				s.ownName = name
				s.publishPresence(false)
			}
			if s.toldName == name {
				return // a member event came first, and told it
			}
			s.toldName = name
			// Told now, to every client of the account that takes it:
			// an account in no room gets no member event to tell it.
			// The member events that follow are not told again
			// (showMembership).
			s.broadcast(attached, func(a *Attachment, out output) {
				if a.client.HasCap("setname") {
					out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, s.user), Command: "SETNAME", Params: []string{name}})
				}
			})
		}
	})
	return nil
}

func (s *Session) cmdAway(a *Attachment, out output, m *irc.Message) error {
	message := m.Param(0)
	req := mautrix.ReqPresence{Presence: event.PresenceOnline}
	if message != "" {
		req = mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: message}
	}
	s.setPresence.Store(&req.Presence)
	s.request(a, out, "AWAY", func(ctx context.Context) func() {
		err := s.putPresence(ctx, req.Presence, req.StatusMsg)
		return func() {
			switch {
			case err != nil:
				s.fail(a, out, "AWAY", "CANNOT_CHANGE", "", "The homeserver did not take your presence: "+matrixErrorText(err))
			case message != "":
				s.presence[s.user] = presence{state: req.Presence, statusMsg: message}
				s.publishPresence(true)
				out.SendNumeric(irc.RPL_NOWAWAY, "You have been marked as being away")
			default:
				s.presence[s.user] = presence{state: req.Presence}
				s.publishPresence(true)
				out.SendNumeric(irc.RPL_UNAWAY, "You are no longer marked as being away")
			}
		}
	})
	return nil
}

// putPresence sets the account's presence. status_msg is always sent, so
// coming back clears the away message (mautrix's request would omit an
// empty one). Request worker only.
func (s *Session) putPresence(ctx context.Context, p event.Presence, msg string) error {
	_, err := s.cli.MakeRequest(ctx, http.MethodPut, s.cli.BuildClientURL("v3", "presence", s.user, "status"),
		map[string]any{"presence": p, "status_msg": msg}, nil)
	return err
}

// presenceToSet is the presence each /sync asserts. Any goroutine.
func (s *Session) presenceToSet() event.Presence {
	if s.detachedAway.Load() {
		return event.PresenceUnavailable
	}
	if p := s.setPresence.Load(); p != nil {
		return *p
	}
	return event.PresenceOnline
}

// awayOf is a user's away message, if they are away.
func (s *Session) awayOf(user id.UserID) (string, bool) {
	return s.presenceFor(user).away()
}
