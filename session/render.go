package session

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/irctext"
	"github.com/mxircd/mxircd/mapping"
)

// Numerics that gopkg.in/irc.v4 does not export.
const (
	rplTopicWhoTime  = "333"
	rplWhoisAccount  = "330"
	rplChannelCreate = "329"
)

// prefixOf is the IRC source of lines from user, as client a sees it.
func (s *Session) prefixOf(a *Attachment, user id.UserID) *irc.Prefix {
	u, h := mapping.UserHost(user)
	return &irc.Prefix{Name: s.nickOf(a, user), User: u, Host: h}
}

// accountName is how clients see user's account (account-tag, 900, WHOIS,
// extended-join): short, like aliases, where short_aliases is on and the
// user is on matrix.server_name, so that the name is the login too.
func (s *Session) accountName(user id.UserID) string {
	if !s.mgr.cfg.ShortAliases {
		return string(user)
	}
	return mapping.AccountName(user, s.mgr.cfg.ServerName)
}

// UserHost is the user and host of the account's hostmask, as others see
// it (ircd's own lines about the client use it). Any goroutine.
func (a *Attachment) UserHost() (user, host string) { return mapping.UserHost(a.sess.user) }

// eventTags carries the event's time and ID; the connection drops the tags
// its client did not negotiate.
func (s *Session) eventTags(ev *event.Event) irc.Tags {
	tags := irc.Tags{"msgid": string(ev.ID), "account": s.accountName(ev.Sender)}
	if ev.Timestamp > 0 {
		tags["time"] = time.UnixMilli(ev.Timestamp).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return tags
}

// sendConnectBurst shows a freshly attached client every joined room.
func (s *Session) sendConnectBurst(a *Attachment, out output) {
	s.claimOwnNick(a, out)
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		if r.dm == "" {
			rooms = append(rooms, r)
		}
	}
	sort.Slice(rooms, func(i, j int) bool { return rooms[i].channel < rooms[j].channel })
	for _, r := range rooms {
		s.sendChannelBurst(a, out, r)
	}
	s.sendPendingInvites(a, out)
	s.clients[a] = true
}

// claimOwnNick gives a client the nick other users see the account under
// (unless the gateway keeps clients' own nicks), and renames a client whose
// nick a Matrix user already holds, so that every nick on the client's
// screen means one person.
func (s *Session) claimOwnNick(a *Attachment, out output) {
	nick := a.client.Nick()
	if own := s.accountNick(); own != "" && own != nick {
		s.renameClient(a, out, own)
		return
	}
	if _, taken := s.byNick[irctext.Casefold(nick)]; !taken {
		return
	}
	newNick := nick
	for {
		newNick += "_"
		if _, taken := s.byNick[irctext.Casefold(newNick)]; !taken {
			break
		}
	}
	s.renameClient(a, out, newNick)
	out.SendNotice("Your nick " + nick + " belongs to a Matrix user here; you are now " + newNick)
}

// accountNick is the nick other users see the account under: the first of
// its display name and its localpart that a client may hold and no Matrix
// user here holds. It is "" where clients keep their own nicks, or when
// neither fits.
func (s *Session) accountNick() string {
	nick := s.findAccountNick()
	s.ownNick.Store(&nick)
	return nick
}

func (s *Session) findAccountNick() string {
	if s.mgr.cfg.KeepClientNick {
		return ""
	}
	var candidates []string
	if nick := mapping.NickFromDisplayName(s.displayName(s.user)); nick != "" {
		candidates = append(candidates, nick)
	}
	candidates = append(candidates, mapping.NickCandidates(s.user)...)
	for _, c := range candidates {
		folded := irctext.Casefold(c)
		if len(c) > maxClientNick || strings.ContainsAny(c, ":!@*?,") || s.isServiceNick(c) || s.isGuestNick(folded) {
			continue // "name:server" is for Matrix users only
		}
		if holder, taken := s.byNick[folded]; taken && holder != s.user {
			continue
		}
		return c
	}
	return ""
}

// maxClientNick is ircd's NICKLEN, the longest nick a client may hold.
const maxClientNick = 64

