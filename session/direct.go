package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/irctext"
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
	s.addAccountData(resp, event.AccountDataDirectChats, "DMs show as channels until it changes")
}

// addAccountData puts the account data of evType into a resumed session's
// first sync when the sync did not bring it (it carries only what changed
// since its token); unread, it logs what that costs. Sync loop.
func (s *Session) addAccountData(resp *mautrix.RespSync, evType event.Type, unread string) {
	for _, ev := range resp.AccountData.Events {
		if ev.Type.Type == evType.Type {
			return
		}
	}
	var raw json.RawMessage
	if err := s.cli.GetAccountData(s.ctx, evType.Type, &raw); err != nil {
		if !errors.Is(err, mautrix.MNotFound) {
			s.log.Warn("could not read "+evType.Type+"; "+unread, "err", err)
		}
		return
	}
	resp.AccountData.Events = append(resp.AccountData.Events, &event.Event{Type: evType, Content: event.Content{VeryRaw: raw}})
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
	if r.counted() {
		// A partial member list may lack a third member who never spoke:
		// the summary counts them (summary.go).
		switch others := r.others(); {
		case others <= 0:
			return peer
		case others >= 2:
			return ""
		case r.heroesApply():
			if r.summary.heroes[0] == peer {
				return peer
			}
			return ""
		}
		// One other member, and no heroes (the room has a name): the peer,
		// if the state knows them as a member.
		if m := r.members[peer]; m != nil && (m.membership == event.MembershipJoin || m.membership == event.MembershipInvite) {
			return peer
		}
		if r.members[peer] != nil {
			return "" // the peer left: the other one is someone else
		}
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

// directMarker is a key of the m.room.create content of a direct room the
// gateway creates, holding the peer: a crash can cut off the creation
// after the homeserver has made the room and before the gateway has
// learnt its ID, and the marker lets the next start find that room
// instead of making a second one (recoverDirect).
const directMarker = "org.mxircd.direct_with"

// sendDirect sends a message to user in their query room, creating the
// room first when there is none. The message is written to the outbox
// when it is accepted, under user until the room exists; the creation and
// the sends go through the request worker in order, so the first message
// is never overtaken. A new room takes a token of the account's
// room-creation limit (newRooms), as JOIN does: beyond it the message is
// refused before it is accepted.
func (s *Session) sendDirect(a *Attachment, out output, nick string, user id.UserID, content *event.MessageEventContent, command string) {
	if r := s.dmRoomWith(user); r != nil {
		s.sendContent(a, out, command, r.id, nick, content, s.newTxnID(a, out))
		return
	}
	if s.dmFutures[user] == nil {
		if in := s.waitingDirectInvite(user); in != nil {
			// A reply to someone who invited the account to a DM
			// accepts it, as JOIN of it would: one conversation, one room.
			delete(s.invites, in.roomID)
			s.acceptDirectInvite(in)
		}
	}
	future := s.dmFutures[user]
	if future == nil && !s.takeRoomToken() {
		s.fail(a, out, command, "LIMIT_EXCEEDED", nick, fmt.Sprintf(
			"Not sent: you have no direct messages with %s yet, and starting one creates a room; you have created too many rooms lately, try again in a minute", nick))
		return
	}
	txnID := s.newTxnID(a, out)
	p := s.prepareDirect(user, content, txnID)
	if future == nil {
		if future = s.startDirect(a, out, command, nick, user, p, nil); future == nil {
			p.abandon()
			s.dropTxn(txnID)
			return
		}
	}
	ok := s.request(a, out, command, func(ctx context.Context) func() {
		err := s.sendDirectAccepted(ctx, future, p)
		return func() {
			if err != nil {
				s.dropTxn(txnID)
				if !s.tellEncrypted(a, out, command, nick, err) {
					s.reply(a, out, command, ircreply.Numeric(irc.ERR_CANNOTSENDTOCHAN, nick, "Cannot send a direct message: "+matrixErrorText(err)))
				}
			}
		}
	})
	if !ok {
		// The creation queued before it waits for this row: let it go.
		p.abandon()
		s.dropTxn(txnID)
		return
	}
	s.accept(a, p)
}

// startDirect queues the creation of a direct room with user, after the
// outbox row of first (the message that asked for it; nil when it is
// saved already) is saved, and returns the room to be; nil when the
// request queue is full. candidates are rooms that may be one the last
// run created for user before it learnt of it (recoverDirect). a and out
// are the client that asked, nil after a restart. Owner goroutine.
func (s *Session) startDirect(a *Attachment, out output, command, nick string, user id.UserID, first *pendingSend, search *directSearch) *dmFuture {
	future := &dmFuture{}
	s.dmFutures[user] = future
	s.joinsInFlight++ // the new room waits in deferred until we know it is a DM
	j := func(ctx context.Context) func() {
		if first != nil {
			select {
			case <-first.saved:
			case <-ctx.Done():
				future.err = ctx.Err()
			}
			if future.err == nil && first.err != nil {
				future.err = errNotSaved{first.err}
			}
		}
		if future.err == nil {
			future.roomID, future.encrypted, future.err = s.recoverDirect(ctx, user, search)
		}
		if future.roomID == "" && future.err == nil {
			future.roomID, future.encrypted, future.err = s.createDirect(ctx, user)
		}
		return func() {
			delete(s.dmFutures, user)
			if future.roomID != "" {
				s.direct[future.roomID] = user
			}
			if r := s.rooms[future.roomID]; r != nil && r.dm == "" {
				// Found again after a crash (recoverDirect): the first
				// sync showed it as a channel, before m.direct had it.
				s.broadcast(attached, func(c *Attachment, out output) {
					s.sendPart(c, out, r, s.user, "it is your direct message with "+nick)
				})
				delete(s.channels, irctext.Casefold(r.channel))
				r.dm = user
			}
			if future.err == nil && !future.encrypted {
				// The first thing the user sees of the new query.
				why := "this gateway is set not to encrypt the direct messages it starts"
				if s.olm.Load() == nil {
					why = "end-to-end encryption is off on this gateway"
				}
				s.broadcast(answering(everyone, a, out), func(c *Attachment, out output) {
					s.standardReply(c, out, "NOTE", command, "UNENCRYPTED_DM", nick, fmt.Sprintf(
						"Your direct messages with %s (%s) are not end-to-end encrypted: %s, so the homeserver can read them", nick, user, why))
				})
			}
			s.joinDone(future.roomID, "", a, out)
		}
	}
	var ok bool
	if a == nil {
		ok = s.enqueue(j)
	} else {
		ok = s.request(a, out, command, j)
	}
	if !ok {
		delete(s.dmFutures, user)
		s.joinsInFlight--
		return nil
	}
	return future
}

// sendDirectAccepted sends an accepted direct message once its room
// exists: the outbox rows waiting under the peer are given the room
// first, so that a resend after a crash goes to this room. Request worker
// only.
func (s *Session) sendDirectAccepted(ctx context.Context, future *dmFuture, p *pendingSend) error {
	select {
	case <-p.saved:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.err != nil {
		return errNotSaved{p.err}
	}
	if err := future.err; err != nil {
		if p.row != nil && (!isTransient(err) || ctx.Err() == nil) {
			s.clearOutbox(ctx, p.txnID)
		}
		return err
	}
	p.roomID = future.roomID
	if p.row != nil && p.row.Peer != "" {
		if err := s.mgr.store.ResolveOutboxPeer(ctx, s.user, p.row.Peer, p.roomID); err != nil {
			s.clearOutbox(ctx, p.txnID)
			return errNotSaved{err}
		}
		p.row.RoomID, p.row.Peer = p.roomID, ""
	}
	return s.sendAccepted(ctx, p)
}

// directCandidate is a room the account is in alone, or with only the
// peer of a direct room that was being created when the last run ended.
type directCandidate struct {
	roomID  id.RoomID
	invited bool // the peer is in it or invited
}

// directSearch is where to look for a direct room with a peer that the
// last run created but did not get to record (recoverDirect).
type directSearch struct {
	candidates []directCandidate
	// known is every room sync has shown the account: a room the
	// homeserver lists that is not among them is one sync has not shown
	// yet, such as a room whose creation the crash cut off and the
	// homeserver is still finishing.
	known map[id.RoomID]bool
}

// directCandidates lists the rooms that may be a direct room with user
// that the last run created but did not get to record: rooms the account
// is in whose other members (joined or invited) are user at most, and
// that are no one else's query; and the rooms sync has shown. Owner
// goroutine.
func (s *Session) directCandidates(user id.UserID) *directSearch {
	search := &directSearch{known: make(map[id.RoomID]bool, len(s.rooms))}
	for roomID := range s.rooms {
		search.known[roomID] = true
	}
	var out []directCandidate
	for _, r := range s.rooms {
		if r.dm != "" || (s.direct[r.id] != "" && s.direct[r.id] != user) {
			continue
		}
		ok, invited := true, false
		for u, m := range r.members {
			if m.membership != event.MembershipJoin && m.membership != event.MembershipInvite {
				continue
			}
			switch u {
			case s.user:
			case user:
				invited = true
			default:
				ok = false
			}
		}
		if ok {
			out = append(out, directCandidate{roomID: r.id, invited: invited})
		}
	}
	search.candidates = out
	return search
}

// recoverDirect finds the direct room with user that the last run
// created (its m.room.create carries directMarker), and finishes what the
// creation left undone: the invite, m.direct. It looks among the
// candidates sync has shown, then, for up to inFlightGrace, among the
// rooms the homeserver lists that sync has not shown: a creation the
// crash cut off may still be being finished by the homeserver, and
// making a second room then would leave two. roomID is "" when there is
// none; search is nil when no earlier run can have made one. Request
// worker only.
func (s *Session) recoverDirect(ctx context.Context, user id.UserID, search *directSearch) (roomID id.RoomID, encrypted bool, err error) {
	if search == nil {
		return "", false, nil
	}
	for _, c := range search.candidates {
		if s.createdFor(ctx, c.roomID, user) {
			return s.recoverFound(ctx, user, c)
		}
	}
	checked := map[id.RoomID]bool{}
	deadline := time.Now().Add(inFlightGrace)
	for {
		joined, err := s.cli.JoinedRooms(ctx)
		if err != nil {
			s.log.Warn("could not list the account's rooms while looking for a direct room", "err", err)
		} else {
			for _, roomID := range joined.JoinedRooms {
				if search.known[roomID] || checked[roomID] {
					continue
				}
				checked[roomID] = true
				if s.createdFor(ctx, roomID, user) {
					return s.recoverFound(ctx, user, directCandidate{roomID: roomID})
				}
			}
		}
		if time.Now().After(deadline) {
			return "", false, nil
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return "", false, ctx.Err()
		}
	}
}

// createdFor says whether roomID is a direct room the gateway created
// for user (its m.room.create carries directMarker). Request worker only.
func (s *Session) createdFor(ctx context.Context, roomID id.RoomID, user id.UserID) bool {
	var create map[string]any
	if err := s.cli.StateEvent(ctx, roomID, event.StateCreate, "", &create); err != nil {
		s.log.Warn("could not read a room's creation while looking for a direct room", "room", roomID, "err", err)
		return false
	}
	return create[directMarker] == user.String()
}

// recoverFound finishes a direct room the last run created for user.
// Request worker only.
func (s *Session) recoverFound(ctx context.Context, user id.UserID, c directCandidate) (id.RoomID, bool, error) {
	s.log.Info("found the direct room the last run created", "room", c.roomID, "peer", user)
	if !c.invited && !s.isMember(ctx, c.roomID, user) {
		// The crash came before the homeserver sent the invite.
		if _, err := s.cli.InviteUser(ctx, c.roomID, &mautrix.ReqInviteUser{UserID: user}); err != nil {
			return "", false, err
		}
	}
	roomID, encrypted, err := s.finishDirect(ctx, user, c.roomID)
	if err != nil || encrypted || !s.mgr.cfg.EncryptNewDMs || s.olm.Load() == nil {
		return roomID, encrypted, err
	}
	// The crash may have cut the creation off before the room's
	// encryption, or the homeserver may not have stored it yet: a room
	// meant to be encrypted is made so before anything is sent, never
	// sent plaintext that its m.room.encryption would have refused.
	enc := &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}
	if _, err := s.cli.SendStateEvent(ctx, roomID, event.StateEncryption, "", enc); err != nil {
		return "", false, fmt.Errorf("cannot turn on the encryption of the direct room found after a restart: %w", err)
	}
	s.mgr.encrypted.mark(roomID, enc)
	return roomID, true, nil
}

// isMember says whether user is joined to or invited into a room, as the
// homeserver says (sync loads members lazily). Request worker only.
func (s *Session) isMember(ctx context.Context, roomID id.RoomID, user id.UserID) bool {
	var m event.MemberEventContent
	if err := s.cli.StateEvent(ctx, roomID, event.StateMember, user.String(), &m); err != nil {
		return false
	}
	return m.Membership == event.MembershipJoin || m.Membership == event.MembershipInvite
}

// createDirect makes a direct room with user and records it in m.direct,
// as Matrix clients do. A homeserver may encrypt new private rooms by
// default, and its sync may come only after the first message is sent, so
// the new room's encryption is read at once; when it cannot be read, err
// says so and nothing is sent until sync has shown the room. Request
// worker only.
func (s *Session) createDirect(ctx context.Context, user id.UserID) (roomID id.RoomID, encrypted bool, err error) {
	req := &mautrix.ReqCreateRoom{
		Preset:          "trusted_private_chat",
		IsDirect:        true,
		Invite:          []id.UserID{user},
		CreationContent: map[string]any{directMarker: user.String()},
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
	// Recorded before anything else: a crash from here on resends the
	// waiting messages into this room rather than creating another.
	if err := s.mgr.store.ResolveOutboxPeer(ctx, s.user, user, resp.RoomID); err != nil {
		s.log.Warn("could not record the new direct room in the outbox", "room", resp.RoomID, "err", err)
	}
	return s.finishDirect(ctx, user, resp.RoomID)
}

// finishDirect records a new direct room in m.direct and reads whether it
// is encrypted. Request worker only.
func (s *Session) finishDirect(ctx context.Context, user id.UserID, roomID id.RoomID) (id.RoomID, bool, error) {
	if err := s.addToDirect(ctx, user, roomID); err != nil {
		// The room works; only other clients won't list it as a DM.
		s.log.Warn("could not record the DM in m.direct", "room", roomID, "err", err)
	}
	var enc event.EncryptionEventContent
	switch err := s.cli.StateEvent(ctx, roomID, event.StateEncryption, "", &enc); {
	case err == nil:
		s.mgr.encrypted.mark(roomID, &enc)
		return roomID, true, nil
	case errors.Is(err, mautrix.MNotFound):
		return roomID, false, nil
	default:
		return roomID, false, fmt.Errorf("cannot tell whether the new room is encrypted: %w", err)
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
// Until the join is done the room is the peer's DM to be (dmFutures): a
// reply typed meanwhile goes into it, after the join, rather than into a
// second room made for it. Owner goroutine.
func (s *Session) acceptDirectInvite(in *invite) {
	s.direct[in.roomID] = in.inviter
	var future *dmFuture
	if s.dmFutures[in.inviter] == nil {
		future = &dmFuture{}
		s.dmFutures[in.inviter] = future
	}
	s.joinsInFlight++
	ok := s.enqueue(func(ctx context.Context) func() {
		_, err := s.cli.JoinRoom(ctx, in.roomID.String(), &mautrix.ReqJoinRoom{Via: []string{in.inviter.Homeserver()}})
		if future != nil {
			// Whether it is encrypted is read before anything is sent
			// into it: sync has not shown the room yet. A message
			// waiting for the room fails when that cannot be told.
			future.err = err
			if err == nil {
				future.roomID, future.encrypted, future.err = s.finishDirect(ctx, in.inviter, in.roomID)
			}
		} else if err == nil {
			err = s.addToDirect(ctx, in.inviter, in.roomID)
		}
		return func() {
			if future != nil && s.dmFutures[in.inviter] == future {
				delete(s.dmFutures, in.inviter)
			}
			if err != nil {
				s.log.Warn("could not accept a DM invite", "room", in.roomID, "err", err)
				s.noticeAll(fmt.Sprintf("Could not accept a direct message from %s: %s", in.inviter, matrixErrorText(err)))
			}
			s.joinDone(in.roomID, "", nil, nil)
		}
	})
	if !ok {
		if future != nil {
			delete(s.dmFutures, in.inviter)
		}
		s.joinsInFlight--
	}
}

// waitingDirectInvite is a direct chat invitation from user that waits
// for the account to accept it, if there is one. Owner goroutine.
func (s *Session) waitingDirectInvite(user id.UserID) *invite {
	for _, in := range s.invites {
		if in.direct && in.inviter == user {
			return in
		}
	}
	return nil
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
	return userForName(target, s.nicksFor(a))
}

// userForName is userForTarget with the nicks a client sees.
func userForName(target string, nicks mapping.NickResolver) (id.UserID, bool) {
	if user, ok := nicks(target); ok {
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
