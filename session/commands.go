package session

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/ircreply"
	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/mapping"
)

// maxPending bounds the commands a client may send before the session's
// first sync has finished; maxLurkerPending, when the client is a lurker:
// all lurkers share one session, and after a restart thousands of them
// reconnect and JOIN while it makes its first sync.
const (
	maxPending       = 200
	maxLurkerPending = 10000
)

// handleCommand runs one IRC command on the owner goroutine, inside its
// labeled response when the client labeled it. ircd has already checked
// the command against the table (Commands).
func (s *Session) handleCommand(a *Attachment, m *irc.Message) {
	if !s.synced {
		limit := maxPending
		if a.lurk != nil {
			limit = maxLurkerPending
		}
		if len(s.pending) >= limit {
			s.fail(a, a.client, m.Command, "TEMPORARILY_UNAVAILABLE", "", "Still connecting to Matrix; command dropped: "+m.Command)
			a.handled++
			a.settle()
			return
		}
		// A message line is durable now, as after the sync.
		s.pending = append(s.pending, commandEvent{a: a, msg: m, line: s.acceptEarly(a, m)})
		return
	}
	defer func() {
		a.handled++
		a.settle()
	}()
	if label := m.Tags["label"]; label != "" && a.client.HasCap("labeled-response") {
		resp := ircreply.NewResponse(a.client, label, a.client.HasCap("batch"))
		s.runCommand(a, resp, m)
		resp.Finish()
		return
	}
	s.runCommand(a, a.client, m)
}

// command is one entry of the table of commands that need Matrix: the
// only place such a command is declared. ircd learns the names and
// parameter counts from Commands and checks them before the session sees
// a command; run answers it on the owner goroutine, and the error it
// returns carries the reply (ircreply), which runCommand sends.
type command struct {
	minParams int
	run       func(s *Session, a *Attachment, out output, m *irc.Message) error
}

var commands map[string]command

func init() {
	// NICK, MODE, PRIVMSG and NOTICE are ircd's too: it answers
	// registration, user modes and empty messages, and passes the rest on.
	commands = map[string]command{
		"JOIN":     {minParams: 1, run: (*Session).cmdJoin},
		"PART":     {minParams: 1, run: (*Session).cmdPart},
		"PRIVMSG":  {minParams: 2, run: (*Session).cmdMessage},
		"NOTICE":   {minParams: 2, run: (*Session).cmdMessage},
		"TOPIC":    {minParams: 1, run: (*Session).cmdTopic},
		"NAMES":    {run: (*Session).cmdNames},
		"WHO":      {run: (*Session).cmdWho},
		"WHOIS":    {minParams: 1, run: (*Session).cmdWhois},
		"USERHOST": {minParams: 1, run: (*Session).cmdUserhost},
		"WHOWAS":   {minParams: 1, run: (*Session).cmdWhowas},
		"NICK":     {minParams: 1, run: (*Session).cmdNick},
		"MODE":     {minParams: 1, run: (*Session).cmdMode},
		"KICK":     {minParams: 2, run: (*Session).cmdKick},
		"INVITE":   {minParams: 2, run: (*Session).cmdInvite},
		"KNOCK":    {minParams: 1, run: (*Session).cmdKnock},
		"LIST":     {run: (*Session).cmdList},
		"TAGMSG":   {minParams: 1, run: (*Session).cmdTagmsg},
		"AWAY":     {run: (*Session).cmdAway},
		"SETNAME":  {minParams: 1, run: (*Session).cmdSetname},
		"MONITOR":  {minParams: 1, run: (*Session).cmdMonitor},
		"REDACT":   {minParams: 2, run: (*Session).cmdRedact},
		"SILENCE":  {run: (*Session).cmdSilence},
		"RENAME":   {minParams: 2, run: (*Session).cmdRename},
		// Bouncer commands: history, read markers, always-on.
		"CHATHISTORY": {minParams: 1, run: (*Session).cmdChathistory},
		"MARKREAD":    {run: (*Session).cmdMarkread},
		"ALWAYSON":    {run: (*Session).cmdAlwaysOn},
		// ircd answers PING itself unless commands it passed are unsettled
		// (barrier.go).
		"PING": {minParams: 1, run: (*Session).cmdPing},
	}
}

// CommandSpec is what the IRC side checks of a command before the session
// gets it.
type CommandSpec struct {
	MinParams int
}