// renameClients gives every attached client the account's nick, after its
// display name changed.
func (s *Session) renameClients() {
	own := s.accountNick()
	if own == "" {
		return
	}
	for a := range s.clients {
		if a.client.Nick() != own {
			s.renameClient(a, a.client, own)
		}
	}
}

func (s *Session) renameClient(a *Attachment, out output, nick string) {
	old := s.prefixOf(a, s.user)
	out.SendMessage(&irc.Message{Prefix: old, Command: "NICK", Params: []string{nick}})
	a.client.SetNick(nick)
	s.publishNicks()
}

// sendChannelBurst is what a client sees on joining a channel: JOIN, the
// topic and the names list.
func (s *Session) sendChannelBurst(a *Attachment, out output, r *room) {
	s.sendJoin(a, out, r, s.user)
	s.sendMarker(a, out, r)
	s.sendTopic(a, out, r, false)
	if !a.client.HasCap("draft/no-implicit-names") {
		s.sendNames(a, out, r)
	}
	if s.mgr.encrypted.has(r.id) && s.olm.Load() == nil {
		out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: a.client.ServerName()}, Command: "NOTICE", Params: []string{r.channel,
			r.channel + " is end-to-end encrypted, and encryption is off for your account on this gateway: its messages show as notices and nothing you type here is sent"}})
	}
}

// prefixesOf is a member's status prefix as client a wants it: every one
// with multi-prefix, the highest otherwise.
func (s *Session) prefixesOf(a *Attachment, r *room, user id.UserID) string {
	if a.client.HasCap("multi-prefix") {
		return mapping.MemberPrefixes(r.power, user, s.opLevel())
	}
	return mapping.MemberPrefix(r.power, user, s.opLevel())
}

func (s *Session) sendTopic(a *Attachment, out output, r *room, replyIfNone bool) {
	if r.topic == "" {
		if replyIfNone {
			out.SendNumeric(irc.RPL_NOTOPIC, r.channel, "No topic is set")
		}
		return
	}
	out.SendNumeric(irc.RPL_TOPIC, r.channel, topicLine(r.topic))
	if r.topicBy != "" {
		out.SendNumeric(rplTopicWhoTime, r.channel, s.prefixOf(a, r.topicBy).String(), strconv.FormatInt(r.topicAt/1000, 10))
	}
}

// topicLine makes a multi-line Matrix topic fit on one IRC line.
func topicLine(topic string) string {
	return strings.Join(strings.Fields(topic), " ")
}

// sendNames sends 353 lines that fit the line limit, then 366; for a
// room whose member list is partial, once the full list has come.
func (s *Session) sendNames(a *Attachment, out output, r *room) {
	channel := r.channel
	s.withAllMembers(a, out, "NAMES", r, func(r *room) {
		if r == nil {
			out.SendNumeric(irc.RPL_ENDOFNAMES, channel, "End of /NAMES list")
			return
		}
		s.writeNames(a, out, r)
	})
}

func (s *Session) writeNames(a *Attachment, out output, r *room) {
	names := make([]string, 0, len(r.members))
	for user, m := range r.members {
		if m.membership == event.MembershipJoin {
			name := s.nickOf(a, user)
			if a.client.HasCap("userhost-in-names") {
				name = s.prefixOf(a, user).String()
			}
			names = append(names, s.prefixesOf(a, r, user)+name)
		}
	}
	sort.Strings(names)
	// "@" for a secret channel: one known to be out of the room directory
	// (+s, directory.go); "=" otherwise, and while that is not known.
	symbol := "="
	if listed, known := s.listedOf(r.id); known && !listed {
		symbol = "@"
	}
	// ":server 353 nick = #chan :" plus CRLF, with room to spare.
	budget := 512 - 2 - len(a.client.ServerName()) - len(a.client.Nick()) - len(r.channel) - 16
	var line []string
	size := 0
	flush := func() {
		if len(line) > 0 {
			out.SendNumeric(irc.RPL_NAMREPLY, symbol, r.channel, strings.Join(line, " "))
			line, size = line[:0], 0
		}
	}
	for _, n := range names {
		if size+len(n)+1 > budget {
			flush()
		}
		line = append(line, n)
		size += len(n) + 1
	}
	flush()
	out.SendNumeric(irc.RPL_ENDOFNAMES, r.channel, "End of /NAMES list")
}

