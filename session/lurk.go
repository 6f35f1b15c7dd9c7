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
	"github.com/mxircd/mxircd/store"
)

// Lurkers are IRC connections without a login that read public rooms.
// All of them are served by one ordinary Session, the shared session of
// a guest account (registered with kind=guest once, and kept) or of an
// account the operator names. A lurker is an Attachment of that session
// with a lurkView, and is not among the session's clients: every
// broadcast leaves it out, except broadcastIn for a room it reads. So a
// room read by 2,000 lurkers is one membership of one account, and its
// lines go to each of them; lurkers have no cursors, no catch-up and no
// connect burst, see the room's real members (the shared account's own
// membership shown as the lurker itself), and can say nothing: every
// command that would reach Matrix is refused with a line saying how to
// log in. The shared session stays in the rooms lurkers joined.

// GuestConfig is how lurkers are served.
type GuestConfig struct {
	// Account and Password name the account lurkers read through; empty
	// registers a guest account (kind=guest) on the homeserver once and
	// keeps it in the store.
	Account, Password string
	// HistoryOnJoin is how many recent messages a lurker is shown on
	// joining a channel (0: none).
	HistoryOnJoin int
	// MaxChannels is how many channels one lurker may read at once
	// (default 20).
	MaxChannels int
}

// guestAccountSetting is the store setting naming the registered guest
// account.
const guestAccountSetting = "guest_account"

// lurkView is what one lurker reads. Owner goroutine only.
type lurkView struct {
	rooms map[id.RoomID]*lurkRoom
}

// lurkRoom is one channel a lurker reads. While its history on join is
// loaded, the room's live lines for the lurker wait in held, so that
// they come after the history.
type lurkRoom struct {
	loading bool
	held    []heldLines
	dropped int // lines not held, the limit reached
}

// heldLines renders one broadcast for a lurker whose room is loading;
// event is the event it shows, "" if none.
type heldLines struct {
	event  id.EventID
	render func()
}

// maxHeld bounds the broadcasts held for one lurker's room.
const maxHeld = 256

// lurkEndEvent asks the owner to part a lurker that has logged in from
// its channels and forget it; done is closed once the lines are queued.
type lurkEndEvent struct {
	a      *Attachment
	reason string
	done   chan struct{}
}