// Commands lists the commands a session answers, for the IRC side's
// command table.
func Commands() map[string]CommandSpec {
	specs := make(map[string]CommandSpec, len(commands))
	for name, cmd := range commands {
		specs[name] = CommandSpec{MinParams: cmd.minParams}
	}
	return specs
}

// runCommand is the session's dispatcher: it runs a command's handler and
// sends the reply its error carries.
func (s *Session) runCommand(a *Attachment, out output, m *irc.Message) {
	if a.lurk != nil {
		s.reply(a, out, m.Command, s.lurkCommand(a, out, m))
		return
	}
	if s.waitForJoin(a, out, m) {
		return // run when the JOIN of its channel is answered (joinwait.go)
	}
	cmd, ok := commands[m.Command]
	var err error
	switch {
	case !ok:
		err = ircreply.Numeric(irc.ERR_UNKNOWNCOMMAND, m.Command, "Unknown command")
	case len(m.Params) < cmd.minParams:
		err = ircreply.Numeric(irc.ERR_NEEDMOREPARAMS, m.Command, "Not enough parameters")
	default:
		err = cmd.run(s, a, out, m)
	}
	s.reply(a, out, m.Command, err)
}

// reply sends the reply err carries (nothing for nil): from a command's
// handler, or later from a request's result.
func (s *Session) reply(a *Attachment, out output, command string, err error) {
	ircreply.Send(out, a.client, command, err)
}

// request schedules a homeserver call for a client, or tells the client
// right away that too many are queued. The call keeps its order with
// every other request (see jobQueue): use roomRequest for what acts in
// one room.
func (s *Session) request(a *Attachment, out output, command string, j job) bool {
	return s.requestOn(s.enqueue, a, out, command, j)
}

// roomRequest is request for a call that acts in one room: it keeps its
// order with that room's requests (and those of no room), not with other
// rooms', so a slow room does not hold up the others.
func (s *Session) roomRequest(a *Attachment, out output, command string, room id.RoomID, j job) bool {
	return s.requestOn(func(j job) bool { return s.enqueueIn(room, j) }, a, out, command, j)
}

func (s *Session) cmdJoin(a *Attachment, out output, m *irc.Message) error {
	for _, name := range strings.Split(m.Params[0], ",") {
		if name == "" {
			continue
		}
		enqueue := s.enqueue
		if r := s.roomByChannel(name); r != nil {
			if s.leaving[r.id] == 0 {
				// Already in it: ignored, as IRC servers do. WeeChat and
				// The Lounge rejoin their channels on reconnect, and a
				// second burst showed each one twice.
				continue
			}
			// A PART is leaving it: joined again after the leave, in the
			// room's lane.
			roomID := r.id
			enqueue = func(j job) bool { return s.enqueueIn(roomID, j) }
		}
		target, ok := mapping.ParseChannel(name, s.user.Homeserver())
		if in := s.inviteByChannel(name); in != nil && in.direct {
			// A direct chat someone invited the account to: its messages
			// come as a query, and it goes into m.direct.
			delete(s.invites, in.roomID)
			s.acceptDirectInvite(in)
			continue
		} else if in != nil {
			// Accepting an invitation: join by ID, through the inviter's server.
			target, ok = mapping.RoomTarget{RoomID: in.roomID, Server: in.inviter.Homeserver()}, true
		}
		if !ok {
			// One bad name among several: the others are still joined.
			s.reply(a, out, "JOIN", ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel: use #alias:server or !roomid:server"))
			continue
		}
		s.joinsInFlight++
		joinName := name
		ok = s.requestOn(enqueue, a, out, "JOIN", func(ctx context.Context) func() {
			roomID, err := s.joinTarget(ctx, target)
			return func() {
				if err != nil {
					s.reply(a, out, "JOIN", joinError(name, err))
				} else {
					s.holdUntilShown(a, roomID)
				}
				// The room arrives through sync, with its burst.
				requested := string(target.Alias)
				if target.RoomID != "" {
					requested = string(target.RoomID)
				}
				s.joinDone(roomID, requested, a, out)
			}
		})
		if !ok {
			s.joinsInFlight--
		} else {
			s.noteJoining(a, joinName)
		}
	}
	return nil
}

// joinTarget joins a room by alias or ID. An alias on the account's own
// server that does not exist yet is created, as joining a new channel does
// on IRC.
func (s *Session) joinTarget(ctx context.Context, t mapping.RoomTarget) (id.RoomID, error) {
	if t.RoomID != "" {
		resp, err := s.cli.JoinRoom(ctx, t.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{t.Server}})
		if err != nil {
			return "", err
		}
		return resp.RoomID, nil
	}
	_, err := s.cli.ResolveAlias(ctx, t.Alias)
	if errors.Is(err, mautrix.MNotFound) && t.Server == s.user.Homeserver() {
		if !s.takeRoomToken() {
			return "", errTooManyNewRooms
		}
		visibility := "private" // +s: out of the room directory
		if s.mgr.cfg.ListNewChannels {
			visibility = "public"
		}
		resp, err := s.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			RoomAliasName: t.Local,
			Preset:        "public_chat",
			Visibility:    visibility,
		})
		if err != nil {
			return "", err
		}
		return resp.RoomID, nil
	}
	if err != nil {
		if unexplained5xx(err) {
			// Dendrite answers 500 with no errcode for an alias nobody
			// has (on another server): to the user, there is no such room.
			return "", fmt.Errorf("%w: %w", errNoSuchRoom, err)
		}
		return "", err
	}
	resp, err := s.cli.JoinRoom(ctx, t.Alias.String(), nil)
	if err != nil {
		return "", err
	}
	return resp.RoomID, nil
}

