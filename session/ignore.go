package session

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/mapping"
)

// Ignoring users: the account's m.ignored_user_list is its IRC SILENCE
// list. What Element ignores is silenced on IRC and the other way round,
// and the gateway drops an ignored user's messages, reactions, deletions,
// typing and invitations for every client of the account, live, in replay
// and in CHATHISTORY (the store keeps events once for all accounts, and
// what was stored before the ignore is still there).

// addIgnoredList puts the account's m.ignored_user_list into a resumed
// session's first sync, which carries only the account data changed
// since its token. Sync loop.
func (s *Session) addIgnoredList(resp *mautrix.RespSync) {
	s.addAccountData(resp, event.AccountDataIgnoredUserList, "ignored users show until it changes")
}

// applyIgnored takes the newest m.ignored_user_list of a sync's account
// data. Owner goroutine.
func (s *Session) applyIgnored(events []*event.Event) {
	if ignored, ok := ignoredUsers(events, s.log); ok {
		s.ignored = ignored
	}
}

// ignoredUsers reads the newest m.ignored_user_list among events; ok is
// false when there is none (or none readable).
func ignoredUsers(events []*event.Event, log *slog.Logger) (ignored map[id.UserID]bool, ok bool) {
	for _, ev := range events {
		if ev.Type.Type != event.AccountDataIgnoredUserList.Type {
			continue
		}
		var content event.IgnoredUserListEventContent
		if err := json.Unmarshal(ev.Content.VeryRaw, &content); err != nil {
			log.Warn("unreadable m.ignored_user_list", "err", err)
			continue
		}
		ignored, ok = map[id.UserID]bool{}, true
		for user := range content.IgnoredUsers {
			ignored[user] = true
		}
	}
	return ignored, ok
}

// isIgnored says whether the account ignores user's events. The account's
// own events are never dropped. Owner goroutine.
func (s *Session) isIgnored(user id.UserID) bool {
	return user != s.user && s.ignored[user]
}

// The SILENCE numerics (ircu's), which gopkg.in/irc.v4 does not export.
const (
	rplSileList      = "271"
	rplEndOfSileList = "272"
	errSileListFull  = "511"
)

// silenceMask is how an ignored user is shown in the SILENCE list: the
// mask a ban of them shows, which SILENCE also takes back.
func silenceMask(user id.UserID) string { return banMask(user) }