// Lurk attaches a connection without a login, read-only, to the shared
// session, starting it (and registering the guest account) if needed.
// Called on the client's reader goroutine; bounded by ctx.
func (m *Manager) Lurk(ctx context.Context, client Client) (*Attachment, error) {
	for fresh := false; ; fresh = true {
		creds, err := m.guestCredentials(ctx, fresh)
		if err != nil {
			return nil, err
		}
		a, err := m.Start(ctx, creds, client)
		if errors.Is(err, ErrInvalidCredentials) && m.cfg.Guests.Account == "" && !fresh {
			// The homeserver forgot the stored guest: register another.
			m.log.Info("the stored guest account was refused; registering a new one", "err", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		a.lurk = &lurkView{rooms: map[id.RoomID]*lurkRoom{}}
		a.monitor = nil
		m.lurking.Add(1)
		return a, nil
	}
}

// guestCredentials are those of the shared session: the configured
// account's, else the stored guest account's, else (or with fresh) a
// newly registered guest's.
func (m *Manager) guestCredentials(ctx context.Context, fresh bool) (*Credentials, error) {
	g := m.cfg.Guests
	if g.Account != "" {
		creds, err := m.auth.Password(ctx, g.Account, g.Password, "")
		if err != nil {
			return nil, fmt.Errorf("the guests' account %s cannot log in: %w", g.Account, err)
		}
		return creds, nil
	}
	m.guestMu.Lock()
	defer m.guestMu.Unlock()
	if fresh {
		m.guestAcct = nil
	}
	if m.guestAcct == nil && !fresh {
		acct, err := m.storedGuest(ctx)
		if err != nil {
			return nil, err
		}
		m.guestAcct = acct
	}
	if m.guestAcct == nil {
		acct, err := m.registerGuest(ctx)
		if err != nil {
			return nil, err
		}
		m.guestAcct = acct
	}
	user := m.guestAcct.UserID
	m.mu.Lock()
	m.guestUser = user
	m.mu.Unlock()
	// A copy: Start may change the account it is given.
	acct := *m.guestAcct
	return &Credentials{User: user, Account: &acct, stored: true, unlock: m.lockUser(user)}, nil
}

// storedGuest is the guest account registered before, nil if none.
func (m *Manager) storedGuest(ctx context.Context) (*store.Account, error) {
	stored, err := m.store.InitSetting(ctx, guestAccountSetting, "")
	if err != nil || stored == "" {
		return nil, err
	}
	acct, err := m.store.Account(ctx, id.UserID(stored))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case acct.AccessToken == "":
		return nil, nil
	}
	return acct, nil
}

// registerGuest registers a guest account on the homeserver and keeps it.
func (m *Manager) registerGuest(ctx context.Context) (*store.Account, error) {
	hs := m.cfg.Homeserver
	if hs == "" {
		var err error
		if hs, err = homeserverFor(ctx, &m.cfg, id.NewUserID("guest", m.cfg.ServerName)); err != nil {
			return nil, err
		}
	}
	cli, err := newClient(&m.cfg, hs, "", "")
	if err != nil {
		return nil, err
	}
	resp, _, err := cli.RegisterGuest(ctx, &mautrix.ReqRegister[any]{InitialDeviceDisplayName: m.cfg.DeviceName})
	if err != nil {
		return nil, fmt.Errorf("the homeserver did not register a guest account: %s", matrixErrorText(err))
	}
	off := false // the session ends with its last lurker
	acct := &store.Account{UserID: resp.UserID, Homeserver: hs, DeviceID: resp.DeviceID.String(),
		AccessToken: resp.AccessToken, AlwaysOn: &off}
	if err := m.store.PutAccount(ctx, acct); err != nil {
		return nil, fmt.Errorf("saving the guest account: %w", err)
	}
	if err := m.store.PutSetting(ctx, guestAccountSetting, string(acct.UserID)); err != nil {
		return nil, fmt.Errorf("saving the guest account: %w", err)
	}
	m.log.Info("registered the guests' account", "user", resp.UserID, "device", resp.DeviceID)
	return acct, nil
}

// EndLurk parts the lurker from its channels and detaches it; it returns
// once the PART lines are queued. Client's reader goroutine.
func (a *Attachment) EndLurk(reason string) {
	done := make(chan struct{})
	if a.sess.post(lurkEndEvent{a: a, reason: reason, done: done}) {
		select {
		case <-done:
		case <-a.sess.done:
		}
	}
	a.sess.mgr.lurking.Add(-1)
	a.sess.mgr.release(a.sess)
}

// lurkAttach starts serving a lurker; it has no burst. Owner goroutine.
func (s *Session) lurkAttach(a *Attachment) {
	if s.lurkAll == nil {
		s.lurkAll = map[*Attachment]bool{}
		s.lurkers = map[id.RoomID]map[*Attachment]bool{}
		s.lurkWaiting = map[id.RoomID][]*Attachment{}
	}
	s.lurkAll[a] = true
}

// lurkDetach forgets a lurker; with a reason, it is told it parts each of
// its channels. Owner goroutine.
func (s *Session) lurkDetach(a *Attachment, reason string) {
	if !s.lurkAll[a] {
		return
	}
	for roomID := range a.lurk.rooms {
		if r := s.rooms[roomID]; r != nil && reason != "" {
			s.sendPart(a, a.client, r, s.user, reason)
		}
		s.lurkLeave(a, roomID)
	}
	for roomID, waiting := range s.lurkWaiting {
		for i, w := range waiting {
			if w == a {
				s.lurkWaiting[roomID] = append(waiting[:i], waiting[i+1:]...)
				break
			}
		}
		if len(s.lurkWaiting[roomID]) == 0 {
			delete(s.lurkWaiting, roomID)
		}
	}
	delete(s.lurkAll, a)
}

func (s *Session) lurkLeave(a *Attachment, roomID id.RoomID) {
	delete(a.lurk.rooms, roomID)
	if set := s.lurkers[roomID]; set != nil {
		delete(set, a)
		if len(set) == 0 {
			delete(s.lurkers, roomID)
		}
	}
}

// broadcastIn is broadcast, and also renders f for the lurkers reading r
// (a lurker whose history of r is loading gets it afterwards); evID is
// the event the lines show, if any.
func (s *Session) broadcastIn(r *room, evID id.EventID, to audience, f func(a *Attachment, out output)) {
	s.broadcast(to, f)
	var shared []*renderedLines
	for a := range s.lurkers[r.id] {
		out := to(a, true)
		if out == nil {
			continue
		}
		lr := a.lurk.rooms[r.id]
		if lr.loading {
			if len(lr.held) < maxHeld {
				lr.held = append(lr.held, heldLines{event: evID, render: func() { f(a, out) }})
			} else {
				lr.dropped++
			}
			continue
		}
		if any(out) != any(a.client) {
			f(a, out) // a labeled response or a past event's lines: its own
			continue
		}
		if rl := fittingLines(shared, a.client); rl != nil {
			rl.sendTo(a.client)
			continue
		}
		if rl := renderShared(a, f); rl != nil {
			shared = append(shared, rl)
		}
	}
}

// Lurkers of a room mostly see the same lines: the lines rendered for one
// go to every other whose capabilities answer alike, unless they name the
// lurker itself (its nick, in its own JOIN or a mention of the shared
// account), so a message to thousands of lurkers is rendered a few times,
// not thousands. What a rendering depends on is found by watching it: the
// capabilities it asked about, and the nick.

// renderedLines are the lines one rendering made, and the capabilities
// it asked the client about, with the answers.
type renderedLines struct {
	caps map[string]bool
	msgs []*irc.Message
}

// fittingLines is the rendering in shared that c would get too, if any.
func fittingLines(shared []*renderedLines, c Client) *renderedLines {
next:
	for _, rl := range shared {
		for name, v := range rl.caps {
			if c.HasCap(name) != v {
				continue next
			}
		}
		return rl
	}
	return nil
}

func (rl *renderedLines) sendTo(c Client) {
	for _, m := range rl.msgs {
		c.SendMessage(m) // the connection only reads the line
	}
}

// renderShared renders f for lurker a, sends the lines to it, and returns
// them for other lurkers unless they name a itself.
func renderShared(a *Attachment, f func(a *Attachment, out output)) *renderedLines {
	rec := &capWatch{Client: a.client, caps: map[string]bool{}}
	watched := *a
	watched.client = rec
	out := &recordOutput{conn: rec}
	f(&watched, out)
	nick := a.client.Nick()
	own := false
	for _, m := range out.msgs {
		a.client.SendMessage(m)
		if m.Prefix != nil && m.Prefix.Name == nick {
			own = true
		}
		for _, p := range m.Params {
			if strings.Contains(p, nick) {
				own = true
			}
		}
	}
	if own {
		return nil
	}
	return &renderedLines{caps: rec.caps, msgs: out.msgs}
}

// capWatch is a client that notes the capabilities asked about.
type capWatch struct {
	Client
	caps map[string]bool
}

func (c *capWatch) HasCap(name string) bool {
	v := c.Client.HasCap(name)
	c.caps[name] = v
	return v
}

// recordOutput keeps the lines of a rendering.
type recordOutput struct {
	conn Client
	msgs []*irc.Message
}

func (o *recordOutput) SendMessage(m *irc.Message) { o.msgs = append(o.msgs, m) }

func (o *recordOutput) SendNumeric(code string, params ...string) {
	o.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: o.conn.ServerName()}, Command: code, Params: append([]string{o.conn.Nick()}, params...)})
}