// errNoSuchRoom says an alias names no room the homeserver could find.
var errNoSuchRoom = errors.New("no such room")

// unexplained5xx is a server error without a Matrix errcode.
func unexplained5xx(err error) bool {
	var httpErr mautrix.HTTPError
	return errors.As(err, &httpErr) && httpErr.Response != nil && httpErr.Response.StatusCode >= 500 &&
		(httpErr.RespError == nil || httpErr.RespError.ErrCode == "")
}

// errTooManyNewRooms says JOIN would create more rooms than
// matrix.room_create_burst / room_create_interval allow.
var errTooManyNewRooms = errors.New("too many new rooms")

// joinError is the reply to a join the homeserver refused.
func joinError(channel string, err error) error {
	text := matrixErrorText(err)
	switch {
	case errors.Is(err, errTooManyNewRooms):
		return ircreply.Fail("JOIN", "LIMIT_EXCEEDED", channel,
			fmt.Sprintf("Not created: %s does not exist, and you have created too many rooms lately; try again in a minute", channel))
	case errors.Is(err, mautrix.MNotFound), errors.Is(err, errNoSuchRoom):
		return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, channel, "No such channel: no room is called "+channel)
	case errors.Is(err, mautrix.MForbidden):
		if strings.Contains(strings.ToLower(text), "banned") {
			return ircreply.Numeric(irc.ERR_BANNEDFROMCHAN, channel, "Cannot join channel (+b): "+text)
		}
		return ircreply.Numeric(irc.ERR_INVITEONLYCHAN, channel, "Cannot join channel (+i): "+text)
	}
	return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, channel, "Cannot join channel: "+text)
}

// notOnChannel answers a command on a channel the account is not in:
// 442 when the room exists, 403 when nothing has that name (an alias
// nobody has, or no channel name at all), as IRC servers tell the two
// apart.
func (s *Session) notOnChannel(a *Attachment, out output, command, name string) {
	s.channelNotJoined(a, out, command, name, ircreply.Numeric(irc.ERR_NOTONCHANNEL, name, "You're not on that channel"))
}

