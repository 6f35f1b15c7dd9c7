package session

import (
	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// applySync folds one /sync response into the session and tells the
// attached clients what changed. The session's first sync only builds
// state: what it brings that clients missed is replayed from the store.
// seqs holds the stream positions of the events new to the account; rooms
// go in the order persistSync numbered them.
func (s *Session) applySync(resp *mautrix.RespSync, initial bool, seqs map[id.EventID]int64) {
	// Account data first: m.direct decides whether new rooms are queries.
	s.applyDirect(resp.AccountData.Events)
	s.applyIgnored(resp.AccountData.Events)
	s.applyPresence(resp.Presence.Events)
	s.noteUpgrades(resp)
	for _, roomID := range sortedRoomIDs(resp.Rooms.Join) {
		s.applyJoinedRoom(roomID, resp.Rooms.Join[roomID], initial, seqs)
	}
	if s.resuming != nil {
		s.announceResumed(resp)
	}
	for _, roomID := range sortedRoomIDs(resp.Rooms.Leave) {
		s.applyLeftRoom(roomID, resp.Rooms.Leave[roomID])
	}
	s.followPendingUpgrades()
	for _, roomID := range sortedRoomIDs(resp.Rooms.Invite) {
		s.applyInvite(roomID, resp.Rooms.Invite[roomID])
	}
	s.summariseInvites()
	s.applyReadMarkers(resp)
	var newest int64
	for _, seq := range seqs {
		newest = max(newest, seq)
	}
	s.advance(newest)
	if !s.synced {
		s.synced = true
		s.live.Store(true)
		s.accountNick() // for clients that connect from now on
		// Only now, with what the homeserver has stored since the last run
		// in the store, can a message left unsent be told from one that
		// reached it before the crash.
		s.resendUnsent()
		for a := range s.clients {
			s.startAttach(a)
		}
		pending := s.pending
		s.pending = nil
		for _, ev := range pending {
			_, attached := s.clients[ev.a]
			attached = attached || s.lurkAll[ev.a]
			switch {
			case ev.line != nil && attached:
				s.runEarly(ev)
			case ev.line != nil:
				// Accepted, so sent although its client has left. Not
				// Created: the outbox writer may be setting it.
				row := ev.line.row
				s.resendLine(store.OutboxEntry{UserID: row.UserID, TxnID: row.TxnID, Type: row.Type, Content: row.Content}, ev.line.saved)
			case attached:
				s.handleCommand(ev.a, ev.msg)
			}
		}
	}
}

func (s *Session) applyJoinedRoom(roomID id.RoomID, joined *mautrix.SyncJoinedRoom, initial bool, seqs map[id.EventID]int64) {
	if s.hiddenAsReplaced(roomID) {
		return // upgraded: its successor is the channel
	}
	r, known := s.rooms[roomID]
	delete(s.invites, roomID)
	if !known {
		if r = s.deferred[roomID]; r == nil {
			if r = s.takeResumed(roomID); r == nil {
				r = s.newRoom(roomID)
			}
		}
	}
	for _, ev := range joined.State.Events {
		ev.RoomID = roomID
		r.applyState(ev)
	}
	r.noteSummary(&joined.Summary)
	if known && !initial {
		var rejoined *event.MemberEventContent
		for _, ev := range joined.Timeline.Events {
			ev.RoomID = roomID
			seq := seqs[ev.ID]
			if seq == 0 {
				// Already delivered (a gap filled twice): keep the
				// state, show nothing.
				r.applyState(ev)
				continue
			}
			if ev.Type == event.StateMember && ev.GetStateKey() == s.user.String() && parseContent(ev) {
				if c := ev.Content.AsMember(); c.Membership == event.MembershipLeave {
					rejoined = c
				}
			}
			s.advance(seq)
			s.applyTimelineEvent(r, ev)
		}
		if rejoined != nil {
			// Left and joined again between two syncs (a PART and JOIN
			// sent together): show both, as a client that sent them
			// waits for both (barrier.go).
			delete(s.leaving, roomID)
			s.broadcastIn(r, "", live, func(a *Attachment, out output) {
				s.sendPart(a, out, r, s.user, rejoined.Reason)
				s.sendChannelBurst(a, out, r)
			})
			s.releaseGone(roomID)
			s.releaseRoom(roomID)
		}
		for _, ev := range joined.Ephemeral.Events {
			if ev.Type.Type == event.EphemeralEventTyping.Type {
				s.showTyping(r, ev)
			}
		}
		return
	}
	// Dendrite puts the state of a fresh room in the timeline, so a new room
	// takes its state from both sections before it is shown. Its messages
	// happened before it was shown and are not replayed.
	for _, ev := range joined.Timeline.Events {
		ev.RoomID = roomID
		switch {
		case ev.StateKey != nil:
			r.applyState(ev)
		case ev.Type != event.EventMessage || !parseContent(ev):
			// A poll that started while the gateway was away can
			// still be voted on and counted.
			s.notePoll(r, ev)
		case !initial && !known:
			r.backlog = append(r.backlog, ev)
		default:
			// Not shown (it came before the client), but a reply may quote it.
			s.rememberMessage(r, ev)
		}
	}
	// Built from scratch: now share it with (or take it from) the other
	// sessions in the room.
	s.share(r)
	if known {
		return
	}
	if r.alias == "" && s.joinNames[roomID] == "" && s.direct[roomID] == "" && s.joinsInFlight > 0 || s.awaitsUpgrade(roomID) {
		s.deferred[roomID] = r
		return
	}
	s.announceRoom(r, nil, nil)
}

// announceRoom names a newly joined room and shows it to every client;
// the lines of asker, whose request brought the room, go to out (nil: no
// client asked).
func (s *Session) announceRoom(r *room, asker *Attachment, out output) {
	delete(s.deferred, r.id)
	defer s.releaseRoom(r.id)
	defer s.burstInPlace(r.id)()
	backlog := r.backlog
	r.backlog = nil
	if r.dm = s.directPeer(r); r.dm != "" {
		// A query: no channel, its messages arrive as private messages,
		// starting with those sent before the account joined: someone
		// who opens a DM with a message expects it to be read.
		s.rooms[r.id] = r
		for _, ev := range backlog {
			if s.showMessageTo(r, ev, answering(live, asker, out)) {
				s.rememberMessage(r, ev)
			}
		}
		return
	}
	s.addRoom(r)
	if s.synced {
		s.broadcast(answering(everyone, asker, out), func(a *Attachment, out output) {
			s.sendChannelBurst(a, out, r)
			s.noteSpace(a, out, r)
		})
		s.admitWaitingLurkers(r)
	}
}

// joinDone records that a JOIN request has come back; roomID is the room it
// joined, or empty on failure. asker's lines go to out (see announceRoom).
func (s *Session) joinDone(roomID id.RoomID, requested string, asker *Attachment, out output) {
	s.joinsInFlight--
	if roomID != "" && requested != "" {
		s.joinNames[roomID] = requested
	}
	if r := s.deferred[roomID]; r != nil {
		s.announceRoom(r, asker, out)
	}
	if s.joinsInFlight == 0 {
		for _, r := range s.deferred {
			s.announceRoom(r, asker, out)
		}
	}
}

// applyTimelineEvent updates state from one new event and shows it.
func (s *Session) applyTimelineEvent(r *room, ev *event.Event) {
	if r.dm != "" && ev.StateKey != nil {
		r.applyState(ev) // a query shows only messages
		return
	}
	if ev.StateKey != nil {
		prevTopic, oldPower, oldJoinRule := r.topic, r.power, r.joinRule
		var prevName string
		if m := r.members[id.UserID(ev.GetStateKey())]; m != nil && ev.Type == event.StateMember {
			prevName = m.displayName
		}
		prev := r.applyState(ev)
		switch ev.Type {
		case event.StateMember:
			s.showMembership(r, ev, prev, prevName)
		case event.StateTopic:
			if r.topic != prevTopic {
				s.broadcastIn(r, ev.ID, live, func(a *Attachment, out output) { s.sendTopicChange(a, out, r, ev) })
			}
		case event.StatePowerLevels, event.StateJoinRules:
			s.showModeChange(r, ev.Sender, oldPower, oldJoinRule)
		case event.StateCanonicalAlias, event.StateRoomName:
			if !s.isReplaced(r.id) {
				s.renameIfNeeded(r) // an upgrade takes the alias away: no rename then
			}
		case event.StateTombstone:
			if t, ok := tombstoneOf(ev); ok {
				s.followUpgrade(r, t)
			}
		case event.StatePinnedEvents:
			s.showPins(r, ev)
		}
		if ev.Type == event.StateJoinRules || ev.Type == event.StateHistoryVisibility {
			s.lurkRecheck(r)
		}
		return
	}
	if ev.Type == event.EventMessage {
		s.showMessage(r, ev)
	} else {
		s.notePoll(r, ev)
		s.showOther(r, ev, live)
	}
}

// showMessage shows one new m.room.message to the clients that take live
// events, and keeps it for the context of later replies.
func (s *Session) showMessage(r *room, ev *event.Event) {
	s.mgr.stats.fromMatrix.Add(1)
	if s.showMessageTo(r, ev, live) {
		s.rememberMessage(r, ev)
	}
}

// showMessageTo shows one m.room.message to the clients to picks; ok is
// false when it cannot be read. A message one of our clients sent comes
// back through sync: the client that typed it already has it, the
// account's other clients see it from the user's own nick.
func (s *Session) showMessageTo(r *room, ev *event.Event, to audience) (ok bool) {
	if s.isIgnored(ev.Sender) {
		return false
	}
	if !parseContent(ev) {
		s.log.Debug("unparseable message", "event", ev.ID)
		return false
	}
	s.broadcastEcho(r, ev, to, func(a *Attachment, out output) { s.sendRoomMessage(a, out, r, ev) })
	return true
}

// broadcastEcho shows an event to the clients to picks, except that the
// client whose command sent it (known by its transaction ID) gets it only
// with echo-message, and then with the real event ID as msgid, in the
// command's labeled response if it has one.
func (s *Session) broadcastEcho(r *room, ev *event.Event, to audience, f func(a *Attachment, out output)) {
	var origin *Attachment
	var resp *labeledResponse
	if txn := ev.Unsigned.TransactionID; ev.Sender == s.user && txn != "" {
		if a, ok := s.sentTxns[txn]; ok {
			origin, resp = a, s.sentResp[txn]
			delete(s.sentTxns, txn)
			delete(s.sentResp, txn)
		}
	}
	s.broadcastIn(r, ev.ID, to, func(a *Attachment, out output) {
		switch {
		case a == origin && resp != nil:
			f(a, resp)
		case a != origin || a.client.HasCap("echo-message"):
			f(a, out)
		}
	})
	if resp != nil {
		resp.Done()
	}
	if origin != nil {
		s.releaseTxn(ev.Unsigned.TransactionID)
	}
}

// showMembership tells clients about another user joining or leaving.
// Changes of the account's own membership come through the room sections.
func (s *Session) showMembership(r *room, ev *event.Event, prev event.Membership, prevName string) {
	user := id.UserID(ev.GetStateKey())
	c := ev.Content.AsMember()
	if c.Membership == event.MembershipJoin && prev == event.MembershipJoin && c.Displayname != prevName && c.Displayname != "" &&
		s.displayName(user) == c.Displayname && !s.nameShownElsewhere(r, user, c.Displayname) &&
		!(user == s.user && c.Displayname == s.toldName) { // a SETNAME from here was told already
		if user == s.user {
			s.toldName = c.Displayname
		}
		s.broadcastIn(r, ev.ID, live, func(a *Attachment, out output) {
			if a.client.HasCap("setname") {
				out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, user), Command: "SETNAME", Params: []string{c.Displayname}})
			}
		})
	}
	if user == s.user {
		if c.Membership == event.MembershipJoin && prev == event.MembershipJoin {
			s.renameClients() // a display name change, perhaps
			if c.Displayname != "" && c.Displayname != s.ownName {
				s.ownName = c.Displayname
				s.publishPresence(false)
			}
		}
		return
	}
	if c.Membership == event.MembershipKnock && prev != event.MembershipKnock {
		s.showKnock(r, user, c.Reason)
	}
	if c.Membership == event.MembershipInvite && prev != event.MembershipInvite {
		s.broadcast(live, func(a *Attachment, out output) {
			if a.client.HasCap("invite-notify") {
				out.SendMessage(&irc.Message{Tags: irc.Tags{"account": s.accountName(ev.Sender)}, Prefix: s.prefixOf(a, ev.Sender), Command: "INVITE", Params: []string{s.nickOf(a, user), r.channel}})
			}
		})
	}
	switch {
	case c.Membership == event.MembershipJoin && prev == event.MembershipJoin:
		s.renameUser(user) // a display name change, perhaps
	case c.Membership == event.MembershipJoin && prev != event.MembershipJoin:
		away, isAway := s.presenceFor(user).setAway()
		s.broadcastIn(r, ev.ID, live, func(a *Attachment, out output) {
			s.sendJoin(a, out, r, user)
			if isAway && a.client.HasCap("away-notify") {
				// away-notify: one who joins while away is said to be.
				out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, user), Command: "AWAY", Params: []string{away}})
			}
		})
	case (c.Membership == event.MembershipLeave || c.Membership == event.MembershipBan) && prev == event.MembershipJoin:
		if ev.Sender == user {
			reason := c.Reason
			if reason == "" {
				// Dendrite drops /leave's reason; a PART from this
				// gateway left it here.
				reason = s.mgr.leaveReasons.of(r.id, user)
			}
			s.broadcastIn(r, ev.ID, live, func(a *Attachment, out output) { s.sendPart(a, out, r, user, reason) })
		} else {
			s.broadcastIn(r, ev.ID, live, func(a *Attachment, out output) { s.sendKick(a, out, r, ev.Sender, user, c.Reason) })
		}
	}
	switch {
	case c.Membership == event.MembershipBan && prev != event.MembershipBan:
		s.broadcastModes(r, ev.Sender, []mapping.ModeChange{{Add: true, Mode: 'b', Arg: banMask(user)}})
	case c.Membership != event.MembershipBan && prev == event.MembershipBan:
		s.broadcastModes(r, ev.Sender, []mapping.ModeChange{{Add: false, Mode: 'b', Arg: banMask(user)}})
	}
}