func (o *recordOutput) SendNotice(text string) {
	o.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: o.conn.ServerName()}, Command: "NOTICE", Params: []string{o.conn.Nick(), text}})
}

// broadcastToUsersLurkers is broadcast, and also renders f for the
// lurkers reading a room user is in (a nick change).
func (s *Session) broadcastToUsersLurkers(user id.UserID, to audience, f func(a *Attachment, out output)) {
	s.broadcast(to, f)
	done := map[*Attachment]bool{}
	for roomID, set := range s.lurkers {
		if r := s.rooms[roomID]; r == nil || !r.joined(user) {
			continue
		}
		for a := range set {
			if out := to(a, true); out != nil && !done[a] {
				done[a] = true
				f(a, out)
			}
		}
	}
}

// isGuestNick says whether a folded nick has the form of lurkers' nicks,
// which no Matrix user is given.
func (s *Session) isGuestNick(folded string) bool {
	rest, ok := strings.CutPrefix(folded, irctext.Casefold(guestNickPrefix))
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// guestNickPrefix is ircd.GuestNickPrefix (session does not import ircd).
const guestNickPrefix = "Guest"

// lurkable says whether lurkers may read a room: its join rule is public
// or its history world-readable.
func lurkable(r *room) bool {
	return r.dm == "" && (r.joinRule == event.JoinRulePublic || r.history == event.HistoryVisibilityWorldReadable)
}

// loginFirst is the reply to what a lurker may not do.
func (s *Session) loginFirst(command, target, what string) error {
	text := fmt.Sprintf("You are reading as a guest and cannot %s. Log in to talk: /msg %s IDENTIFY <Matrix ID> <password>, or SASL PLAIN",
		what, s.mgr.cfg.ServiceNick)
	if target != "" && strings.ContainsRune("#!", rune(target[0])) && (command == "PRIVMSG" || command == "NOTICE" || command == "TAGMSG") {
		return ircreply.Numeric(irc.ERR_CANNOTSENDTOCHAN, target, text)
	}
	return ircreply.Fail(command, "ACCOUNT_REQUIRED", target, text)
}

// lurkCommand is a lurker's command table: reading only. Owner goroutine.
func (s *Session) lurkCommand(a *Attachment, out output, m *irc.Message) error {
	if cmd, ok := commands[m.Command]; ok && len(m.Params) < cmd.minParams {
		return ircreply.Numeric(irc.ERR_NEEDMOREPARAMS, m.Command, "Not enough parameters")
	}
	switch m.Command {
	case "JOIN":
		return s.lurkJoin(a, out, m)
	case "PART":
		return s.lurkPart(a, out, m)
	case "NAMES", "WHO":
		if err := s.lurkReads(a, m.Param(0)); err != nil {
			return err
		}
		return commands[m.Command].run(s, a, out, m)
	case "TOPIC":
		if len(m.Params) > 1 {
			return s.loginFirst(m.Command, m.Params[0], "change the topic")
		}
		if err := s.lurkReads(a, m.Params[0]); err != nil {
			return err
		}
		return s.cmdTopic(a, out, m)
	case "MODE":
		// Some clients ask for the ban list on joining ("MODE #c b"):
		// a question, not a change; mxircd keeps no list to show.
		banList := len(m.Params) == 2 && strings.TrimPrefix(m.Params[1], "+") == "b"
		if len(m.Params) > 1 && !banList {
			return s.loginFirst(m.Command, m.Params[0], "change modes")
		}
		if err := s.lurkReads(a, m.Params[0]); err != nil {
			return err
		}
		if banList {
			out.SendNumeric(irc.RPL_ENDOFBANLIST, m.Params[0], "End of channel ban list")
			return nil
		}
		return s.cmdMode(a, out, m)
	case "WHOIS", "WHOWAS", "LIST":
		return commands[m.Command].run(s, a, out, m)
	case "PRIVMSG", "NOTICE", "TAGMSG":
		return s.loginFirst(m.Command, m.Param(0), "send messages")
	case "NICK":
		return s.loginFirst(m.Command, "", "change your nick")
	case "CHATHISTORY":
		return s.loginFirst(m.Command, "", "read history beyond what JOIN shows")
	}
	return s.loginFirst(m.Command, "", "use "+m.Command)
}

// lurkReads checks that every channel in a comma-separated list is one
// the lurker reads; names that are not channels (WHO nick) pass.
func (s *Session) lurkReads(a *Attachment, names string) error {
	for _, name := range strings.Split(names, ",") {
		if name == "" || !strings.ContainsRune("#!", rune(name[0])) {
			continue
		}
		if r := s.roomByChannel(name); r == nil || a.lurk.rooms[r.id] == nil {
			return ircreply.Numeric(irc.ERR_NOTONCHANNEL, name, "You're not on that channel: JOIN it to read it")
		}
	}
	return nil
}

// lurkJoin joins a lurker to public channels: at once when the shared
// session is in the room, else after it has joined. It never creates a
// room.
func (s *Session) lurkJoin(a *Attachment, out output, m *irc.Message) error {
	for _, name := range strings.Split(m.Params[0], ",") {
		if name == "" {
			continue
		}
		if r := s.roomByChannel(name); r != nil {
			s.lurkEnter(a, out, r, name)
			continue
		}
		if err := s.lurkRoomLeft(a, name); err != nil {
			s.reply(a, out, "JOIN", err)
			continue
		}
		target, ok := mapping.ParseChannel(name, s.user.Homeserver())
		if !ok {
			s.reply(a, out, "JOIN", ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel: use #alias:server or !roomid:server"))
			continue
		}
		s.joinsInFlight++
		ok = s.request(a, out, "JOIN", func(ctx context.Context) func() {
			roomID, err := s.lurkJoinTarget(ctx, target)
			return func() {
				requested := string(target.Alias)
				if target.RoomID != "" {
					requested = string(target.RoomID)
				}
				s.joinDone(roomID, requested, nil, nil)
				if err != nil {
					s.reply(a, out, "JOIN", lurkJoinError(name, err))
					return
				}
				s.lurkJoined(a, out, roomID, name)
			}
		})
		if !ok {
			s.joinsInFlight--
		}
	}
	return nil
}

// lurkRoomLeft refuses a JOIN beyond the lurker's channel limit.
func (s *Session) lurkRoomLeft(a *Attachment, name string) error {
	if max := s.mgr.cfg.Guests.MaxChannels; len(a.lurk.rooms) >= max {
		return ircreply.Numeric(irc.ERR_TOOMANYCHANNELS, name,
			fmt.Sprintf("You are reading %d channels, the most a guest may; PART one first, or log in", max))
	}
	return nil
}

// lurkJoinTarget has the shared session join a room by ID or alias.
// Request worker.
func (s *Session) lurkJoinTarget(ctx context.Context, t mapping.RoomTarget) (id.RoomID, error) {
	var resp *mautrix.RespJoinRoom
	var err error
	if t.RoomID != "" {
		resp, err = s.cli.JoinRoom(ctx, t.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{t.Server}})
	} else {
		resp, err = s.cli.JoinRoom(ctx, t.Alias.String(), nil)
	}
	if err != nil {
		return "", err
	}
	return resp.RoomID, nil
}

// errGuestAccessForbidden is the homeserver refusing a guest a room that
// does not let guests in (m.room.guest_access); mautrix has no constant.
var errGuestAccessForbidden = mautrix.RespError{ErrCode: "M_GUEST_ACCESS_FORBIDDEN"}

// lurkJoinError is the reply to a lurker's JOIN the homeserver refused.
func lurkJoinError(channel string, err error) error {
	text := matrixErrorText(err)
	switch {
	case errors.Is(err, mautrix.MNotFound):
		return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, channel, "No such channel: "+text)
	case errors.Is(err, mautrix.MForbidden), errors.Is(err, errGuestAccessForbidden):
		return ircreply.Numeric(irc.ERR_INVITEONLYCHAN, channel,
			"Cannot join channel: guests may read only public rooms that let guests in ("+text+"); log in to join it")
	}
	return ircreply.Numeric(irc.ERR_NOSUCHCHANNEL, channel, "Cannot join channel: "+text)
}