// channelNotJoined answers a command on a channel the account is not in
// with exists when the room exists, or 403 when nothing has that name.
func (s *Session) channelNotJoined(a *Attachment, out output, command, name string, exists error) {
	target, ok := mapping.ParseChannel(name, s.user.Homeserver())
	if !ok {
		s.reply(a, out, command, ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel"))
		return
	}
	if target.Alias == "" {
		s.reply(a, out, command, exists)
		return
	}
	s.request(a, out, command, func(ctx context.Context) func() {
		_, err := s.cli.ResolveAlias(ctx, target.Alias)
		return func() {
			if errors.Is(err, mautrix.MNotFound) || unexplained5xx(err) {
				// Dendrite answers 500 for an alias of another server
				// that nobody has.
				s.reply(a, out, command, ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel"))
				return
			}
			s.reply(a, out, command, exists)
		}
	})
}

func (s *Session) cmdPart(a *Attachment, out output, m *irc.Message) error {
	reason := m.Param(1)
	for _, name := range strings.Split(m.Params[0], ",") {
		if name == "" {
			continue
		}
		r := s.roomByChannel(name)
		if r == nil {
			s.notOnChannel(a, out, "PART", name)
			continue
		}
		roomID, channel := r.id, r.channel
		s.leaving[roomID]++
		// For the gateway's other sessions in the room, whose sync may
		// show the leave before this request returns.
		s.mgr.leaveReasons.note(roomID, s.user, reason)
		ok := s.roomRequest(a, out, "PART", roomID, func(ctx context.Context) func() {
			_, err := s.cli.LeaveRoom(ctx, roomID, &mautrix.ReqLeave{Reason: reason})
			return func() {
				if err != nil {
					s.mgr.leaveReasons.note(roomID, s.user, "")
					s.doneLeaving(roomID)
					s.reply(a, out, "PART", ircreply.Fail("PART", "CANNOT_LEAVE", channel, fmt.Sprintf("Cannot leave %s: %s", channel, matrixErrorText(err))))
					return
				}
				// On success the PART comes through sync, to every client.
				if reason != "" {
					s.partReasons[roomID] = reason
				}
				s.holdUntilGone(a, roomID)
			}
		})
		if !ok {
			s.doneLeaving(roomID)
		}
	}
	return nil
}

// doneLeaving ends one PART's claim on a room (cmdJoin), when its leave
// request failed; a room left ends them all (applyLeftRoom). Owner
// goroutine.
func (s *Session) doneLeaving(roomID id.RoomID) {
	if s.leaving[roomID]--; s.leaving[roomID] <= 0 {
		delete(s.leaving, roomID)
	}
}

func (s *Session) cmdMessage(a *Attachment, out output, m *irc.Message) error {
	target, text := m.Params[0], m.Params[1]
	if s.isServiceNick(target) {
		// Before anything of Matrix: what is typed to the service stays here.
		s.serviceMessage(a, out, m.Command, target, text)
		return nil
	}
	notice := m.Command == "NOTICE"
	content, ok := mapping.MessageFromIRC(m.Command, text, s.nicksFor(a))
	if !ok {
		return nil // CTCP other than ACTION has no Matrix meaning.
	}
	if reply := replyTarget(m); reply != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(reply)
	}
	if r := s.roomByChannel(target); r != nil {
		if reply := replyTarget(m); reply != "" {
			content.RelatesTo = s.replyRelation(r, reply) // threads.go
		}
		s.sendContent(a, out, m.Command, r.id, r.channel, content, s.newTxnID(a, out))
		return nil
	}
	if strings.ContainsRune("#!", rune(target[0])) {
		if notice { // NOTICE never gets an automatic reply.
			return nil
		}
		// 404 for a room that exists (only members send to a Matrix
		// room), 403 for a name nobody has.
		s.channelNotJoined(a, out, m.Command, target, ircreply.Numeric(irc.ERR_CANNOTSENDTOCHAN, target, "Cannot send to channel: you are not in it (JOIN it first)"))
		return nil
	}
	user, ok := s.userForTarget(a, target)
	guessed := false
	if !ok {
		user, ok = s.matrixUserNamed(target)
		guessed = true
	}
	switch {
	case !ok:
		if notice {
			return nil
		}
		return ircreply.Numeric(irc.ERR_NOSUCHNICK, target, "No such nick: give a nick you share a room with, or a Matrix ID")
	case user == s.user:
		s.messageToSelf(a, out, m.Command, text, nil)
	case guessed:
		s.sendToServerUser(a, out, target, user, content, m.Command)
	default:
		s.sendDirect(a, out, target, user, content, m.Command)
		if away, ok := s.presenceFor(user).setAway(); ok && !notice {
			// RPL_AWAY, as IRC servers tell whoever messages an away user.
			out.SendNumeric(irc.RPL_AWAY, target, away)
		}
	}
	return nil
}

// newTxnID makes the transaction ID of one message from client a, and
// remembers it so the echo from sync is not shown to a again.
func (s *Session) newTxnID(a *Attachment, out output) string {
	var txnID string
	if s.early.txnID != "" && !s.early.used {
		// An early line keeps the ID its outbox row was saved under.
		txnID, s.early.used = s.early.txnID, true
	} else {
		txnID = s.makeTxnID(a)
	}
	s.sentTxns[txnID] = a
	s.holdEcho(a, txnID)
	if resp := labeledOf(out); resp != nil && a.client.HasCap("echo-message") {
		// The echo is the answer to a labeled message: wait for it.
		s.sentResp[txnID] = resp
		resp.Hold()
	}
	return txnID
}

// makeTxnID makes a new transaction ID for a message from client a.
func (s *Session) makeTxnID(a *Attachment) string {
	s.txnSeq++
	// The client's name ends the ID, so replay can leave out what a
	// client typed itself.
	return fmt.Sprintf("mxircd.%d.%d%s%s", s.started, s.txnSeq, txnClientSep, a.name)
}

// dropTxn forgets a transaction whose event will not come back (the send
// failed), releasing a labeled response that waited for its echo.
func (s *Session) dropTxn(txnID string) {
	delete(s.sentTxns, txnID)
	s.releaseTxn(txnID)
	if resp := s.sentResp[txnID]; resp != nil {
		delete(s.sentResp, txnID)
		resp.Done()
	}
}

// stopWaitingForEcho keeps a transaction's echo from being waited for (by
// its labeled response, or a PING) when sync will not bring it back with
// its transaction ID; the request is still waited for.
func (s *Session) stopWaitingForEcho(txnID string) {
	s.releaseTxn(txnID)
	if resp := s.sentResp[txnID]; resp != nil {
		delete(s.sentResp, txnID)
		resp.Done()
	}
}

// sendContent sends a message into a room; target is what the client
// called it, for the error reply.
func (s *Session) sendContent(a *Attachment, out output, command string, roomID id.RoomID, target string, content *event.MessageEventContent, txnID string) {
	p := s.prepareSend(roomID, event.EventMessage, content, txnID)
	ok := s.roomRequest(a, out, command, roomID, func(ctx context.Context) func() {
		err := s.sendAccepted(ctx, p)
		return func() {
			if err != nil {
				s.dropTxn(txnID)
				if !s.tellEncrypted(a, out, command, target, err) {
					s.reply(a, out, command, ircreply.Numeric(irc.ERR_CANNOTSENDTOCHAN, target, "Cannot send: "+matrixErrorText(err)))
				}
			}
		}
	})
	if !ok {
		s.dropTxn(txnID)
		return
	}
	s.accept(a, p)
}

func (s *Session) cmdTopic(a *Attachment, out output, m *irc.Message) error {
	r := s.roomByChannel(m.Params[0])
	if r == nil {
		s.notOnChannel(a, out, "TOPIC", m.Params[0])
		return nil
	}
	if len(m.Params) < 2 {
		s.sendTopic(a, out, r, true)
		return nil
	}
	topic, roomID, channel := m.Params[1], r.id, r.channel
	if topic == r.topic {
		// The same topic again: the homeserver keeps it without asking
		// whether the sender may set it, so ask here, and confirm it as
		// IRC servers do, with no new event.
		if r.power != nil {
			if have, need := r.power.GetUserLevel(s.user), r.power.GetEventLevel(event.StateTopic); have < need {
				return ircreply.Numeric(irc.ERR_CHANOPRIVSNEEDED, channel, fmt.Sprintf("You need power level %d to change the topic; you have %d", need, have))
			}
		}
		out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, s.user), Command: "TOPIC", Params: []string{channel, topicLine(topic)}})
		return nil
	}
	s.roomRequest(a, out, "TOPIC", roomID, func(ctx context.Context) func() {
		_, err := s.cli.SendStateEvent(ctx, roomID, event.StateTopic, "", &event.TopicEventContent{Topic: topic})
		return func() {
			switch {
			case errors.Is(err, mautrix.MForbidden):
				s.logRefusal("TOPIC", err)
				s.reply(a, out, "TOPIC", ircreply.Numeric(irc.ERR_CHANOPRIVSNEEDED, channel, forbiddenText("change the topic", err)))
			case err != nil:
				s.reply(a, out, "TOPIC", ircreply.Fail("TOPIC", "CANNOT_CHANGE_TOPIC", channel, fmt.Sprintf("Cannot set the topic of %s: %s", channel, matrixErrorText(err))))
			}
			// On success the TOPIC comes through sync.
		}
	})
	return nil
}