// nameShownElsewhere says whether user already has display name name in a
// joined room other than r: a display name change comes as one member
// event per room, and only the first is a SETNAME.
func (s *Session) nameShownElsewhere(r *room, user id.UserID, name string) bool {
	for _, other := range s.rooms {
		if other == r {
			continue
		}
		if m := other.members[user]; m != nil && m.membership == event.MembershipJoin && m.displayName == name {
			return true
		}
	}
	return false
}

// applyLeftRoom removes a room the account has left, was kicked or banned
// from, and closes its channel on every client.
func (s *Session) applyLeftRoom(roomID id.RoomID, left *mautrix.SyncLeftRoom) {
	delete(s.deferred, roomID)
	delete(s.invites, roomID)
	defer s.releaseGone(roomID) // the PARTs waiting for it (barrier.go)
	delete(s.leaving, roomID)
	partReason := s.partReasons[roomID]
	delete(s.partReasons, roomID)
	r := s.rooms[roomID]
	if r == nil {
		return
	}
	if r.dm != "" {
		delete(s.rooms, roomID)
		return
	}
	var kicker id.UserID
	var reason string
	for _, ev := range append(left.State.Events, left.Timeline.Events...) {
		if ev.Type == event.StateMember && ev.GetStateKey() == s.user.String() {
			parseContent(ev)
			c := ev.Content.AsMember()
			reason = c.Reason
			kicker = ""
			if ev.Sender != s.user && c.Membership != event.MembershipJoin {
				kicker = ev.Sender
			}
		}
	}
	if kicker == "" && reason == "" {
		reason = partReason
	}
	s.broadcastIn(r, "", attached, func(a *Attachment, out output) {
		if kicker != "" {
			s.sendKick(a, out, r, kicker, s.user, reason)
		} else {
			s.sendPart(a, out, r, s.user, reason)
		}
	})
	s.lurkRoomGone(r)
	s.removeRoom(r)
}