func (s *Session) sendJoin(a *Attachment, out output, r *room, user id.UserID) {
	params := []string{r.channel}
	if a.client.HasCap("extended-join") {
		params = append(params, s.accountName(user), s.realName(user))
	}
	out.SendMessage(&irc.Message{Tags: irc.Tags{"account": s.accountName(user)}, Prefix: s.prefixOf(a, user), Command: "JOIN", Params: params})
}

func (s *Session) sendPart(a *Attachment, out output, r *room, user id.UserID, reason string) {
	params := []string{r.channel}
	if reason != "" {
		params = append(params, topicLine(reason))
	}
	out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, user), Command: "PART", Params: params})
}

func (s *Session) sendKick(a *Attachment, out output, r *room, by, user id.UserID, reason string) {
	if reason == "" {
		reason = s.nickOf(a, by)
	}
	out.SendMessage(&irc.Message{Prefix: s.prefixOf(a, by), Command: "KICK",
		Params: []string{r.channel, s.nickOf(a, user), topicLine(reason)}})
}

func (s *Session) sendTopicChange(a *Attachment, out output, r *room, ev *event.Event) {
	out.SendMessage(&irc.Message{Tags: s.eventTags(ev), Prefix: s.prefixOf(a, ev.Sender), Command: "TOPIC",
		Params: []string{r.channel, topicLine(r.topic)}})
}

// sendRoomMessage shows one m.room.message, split into lines that fit.
func (s *Session) sendRoomMessage(a *Attachment, out output, r *room, ev *event.Event) {
	content := ev.Content.AsMessage()
	msg, ok := mapping.MessageToIRC(content, s.usersFor(a))
	if !ok {
		return
	}
	if link := s.mediaLink(content); link != "" {
		msg.Text += " " + link
	}
	if root := content.RelatesTo.GetThreadParent(); root != "" {
		if a.client.HasCap("message-tags") {
			reply := content.RelatesTo.GetNonFallbackReplyTo()
			if reply == "" {
				reply = root
			}
			s.sendTaggedLines(a, out, r, ev, msg.Command, msg.Action, msg.Text, irc.Tags{tagReply: string(reply), tagThread: string(root)})
			return
		}
		s.sendLines(a, out, r, ev, msg.Command, msg.Action, s.threadContext(a, r, content)+msg.Text)
		return
	}
	if reply := content.RelatesTo.GetReplyTo(); reply != "" && content.RelatesTo.GetReplaceID() == "" && a.client.HasCap("message-tags") {
		// The client may show the reply itself, from the tag; unless the
		// account said it does (TAGSONLY), the quote goes along too.
		text := msg.Text
		if a.fallbackText() {
			text = s.replyContext(a, r, content) + text
		}
		s.sendTaggedLines(a, out, r, ev, msg.Command, msg.Action, text, irc.Tags{tagReply: string(reply)})
		return
	}
	s.sendLines(a, out, r, ev, msg.Command, msg.Action, s.replyContext(a, r, content)+msg.Text)
}

func (s *Session) sendInvite(a *Attachment, out output, in *invite) {
	out.SendMessage(&irc.Message{Tags: irc.Tags{"account": s.accountName(in.inviter)}, Prefix: s.prefixOf(a, in.inviter), Command: "INVITE",
		Params: []string{a.client.Nick(), in.channel}})
}

// mediaLink is where a client can open a message's file: a signed gateway
// link when the gateway serves media, else the mxc:// URI. Encrypted files
// have no plain URL and get none.
func (s *Session) mediaLink(content *event.MessageEventContent) string {
	if content.URL == "" {
		return ""
	}
	mxc, err := content.URL.Parse()
	if err != nil {
		return ""
	}
	if s.mgr.cfg.MediaLink != nil {
		filename := content.FileName
		if filename == "" {
			filename = content.Body
		}
		if link := s.mgr.cfg.MediaLink(s.user, mxc, filename); link != "" {
			return link
		}
	}
	return mxc.String()
}