func (s *Session) cmdNames(a *Attachment, out output, m *irc.Message) error {
	if len(m.Params) == 0 {
		out.SendNumeric(irc.RPL_ENDOFNAMES, "*", "End of /NAMES list")
		return nil
	}
	for _, name := range strings.Split(m.Params[0], ",") {
		if r := s.roomByChannel(name); r != nil {
			s.sendNames(a, out, r)
		} else {
			out.SendNumeric(irc.RPL_ENDOFNAMES, name, "End of /NAMES list")
		}
	}
	return nil
}

func (s *Session) cmdWho(a *Attachment, out output, m *irc.Message) error {
	mask := m.Param(0)
	if mask == "" {
		out.SendNumeric(irc.RPL_ENDOFWHO, "*", "End of WHO list")
		return nil
	}
	reply := s.sendWhoReply
	if fields, token, ok := parseWhox(m.Param(1)); ok {
		reply = func(a *Attachment, out output, r *room, user id.UserID) {
			s.sendWhoxReply(a, out, r, user, fields, token)
		}
	}
	if r := s.roomByChannel(mask); r != nil {
		s.withAllMembers(a, out, "WHO", r, func(r *room) {
			if r != nil {
				s.writeWho(a, out, r, reply)
			}
			out.SendNumeric(irc.RPL_ENDOFWHO, mask, "End of WHO list")
		})
		return nil
	}
	if strings.ContainsAny(mask, "*?") {
		s.writeWhoMask(a, out, mask, reply)
		out.SendNumeric(irc.RPL_ENDOFWHO, mask, "End of WHO list")
		return nil
	}
	if user, ok := s.userByNick(a, mask); ok {
		reply(a, out, nil, user)
	} else if user, ok := s.matrixUserNamed(mask); ok && !strings.HasPrefix(mask, "#") {
		// Nobody in a shared room: a user of the server, if they exist.
		s.request(a, out, "WHO", func(ctx context.Context) func() {
			_, err := s.cli.GetProfile(ctx, user)
			return func() {
				if err == nil {
					reply(a, out, nil, user)
				}
				out.SendNumeric(irc.RPL_ENDOFWHO, mask, "End of WHO list")
			}
		})
		return nil
	}
	out.SendNumeric(irc.RPL_ENDOFWHO, mask, "End of WHO list")
	return nil
}