// audience picks the clients a broadcast renders for, and where the lines
// of each go; nil leaves a client out. burstDone says the client has had
// its connect burst.
type audience func(a *Attachment, burstDone bool) output

// everyone is every attached client, burst or not.
func everyone(a *Attachment, _ bool) output { return a.client }

// attached is every client that has had its connect burst.
func attached(a *Attachment, burstDone bool) output {
	if burstDone {
		return a.client
	}
	return nil
}

// live is the clients that take timeline events as they come: one still
// catching up gets them from the store instead.
func live(a *Attachment, burstDone bool) output {
	if burstDone && !a.catchingUp {
		return a.client
	}
	return nil
}

// only is one client alone, its lines going to out (a replay, history).
func only(one *Attachment, out output) audience {
	return func(a *Attachment, _ bool) output {
		if a == one {
			return out
		}
		return nil
	}
}

// answering is to, except that asker's lines go to out: what a client's
// command brought about belongs to that command's (labeled) response.
func answering(to audience, asker *Attachment, out output) audience {
	if asker == nil {
		return to
	}
	return func(a *Attachment, burstDone bool) output {
		if a == asker && to(a, burstDone) != nil {
			return out
		}
		return to(a, burstDone)
	}
}

// broadcast renders f for each client to picks; lines are per client
// because each has its own nick.
func (s *Session) broadcast(to audience, f func(a *Attachment, out output)) {
	for a, burstDone := range s.clients {
		if out := to(a, burstDone); out != nil {
			f(a, out)
		}
	}
}