// lurkJoined puts a lurker in a room the shared session has just joined,
// now or once the room comes through sync.
func (s *Session) lurkJoined(a *Attachment, out output, roomID id.RoomID, name string) {
	if !s.lurkAll[a] {
		return
	}
	if r := s.rooms[roomID]; r != nil {
		s.lurkEnter(a, out, r, name)
		return
	}
	s.lurkWaiting[roomID] = append(s.lurkWaiting[roomID], a)
}

// admitWaitingLurkers puts the lurkers waiting for a newly announced room
// in it. Owner goroutine.
func (s *Session) admitWaitingLurkers(r *room) {
	waiting := s.lurkWaiting[r.id]
	delete(s.lurkWaiting, r.id)
	for _, a := range waiting {
		if s.lurkAll[a] {
			s.lurkEnter(a, a.client, r, r.channel)
		}
	}
}

// lurkEnter shows a lurker a public room: the JOIN burst, then its
// recent messages (HistoryOnJoin), then what came meanwhile.
func (s *Session) lurkEnter(a *Attachment, out output, r *room, name string) {
	if a.lurk.rooms[r.id] != nil {
		return
	}
	if !lurkable(r) {
		s.reply(a, out, "JOIN", ircreply.Numeric(irc.ERR_INVITEONLYCHAN, name,
			"Cannot join channel: guests may read only public rooms (public join rule, or world-readable history); log in to join it"))
		return
	}
	if err := s.lurkRoomLeft(a, name); err != nil {
		s.reply(a, out, "JOIN", err)
		return
	}
	lr := &lurkRoom{}
	a.lurk.rooms[r.id] = lr
	set := s.lurkers[r.id]
	if set == nil {
		set = map[*Attachment]bool{}
		s.lurkers[r.id] = set
	}
	set[a] = true
	s.sendChannelBurst(a, out, r)
	if n := s.mgr.cfg.Guests.HistoryOnJoin; n > 0 {
		lr.loading = true
		s.lurkHistory(a, r, lr, n)
	}
}