// maxWhoMask is the most users one WHO with a mask lists.
const maxWhoMask = 500

// writeWhoMask sends a WHO reply for each user sharing a room with the
// account whose nick (or nick!user@host, for a mask with ! or @) matches
// mask: as on IRC, a mask finds only those one shares a channel with.
func (s *Session) writeWhoMask(a *Attachment, out output, mask string, reply func(*Attachment, output, *room, id.UserID)) {
	full := strings.ContainsAny(mask, "!@")
	seen := map[id.UserID]bool{}
	var users []id.UserID
	for _, r := range s.rooms {
		for user, mem := range r.members {
			if mem.membership != event.MembershipJoin || seen[user] {
				continue
			}
			seen[user] = true
			name := s.nickOf(a, user)
			if full {
				u, h := mapping.UserHost(user)
				name += "!" + u + "@" + h
			}
			if irctext.Match(mask, name) {
				users = append(users, user)
			}
		}
	}
	sortUsers(users)
	if len(users) > maxWhoMask {
		out.SendNotice(fmt.Sprintf("WHO %s matches %d users; listing the first %d: give a narrower mask", mask, len(users), maxWhoMask))
		users = users[:maxWhoMask]
	}
	for _, user := range users {
		reply(a, out, nil, user)
	}
}

// writeWho sends a WHO reply for each joined member of r.
func (s *Session) writeWho(a *Attachment, out output, r *room, reply func(*Attachment, output, *room, id.UserID)) {
	users := make([]id.UserID, 0, len(r.members))
	for user, mem := range r.members {
		if mem.membership == event.MembershipJoin {
			users = append(users, user)
		}
	}
	sortUsers(users)
	for _, user := range users {
		reply(a, out, r, user)
	}
}

func (s *Session) sendWhoReply(a *Attachment, out output, r *room, user id.UserID) {
	u, h := mapping.UserHost(user)
	channel, flags := s.whoChannelFlags(a, r, user)
	out.SendNumeric(irc.RPL_WHOREPLY, channel, u, h, a.client.ServerName(), s.nickOf(a, user), flags,
		"0 "+s.realName(user))
}

func (s *Session) whoChannelFlags(a *Attachment, r *room, user id.UserID) (channel, flags string) {
	channel, flags = "*", "H"
	if _, away := s.awayOf(user); away {
		flags = "G"
	}
	if r != nil {
		channel = r.channel
		flags += s.prefixesOf(a, r, user)
	}
	return channel, flags
}