// invite is a pending invitation of the account to a room.
type invite struct {
	roomID  id.RoomID
	inviter id.UserID
	channel string
	direct  bool
}

// applyInvite shows a new invitation as INVITE, naming the channel the
// client can JOIN to accept it.
func (s *Session) applyInvite(roomID id.RoomID, invited *mautrix.SyncInvitedRoom) {
	if _, seen := s.invites[roomID]; seen {
		return
	}
	in := &invite{roomID: roomID}
	var alias id.RoomAlias
	for _, ev := range invited.State.Events {
		if !parseContent(ev) {
			continue
		}
		switch {
		case ev.Type == event.StateCanonicalAlias:
			alias = ev.Content.AsCanonicalAlias().Alias
		case ev.Type == event.StateMember && ev.GetStateKey() == s.user.String():
			c := ev.Content.AsMember()
			if c.Membership == event.MembershipInvite {
				in.inviter, in.direct = ev.Sender, c.IsDirect
			}
		}
	}
	if in.inviter == "" || s.isIgnored(in.inviter) {
		return
	}
	in.channel = mapping.ChannelName(roomID, alias)
	if alias != "" && s.mgr.cfg.ShortAliases {
		// The name the channel will have once joined (channelNameFor).
		in.channel = mapping.ShortAlias(id.RoomAlias(in.channel), s.user.Homeserver())
	}
	if in.direct && s.acceptsDMInviteFrom(in.inviter, roomID) {
		s.acceptDirectInvite(in)
		return
	}
	s.invites[roomID] = in
	s.showInvite(in)
}

// inviteByChannel finds a pending invite by the channel name a client typed.
func (s *Session) inviteByChannel(name string) *invite {
	folded := irctext.Casefold(name)
	for _, in := range s.invites {
		if irctext.Casefold(in.channel) == folded || string(in.roomID) == name {
			return in
		}
	}
	return nil
}