// lurkHistory reads a room's last n messages for a lurker off the owner.
func (s *Session) lurkHistory(a *Attachment, r *room, lr *lurkRoom, n int) {
	roomID := r.id
	req := &mapping.HistoryRequest{Sub: "LATEST", Target: r.channel, From: mapping.HistoryRef{Star: true}, Limit: n}
	ok := s.enqueueSide(func(ctx context.Context) func() {
		events, err := s.queryHistory(ctx, roomID, req, messageTypes)
		return func() { s.lurkHistoryDone(a, roomID, lr, events, err) }
	})
	if !ok {
		lr.loading = false
	}
}

// lurkHistoryDone shows a lurker a room's history, then the lines held
// while it loaded, less the events the history already showed.
func (s *Session) lurkHistoryDone(a *Attachment, roomID id.RoomID, lr *lurkRoom, events []store.StoredEvent, err error) {
	if !s.lurkAll[a] || a.lurk.rooms[roomID] != lr {
		return // parted or gone meanwhile
	}
	lr.loading = false
	held, dropped := lr.held, lr.dropped
	lr.held, lr.dropped = nil, 0
	r := s.rooms[roomID]
	if r == nil {
		return
	}
	if err != nil {
		s.log.Info("could not load a lurker's history on join", "room", roomID, "err", err)
	}
	shown := map[id.EventID]bool{}
	for _, se := range events {
		if ev, ok := decodeStored(se); ok {
			shown[ev.ID] = true
			s.renderHistory(a, a.client, r, ev, false, "")
		}
	}
	for _, h := range held {
		if h.event == "" || !shown[h.event] {
			h.render()
		}
	}
	if dropped > 0 {
		a.client.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "NOTICE",
			Params: []string{r.channel, fmt.Sprintf("%d events arrived while the history loaded and are not shown", dropped)}})
	}
}