// parseWhox reads WHOX's second parameter, "%fields[,token]".
func parseWhox(arg string) (fields, token string, ok bool) {
	rest, ok := strings.CutPrefix(arg, "%")
	if !ok {
		return "", "", false
	}
	fields, token, _ = strings.Cut(rest, ",")
	if len(token) > 3 {
		token = token[:3]
	}
	return fields, token, true
}

// sendWhoxReply is WHOX's 354: the requested fields in the order WHOX
// defines (t c u i h s n f d l a o r), whatever order they were asked in.
// The account is the Matrix ID.
func (s *Session) sendWhoxReply(a *Attachment, out output, r *room, user id.UserID, fields, token string) {
	u, h := mapping.UserHost(user)
	channel, flags := s.whoChannelFlags(a, r, user)
	var params []string
	for _, f := range "tcuihsnfdlaor" {
		if !strings.ContainsRune(fields, f) {
			continue
		}
		switch f {
		case 't':
			params = append(params, token)
		case 'c':
			params = append(params, channel)
		case 'u':
			params = append(params, u)
		case 'i':
			params = append(params, "255.255.255.255")
		case 'h':
			params = append(params, h)
		case 's':
			params = append(params, a.client.ServerName())
		case 'n':
			params = append(params, s.nickOf(a, user))
		case 'f':
			params = append(params, flags)
		case 'd':
			params = append(params, "0")
		case 'l':
			params = append(params, "0")
		case 'a':
			params = append(params, s.accountName(user))
		case 'o':
			params = append(params, "n/a")
		case 'r':
			params = append(params, s.realName(user))
		}
	}
	if len(params) == 0 {
		return
	}
	out.SendNumeric("354", params...)
}

// realName is the user's display name in any shared room, else the MXID.
func (s *Session) realName(user id.UserID) string {
	if user == s.user && s.ownName != "" {
		return s.ownName // as last set or seen, also without a room
	}
	if name := s.displayName(user); name != "" {
		return name
	}
	return user.String()
}

func (s *Session) cmdWhois(a *Attachment, out output, m *irc.Message) error {
	nick := m.Params[len(m.Params)-1]
	user, ok := s.userByNick(a, nick)
	if !ok {
		if user, ok = s.matrixUserNamed(nick); ok {
			s.whoisProfile(a, out, nick, user)
			return nil
		}
		return errNoSuchNickWhois(nick)
	}
	nick = s.nickOf(a, user)
	u, h := mapping.UserHost(user)
	out.SendNumeric(irc.RPL_WHOISUSER, nick, u, h, "*", s.realName(user))
	var channels []string
	for _, r := range s.rooms {
		if r.dm == "" && r.joined(user) && (a.lurk == nil || a.lurk.rooms[r.id] != nil) {
			channels = append(channels, s.prefixesOf(a, r, user)+r.channel)
		}
	}
	sortStrings(channels)
	for _, line := range joinLimited(channels, 400) {
		out.SendNumeric(irc.RPL_WHOISCHANNELS, nick, line)
	}
	out.SendNumeric(irc.RPL_WHOISSERVER, nick, a.client.ServerName(), "via Matrix homeserver "+h)
	if away, ok := s.awayOf(user); ok {
		out.SendNumeric(irc.RPL_AWAY, nick, away)
	}
	out.SendNumeric(rplWhoisAccount, nick, s.accountName(user), "is logged in as")
	out.SendNumeric(irc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
	return nil
}

func (s *Session) cmdNick(a *Attachment, out output, m *irc.Message) error {
	nick := m.Params[0]
	if nick == a.client.Nick() {
		return nil // no change, nothing to say
	}
	if holder, taken := s.byNick[irctext.Casefold(nick)]; taken && holder != s.user {
		return ircreply.Numeric(irc.ERR_NICKNAMEINUSE, nick, "Nickname is in use by "+holder.String())
	}
	if s.mgr.cfg.KeepClientNick {
		s.renameClient(a, out, nick)
		return nil
	}
	// The nick is the one others see: change the display name, whose
	// member events rename every client.
	s.request(a, out, "NICK", func(ctx context.Context) func() {
		err := s.cli.SetDisplayName(ctx, nick)
		return func() {
			if err != nil {
				out.SendNumeric(irc.ERR_ERRONEUSNICKNAME, nick, "The homeserver did not take the name: "+matrixErrorText(err))
			}
		}
	})
	return nil
}
