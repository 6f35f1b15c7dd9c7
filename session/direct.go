package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/mapping"
)

// Direct messages: a room in the account's m.direct with one other member
// is an IRC query with that member, not a channel. PRIVMSG to a nick sends
// into it, creating it (and recording it in m.direct) the first time.

// dmFuture is a direct room being created. Only the request that creates
// it writes roomID; later requests for the same user are of no room too,
// so they run after it (jobQueue), and the owner reads it only in a
// job's result.
type dmFuture struct {
	roomID    id.RoomID
	encrypted bool // the homeserver made it encrypted of its own accord
	err       error
}

// addDirect puts the account's m.direct into a resumed session's first
// sync, which carries only the account data changed since its token:
// without it, every DM would come back as a channel after a restart.
// Sync loop.
func (s *Session) addDirect(resp *mautrix.RespSync) {
	for _, ev := range resp.AccountData.Events {
		if ev.Type.Type == event.AccountDataDirectChats.Type {
			return
		}
	}
	var raw json.RawMessage
	if err := s.cli.GetAccountData(s.ctx, event.AccountDataDirectChats.Type, &raw); err != nil {
		if !errors.Is(err, mautrix.MNotFound) {
			s.log.Warn("could not read m.direct; DMs show as channels until it changes", "err", err)
		}
		return
	}
	resp.AccountData.Events = append(resp.AccountData.Events, &event.Event{
		Type: event.AccountDataDirectChats, Content: event.Content{VeryRaw: raw},
	})
}

// applyDirect takes the account's m.direct: which rooms are whose DMs.
func (s *Session) applyDirect(events []*event.Event) {
	if direct, ok := directRooms(events, s.log); ok {
		s.direct = direct
	}
}

// directRooms reads the newest m.direct in a sync's account data: each DM
// room and its peer. ok is false when there is none (or none readable).
func directRooms(events []*event.Event, log *slog.Logger) (direct map[id.RoomID]id.UserID, ok bool) {
	for _, ev := range events {
		if ev.Type.Type != event.AccountDataDirectChats.Type {
			continue
		}
		var content event.DirectChatsEventContent
		if err := json.Unmarshal(ev.Content.VeryRaw, &content); err != nil {
			log.Warn("unreadable m.direct", "err", err)
			continue
		}
		direct, ok = map[id.RoomID]id.UserID{}, true
		for user, rooms := range content {
			for _, roomID := range rooms {
				direct[roomID] = user
			}
		}
	}
	return direct, ok
}

// directPeer says whether a newly joined room is a query, and with whom: it
// must be in m.direct and have no member but the account and that peer.
func (s *Session) directPeer(r *room) id.UserID {
	peer := s.direct[r.id]
	if peer == "" {
		return ""
	}
	for user, m := range r.members {
		if user != s.user && user != peer && (m.membership == event.MembershipJoin || m.membership == event.MembershipInvite) {
			return "" // a group DM is a channel
		}
	}
	return peer
}

// dmRoomWith is the joined query room with user, if there is one.
func (s *Session) dmRoomWith(user id.UserID) *room {
	for _, r := range s.rooms {
		if r.dm == user {
			return r
		}
	}
	return nil
}

// sendDirect sends a message to user in their query room, creating the
// room first when there is none. Creation and sends go through the
// request worker in order, so the first message is never overtaken.
func (s *Session) sendDirect(a *Attachment, out output, nick string, user id.UserID, content *event.MessageEventContent, command string) {
	txnID := s.newTxnID(a, out)
	if r := s.dmRoomWith(user); r != nil {
		s.sendContent(a, out, command, r.id, nick, content, txnID)
		return
	}
	future := s.dmFutures[user]
	if future == nil {
		future = &dmFuture{}
		s.dmFutures[user] = future
		s.joinsInFlight++ // the new room waits in deferred until we know it is a DM
		ok := s.request(a, out, command, func(ctx context.Context) func() {
			future.roomID, future.encrypted, future.err = s.createDirect(ctx, user)
			return func() {
				delete(s.dmFutures, user)
				if future.roomID != "" {
					s.direct[future.roomID] = user
				}
				if future.err == nil && !future.encrypted {
					// The first thing the user sees of the new query.
					s.broadcast(answering(everyone, a, out), func(c *Attachment, out output) {
						s.standardReply(c, out, "NOTE", command, "UNENCRYPTED_DM", nick, fmt.Sprintf(
							"Your direct messages with %s (%s) are not end-to-end encrypted: mxircd cannot encrypt yet, so the homeserver can read them", nick, user))
					})
				}
				s.joinDone(future.roomID, "", a, out)
			}
		})
		if !ok {
			delete(s.dmFutures, user)
			s.joinsInFlight--
			s.dropTxn(txnID)
			return
		}
	}
	s.request(a, out, command, func(ctx context.Context) func() {
		err := future.err
		if err == nil {
			err = s.sendEvent(ctx, future.roomID, event.EventMessage, content, txnID)
		}
		return func() {
			if err != nil {
				s.dropTxn(txnID)
				if !s.tellEncrypted(a, out, command, nick, err) {
					s.reply(a, out, command, ircreply.Numeric(irc.ERR_CANNOTSENDTOCHAN, nick, "Cannot send a direct message: "+matrixErrorText(err)))
				}
			}
		}
	})
}