// lurkPart stops a lurker reading channels; the shared session stays in
// the rooms.
func (s *Session) lurkPart(a *Attachment, out output, m *irc.Message) error {
	for _, name := range strings.Split(m.Params[0], ",") {
		if name == "" {
			continue
		}
		r := s.roomByChannel(name)
		if r == nil || a.lurk.rooms[r.id] == nil {
			s.reply(a, out, "PART", ircreply.Numeric(irc.ERR_NOTONCHANNEL, name, "You're not on that channel"))
			continue
		}
		s.sendPart(a, out, r, s.user, m.Param(1))
		s.lurkLeave(a, r.id)
	}
	return nil
}

// lurkRecheck parts the lurkers of a room that is no longer public (its
// join rule or history visibility changed). Owner goroutine.
func (s *Session) lurkRecheck(r *room) {
	if lurkable(r) {
		return
	}
	for a := range s.lurkers[r.id] {
		s.sendPart(a, a.client, r, s.user, "This room is no longer public; log in to read it")
		delete(a.lurk.rooms, r.id)
	}
	delete(s.lurkers, r.id)
}

// lurkRoomGone forgets the lurkers of a room the shared session has left
// (they have been shown the PART or KICK). Owner goroutine.
func (s *Session) lurkRoomGone(r *room) {
	for a := range s.lurkers[r.id] {
		delete(a.lurk.rooms, r.id)
	}
	delete(s.lurkers, r.id)
}