// cmdSilence lists the account's ignored users, or adds ("+mask", or a
// mask without a sign) and removes ("-mask") them. A mask is a nick, a
// Matrix ID, nick!*@* or *!localpart@server: Matrix ignores exact users,
// so a mask with wildcards in the user or host is refused, saying so.
func (s *Session) cmdSilence(a *Attachment, out output, m *irc.Message) error {
	if len(m.Params) == 0 || m.Params[0] == "" {
		users := make([]id.UserID, 0, len(s.ignored))
		for user := range s.ignored {
			users = append(users, user)
		}
		sortUsers(users)
		for _, user := range users {
			out.SendNumeric(rplSileList, silenceMask(user))
		}
		out.SendNumeric(rplEndOfSileList, "End of Silence List")
		return nil
	}
	add := map[id.UserID]string{} // user → the mask as typed, for the reply
	remove := map[id.UserID]string{}
	for _, item := range strings.Split(m.Params[0], ",") {
		mask, adding := item, true
		switch {
		case strings.HasPrefix(item, "+"):
			mask = item[1:]
		case strings.HasPrefix(item, "-"):
			mask, adding = item[1:], false
		}
		if mask == "" {
			continue
		}
		user, ok := s.userForMask(a, mask)
		if !ok {
			if u, nick := mapping.MaskUser(mask); u == "" && nick != "" {
				s.reply(a, out, "SILENCE", ircreply.Fail("SILENCE", "UNKNOWN_USER", mask,
					"No one is known as "+nick+": give their Matrix ID (@user:server) or *!localpart@server"))
			} else {
				s.reply(a, out, "SILENCE", ircreply.Fail("SILENCE", "INVALID_MASK", mask,
					"Cannot silence "+mask+": Matrix ignores single users, so give a nick, a Matrix ID (@user:server), nick!*@* or *!localpart@server, without wildcards in the user or host"))
			}
			continue
		}
		if user == s.user {
			s.reply(a, out, "SILENCE", ircreply.Fail("SILENCE", "INVALID_MASK", mask, "You cannot ignore yourself"))
			continue
		}
		if adding {
			delete(remove, user)
			add[user] = mask
		} else {
			delete(add, user)
			if !s.ignored[user] {
				s.reply(a, out, "SILENCE", ircreply.Fail("SILENCE", "NOT_SILENCED", mask, string(user)+" is not on your silence list"))
				continue
			}
			remove[user] = mask
		}
	}
	newCount := len(s.ignored)
	for user := range add {
		if !s.ignored[user] {
			newCount++
		}
	}
	if newCount-len(remove) > irctext.SilenceLimit {
		return ircreply.Numeric(errSileListFull, m.Params[0], "Your silence list is full")
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	s.request(a, out, "SILENCE", func(ctx context.Context) func() {
		ignored, err := s.editIgnoredList(ctx, add, remove)
		return func() {
			if err != nil {
				s.reply(a, out, "SILENCE", ircreply.Fail("SILENCE", "HOMESERVER_REFUSED", "*",
					"Could not change your ignore list: "+matrixErrorText(err)))
				return
			}
			s.ignored = ignored
			// Every client of the account sees the change, as the list
			// is the account's.
			s.broadcast(answering(attached, a, out), func(c *Attachment, o output) {
				prefix := s.prefixOf(c, s.user)
				for _, user := range sortedKeys(add) {
					o.SendMessage(&irc.Message{Prefix: prefix, Command: "SILENCE", Params: []string{"+" + silenceMask(user)}})
				}
				for _, user := range sortedKeys(remove) {
					o.SendMessage(&irc.Message{Prefix: prefix, Command: "SILENCE", Params: []string{"-" + silenceMask(user)}})
				}
			})
		}
	})
	return nil
}

func sortedKeys(m map[id.UserID]string) []id.UserID {
	users := make([]id.UserID, 0, len(m))
	for user := range m {
		users = append(users, user)
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	return users
}

// editIgnoredList changes the account's m.ignored_user_list, read fresh so
// that what other clients changed meanwhile is kept, and returns the list
// as written. Request worker.
func (s *Session) editIgnoredList(ctx context.Context, add, remove map[id.UserID]string) (map[id.UserID]bool, error) {
	var raw map[string]json.RawMessage
	if err := s.cli.GetAccountData(ctx, event.AccountDataIgnoredUserList.Type, &raw); err != nil && !errors.Is(err, mautrix.MNotFound) {
		return nil, err
	}
	if raw == nil {
		raw = map[string]json.RawMessage{}
	}
	// Keep whatever else the content holds (and each entry's own object).
	users := map[id.UserID]json.RawMessage{}
	if list, ok := raw["ignored_users"]; ok {
		if err := json.Unmarshal(list, &users); err != nil {
			return nil, errors.New("the ignore list on the homeserver is unreadable: " + err.Error())
		}
		if users == nil {
			users = map[id.UserID]json.RawMessage{}
		}
	}
	for user := range add {
		if _, ok := users[user]; !ok {
			users[user] = json.RawMessage(`{}`)
		}
	}
	for user := range remove {
		delete(users, user)
	}
	list, err := json.Marshal(users)
	if err != nil {
		return nil, err
	}
	raw["ignored_users"] = list
	if err := s.cli.SetAccountData(ctx, event.AccountDataIgnoredUserList.Type, raw); err != nil {
		return nil, err
	}
	ignored := make(map[id.UserID]bool, len(users))
	for user := range users {
		ignored[user] = true
	}
	return ignored, nil
}
