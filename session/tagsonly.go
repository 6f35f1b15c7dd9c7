package session

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
)

// Replies and reactions reach a client that negotiated message-tags as
// tags (+draft/reply, +draft/react), but many such clients (WeeChat, The
// Lounge) show neither. So by default those clients also get the readable
// text that clients without message-tags get: the NOTICE "reacted 👍 to
// bob: "…"" after the TAGMSG, and the "(re bob: "…") " quote before a
// reply. An account turns that off per client name with the service's
// TAGSONLY, for clients that show the tags themselves.

// tagsOnlySetting names the store setting that holds TAGSONLY for an
// account's client name ("" for logins without one).
func tagsOnlySetting(user id.UserID, client string) string {
	return "tags_only " + string(user) + " " + client
}

// loadTagsOnly reads the TAGSONLY setting of an account's client name.
// Called on the client's reader goroutine before it attaches.
func (m *Manager) loadTagsOnly(ctx context.Context, user id.UserID, client string) bool {
	v, err := m.store.Setting(ctx, tagsOnlySetting(user, client))
	if err != nil {
		m.log.Warn("could not load the TAGSONLY setting; showing the text fallback", "user", user, "client", client, "err", err)
		return false
	}
	return v == "on"
}

// fallbackText says whether a renders the readable text of a reply or
// reaction along with its tags. Any goroutine.
func (a *Attachment) fallbackText() bool { return !a.tagsOnly.Load() }

const tagsOnlyHelp = "with it on, a client that negotiated message-tags gets replies and reactions only as tags (+draft/reply, +draft/react); with it off (the default) it also gets the quote before a reply and a NOTICE for a reaction, as clients without message-tags do, since many clients (WeeChat, The Lounge) show neither tag. Set per client name (the part after @ in your login), this connection's by default"

func (s *Session) serviceTagsOnly(a *Attachment, out output, reply func(string), args string) {
	words, ok := serviceArgs(reply, args)
	if !ok {
		return
	}
	usage := "Usage: " + serviceCommands["TAGSONLY"].usage
	if len(words) > 2 {
		reply(usage)
		return
	}
	client := a.name
	if len(words) == 2 {
		client = words[1]
		if _, c, ok := mapping.SplitClientName("x@" + client); !ok || c != client {
			reply("A client name is the part after @ in your login (laptop of alice@laptop): 1 to 32 letters, digits, '-', '_' or '.'; " + quoteName(client) + " is not one.")
			return
		}
	}
	which := "client " + quoteName(client)
	if client == "" {
		which = "logins without a client name"
	}
	if len(words) == 0 {
		state := "off"
		if a.tagsOnly.Load() {
			state = "on"
		}
		reply("Tags only is " + state + " for " + which + ": " + tagsOnlyHelp + ". " + usage)
		return
	}
	var on bool
	switch strings.ToUpper(words[0]) {
	case "ON":
		on = true
	case "OFF":
	default:
		reply("TAGSONLY takes ON or OFF, not " + quoteName(words[0]) + ". " + usage)
		return
	}
	st, user := s.mgr.store, s.user
	s.sideRequest(a, out, "PRIVMSG", func(ctx context.Context) func() {
		value := "off"
		if on {
			value = "on"
		}
		err := st.PutSetting(ctx, tagsOnlySetting(user, client), value)
		return func() {
			if err != nil {
				reply("Could not save the setting: " + err.Error())
				return
			}
			for c := range s.clients {
				if c.name == client {
					c.tagsOnly.Store(on)
				}
			}
			if a.name == client {
				a.tagsOnly.Store(on)
			}
			reply("Tags only is now " + value + " for " + which + ".")
		}
	})
}

func quoteName(s string) string { return "\"" + s + "\"" }
