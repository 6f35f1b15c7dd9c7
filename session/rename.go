package session

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
)

// RENAME (draft/channel-rename) gives a room a new alias on the account's
// server: the alias is made, becomes the room's canonical alias, and the
// old alias on this server is removed, so the old name is free for a new
// channel as on IRC. Every client sees the rename when sync brings the
// canonical alias (renameIfNeeded): RENAME with the capability, a PART and
// a JOIN without. The reason given is shown to this account's clients;
// Matrix has no place for it.

func (s *Session) cmdRename(a *Attachment, out output, m *irc.Message) error {
	oldName, newName, reason := m.Params[0], m.Params[1], m.Param(2)
	r := s.roomByChannel(oldName)
	if r == nil || r.dm != "" {
		return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, oldName, "You're not on that channel")
	}
	fail := func(code, text string) error {
		return ircreply.Fail("RENAME", code, oldName+" "+newName, text)
	}
	own := s.user.Homeserver()
	target, ok := mapping.ParseChannel(newName, own)
	if !ok || target.Alias == "" || target.Server != own {
		return fail("CANNOT_RENAME", "A channel can be renamed only to an alias on "+own+", like #name")
	}
	if other := s.roomByChannel(newName); other != nil {
		if other == r {
			return fail("CANNOT_RENAME", oldName+" is already called that")
		}
		return fail("CHANNEL_NAME_IN_USE", newName+" is another channel")
	}
	roomID, oldAlias, channel := r.id, r.alias, r.channel
	// Set before the request: the new alias can come through sync first.
	s.renameReasons[roomID] = reason
	s.roomRequest(a, out, "RENAME", roomID, func(ctx context.Context) func() {
		err := s.renameRoom(ctx, roomID, oldAlias, target.Alias)
		return func() {
			if err == nil {
				return // the rename comes through sync
			}
			delete(s.renameReasons, roomID)
			var httpErr mautrix.HTTPError
			switch {
			case errors.As(err, &httpErr) && httpErr.Response != nil && httpErr.Response.StatusCode == http.StatusConflict:
				s.reply(a, out, "RENAME", fail("CHANNEL_NAME_IN_USE", newName+" is already the name of another room"))
			case errors.Is(err, mautrix.MForbidden):
				s.logRefusal("RENAME", err)
				s.reply(a, out, "RENAME", ircreply.Numeric(irc.ERR_CHANOPRIVSNEEDED, channel, forbiddenText("rename the channel", err)))
			default:
				s.reply(a, out, "RENAME", fail("CANNOT_RENAME", "Cannot rename "+channel+": "+matrixErrorText(err)))
			}
		}
	})
	return nil
}

// renameRoom makes alias, makes it the room's canonical alias (keeping
// the alternative aliases), and removes the old alias when it is on the
// account's server. Request worker only.
func (s *Session) renameRoom(ctx context.Context, roomID id.RoomID, oldAlias, alias id.RoomAlias) error {
	if _, err := s.cli.CreateAlias(ctx, alias, roomID); err != nil {
		return err
	}
	var content event.CanonicalAliasEventContent
	if err := s.cli.StateEvent(ctx, roomID, event.StateCanonicalAlias, "", &content); err != nil && !errors.Is(err, mautrix.MNotFound) {
		s.undoAlias(ctx, alias)
		return err
	}
	content.Alias = alias
	var alt []id.RoomAlias
	for _, a := range content.AltAliases {
		if a != oldAlias && a != alias {
			alt = append(alt, a)
		}
	}
	content.AltAliases = alt
	if _, err := s.cli.SendStateEvent(ctx, roomID, event.StateCanonicalAlias, "", &content); err != nil {
		s.undoAlias(ctx, alias)
		return err
	}
	if _, server, ok := strings.Cut(string(oldAlias), ":"); ok && server == s.user.Homeserver() {
		if _, err := s.cli.DeleteAlias(ctx, oldAlias); err != nil {
			s.log.Warn("renamed a room but could not remove its old alias", "room", roomID, "alias", oldAlias, "err", err)
		}
	}
	return nil
}

// undoAlias removes an alias a failed rename made. Request worker only.
func (s *Session) undoAlias(ctx context.Context, alias id.RoomAlias) {
	if _, err := s.cli.DeleteAlias(ctx, alias); err != nil {
		s.log.Warn("could not remove the alias of a failed rename", "alias", alias, "err", err)
	}
}