// createDirect makes a direct room with user and records it in m.direct,
// as Matrix clients do. A homeserver may encrypt new private rooms by
// default, and its sync may come only after the first message is sent, so
// the new room's encryption is read at once; when it cannot be read, err
// says so and nothing is sent until sync has shown the room. Request
// worker only.
func (s *Session) createDirect(ctx context.Context, user id.UserID) (roomID id.RoomID, encrypted bool, err error) {
	req := &mautrix.ReqCreateRoom{
		Preset:   "trusted_private_chat",
		IsDirect: true,
		Invite:   []id.UserID{user},
	}
	if s.mgr.cfg.EncryptNewDMs && s.olm.Load() != nil {
		// As Element does: a new DM is encrypted from its first event.
		req.InitialState = []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}}
	}
	resp, err := s.cli.CreateRoom(ctx, req)
	if err != nil {
		return "", false, err
	}
	if err := s.addToDirect(ctx, user, resp.RoomID); err != nil {
		// The room works; only other clients won't list it as a DM.
		s.log.Warn("could not record the DM in m.direct", "room", resp.RoomID, "err", err)
	}
	var enc event.EncryptionEventContent
	switch err := s.cli.StateEvent(ctx, resp.RoomID, event.StateEncryption, "", &enc); {
	case err == nil:
		s.mgr.encrypted.mark(resp.RoomID, &enc)
		return resp.RoomID, true, nil
	case errors.Is(err, mautrix.MNotFound):
		return resp.RoomID, false, nil
	default:
		return resp.RoomID, false, fmt.Errorf("cannot tell whether the new room is encrypted: %w", err)
	}
}

// addToDirect adds a room to m.direct, read fresh so that what other
// clients wrote is kept. Request worker only.
func (s *Session) addToDirect(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	direct := event.DirectChatsEventContent{}
	if err := s.cli.GetAccountData(ctx, event.AccountDataDirectChats.Type, &direct); err != nil && !errors.Is(err, mautrix.MNotFound) {
		return err
	}
	for _, r := range direct[user] {
		if r == roomID {
			return nil
		}
	}
	direct[user] = append(direct[user], roomID)
	return s.cli.SetAccountData(ctx, event.AccountDataDirectChats.Type, direct)
}

// acceptDirectInvite joins a room someone invited the account to as a DM:
// on IRC anyone can send you a private message, so a DM needs no /join.
func (s *Session) acceptDirectInvite(in *invite) {
	s.direct[in.roomID] = in.inviter
	s.joinsInFlight++
	ok := s.enqueue(func(ctx context.Context) func() {
		_, err := s.cli.JoinRoom(ctx, in.roomID.String(), &mautrix.ReqJoinRoom{Via: []string{in.inviter.Homeserver()}})
		if err == nil {
			err = s.addToDirect(ctx, in.inviter, in.roomID)
		}
		return func() {
			if err != nil {
				s.log.Warn("could not accept a DM invite", "room", in.roomID, "err", err)
				s.noticeAll(fmt.Sprintf("Could not accept a direct message from %s: %s", in.inviter, matrixErrorText(err)))
			}
			s.joinDone(in.roomID, "", nil, nil)
		}
	})
	if !ok {
		s.joinsInFlight--
	}
}

// dmTarget is the IRC target of a line in a query as client a sees it: the
// client's own nick for what the peer says, the peer's nick for what the
// account says from elsewhere.
func (s *Session) dmTarget(a *Attachment, r *room, sender id.UserID) string {
	if sender == s.user {
		return s.nickOf(a, r.dm)
	}
	return a.client.Nick()
}

// userForTarget finds who a PRIVMSG to a nick means: a known nick, a
// Matrix ID, or localpart:server.
func (s *Session) userForTarget(a *Attachment, target string) (id.UserID, bool) {
	if user, ok := s.userByNick(a, target); ok {
		return user, true
	}
	if user, _ := mapping.MaskUser(target); user != "" {
		return user, true
	}
	if user, ok := mapping.ParseAccount(target, ""); ok && target[0] != '#' && target[0] != '!' {
		return user, true
	}
	return "", false
}
