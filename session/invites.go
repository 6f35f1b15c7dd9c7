package session

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
)

// Invite spam: an invitation to a direct chat is accepted by itself only
// when it comes from someone the account already shares a room with
// (Config.AcceptDMInvites); any other invitation is one INVITE line, which
// JOIN accepts and the service's DECLINE refuses (DECLINE … IGNORE also
// ignores the sender). One sender's invitations beyond maxShownInvites
// waiting at once are not shown line by line but summed up in one NOTICE
// per sync.

// The values of Config.AcceptDMInvites.
const (
	AcceptDMInvitesKnown = "known" // from someone the account shares a joined room with (the default)
	AcceptDMInvitesAll   = "all"
	AcceptDMInvitesNone  = "none"
)

// maxShownInvites is how many waiting invitations of one sender are shown
// as INVITE lines.
const maxShownInvites = 3

// acceptsDMInviteFrom says whether a direct chat invitation from inviter
// (to room) is accepted without asking. Owner goroutine.
func (s *Session) acceptsDMInviteFrom(inviter id.UserID, room id.RoomID) bool {
	switch s.mgr.cfg.AcceptDMInvites {
	case AcceptDMInvitesAll:
		return true
	case AcceptDMInvitesNone:
		return false
	}
	for roomID, r := range s.rooms {
		if roomID != room && r.joined(inviter) {
			return true
		}
	}
	return false
}

// invitesFrom counts the account's waiting invitations from inviter.
func (s *Session) invitesFrom(inviter id.UserID) int {
	n := 0
	for _, in := range s.invites {
		if in.inviter == inviter {
			n++
		}
	}
	return n
}

// showInvite shows a new waiting invitation (already in s.invites) to the
// clients with their burst, unless its sender has more than
// maxShownInvites waiting: then it counts toward the sync's summary.
func (s *Session) showInvite(in *invite) {
	if s.invitesFrom(in.inviter) > maxShownInvites {
		if s.inviteFlood == nil {
			s.inviteFlood = map[id.UserID]int{}
		}
		s.inviteFlood[in.inviter]++
		return
	}
	s.broadcast(attached, func(a *Attachment, out output) { s.sendInvite(a, out, in) })
}

// summariseInvites sends one NOTICE per sender whose invitations were
// held back in this sync. Owner goroutine, at the end of a sync.
func (s *Session) summariseInvites() {
	if len(s.inviteFlood) == 0 {
		return
	}
	flood := s.inviteFlood
	s.inviteFlood = nil
	for _, inviter := range sortedInviters(flood) {
		n := flood[inviter]
		s.broadcast(attached, func(a *Attachment, out output) {
			out.SendNotice(s.floodText(a, inviter, n))
		})
	}
}

func sortedInviters(m map[id.UserID]int) []id.UserID {
	users := make([]id.UserID, 0, len(m))
	for u := range m {
		users = append(users, u)
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	return users
}

func (s *Session) floodText(a *Attachment, inviter id.UserID, n int) string {
	service := s.mgr.cfg.ServiceNick
	return fmt.Sprintf("%s (%s) sent you %d more invitation(s), not shown one by one (%d waiting from them in all). /msg %s INVITES lists them; /msg %s DECLINE %s refuses them all (add IGNORE to also ignore %s).",
		s.nickOf(a, inviter), inviter, n, s.invitesFrom(inviter), service, service, inviter, inviter)
}

// sendPendingInvites shows a client attaching the invitations waiting,
// at most maxShownInvites per sender, and a NOTICE for the rest.
func (s *Session) sendPendingInvites(a *Attachment, out output) {
	byInviter := map[id.UserID][]*invite{}
	for _, in := range s.invites {
		byInviter[in.inviter] = append(byInviter[in.inviter], in)
	}
	counts := map[id.UserID]int{}
	for inviter, ins := range byInviter {
		counts[inviter] = len(ins)
	}
	for _, inviter := range sortedInviters(counts) {
		ins := byInviter[inviter]
		sort.Slice(ins, func(i, j int) bool { return ins[i].roomID < ins[j].roomID })
		for i, in := range ins {
			if i == maxShownInvites {
				out.SendNotice(s.floodText(a, inviter, len(ins)-maxShownInvites))
				break
			}
			s.sendInvite(a, out, in)
		}
	}
}

// serviceInvites lists the waiting invitations.
func (s *Session) serviceInvites(a *Attachment, _ output, reply func(string), _ string) {
	if len(s.invites) == 0 {
		reply("No invitations are waiting.")
		return
	}
	ins := make([]*invite, 0, len(s.invites))
	for _, in := range s.invites {
		ins = append(ins, in)
	}
	sort.Slice(ins, func(i, j int) bool {
		if ins[i].inviter != ins[j].inviter {
			return ins[i].inviter < ins[j].inviter
		}
		return ins[i].roomID < ins[j].roomID
	})
	reply(fmt.Sprintf("%d invitation(s) waiting: JOIN a channel to accept, DECLINE <channel or sender> [IGNORE] to refuse.", len(ins)))
	for _, in := range ins {
		kind := "a room"
		if in.direct {
			kind = "a direct chat"
		}
		reply(fmt.Sprintf("%s: %s from %s (%s)", in.channel, kind, s.nickOf(a, in.inviter), in.inviter))
	}
}

// serviceDecline refuses the invitations to one channel, or all of one
// sender's (a nick or Matrix ID); with IGNORE it also adds their senders
// to the account's ignore list.
func (s *Session) serviceDecline(a *Attachment, out output, reply func(string), args string) {
	fields := strings.Fields(args)
	if len(fields) == 0 || len(fields) > 2 || (len(fields) == 2 && !strings.EqualFold(fields[1], "IGNORE")) {
		reply("Usage: DECLINE <channel or sender> [IGNORE]. INVITES lists the invitations waiting.")
		return
	}
	what, ignore := fields[0], len(fields) == 2
	var chosen []*invite
	if in := s.inviteByChannel(what); in != nil {
		chosen = append(chosen, in)
	} else {
		inviter, ok := s.userByNick(a, what)
		if !ok {
			inviter, _ = mapping.MaskUser(what)
		}
		for _, in := range s.invites {
			if inviter != "" && in.inviter == inviter {
				chosen = append(chosen, in)
			}
		}
	}
	if len(chosen) == 0 {
		reply("No invitation is waiting for " + what + " (a channel, or the nick or Matrix ID of who sent it). INVITES lists them.")
		return
	}
	add := map[id.UserID]string{}
	if ignore {
		for _, in := range chosen {
			add[in.inviter] = string(in.inviter)
		}
	}
	s.request(a, out, "DECLINE", func(ctx context.Context) func() {
		declined := map[id.RoomID]bool{}
		var failed []string
		for _, in := range chosen {
			if _, err := s.cli.LeaveRoom(ctx, in.roomID); err != nil {
				failed = append(failed, in.channel+": "+matrixErrorText(err))
				continue
			}
			declined[in.roomID] = true
		}
		var ignored map[id.UserID]bool
		var ignoreErr error
		if len(add) > 0 {
			ignored, ignoreErr = s.editIgnoredList(ctx, add, nil)
		}
		return func() {
			for roomID := range declined {
				delete(s.invites, roomID)
			}
			if len(declined) > 0 {
				reply(fmt.Sprintf("Declined %d invitation(s).", len(declined)))
			}
			for _, f := range failed {
				reply("Could not decline " + f)
			}
			switch {
			case ignoreErr != nil:
				reply("Could not add them to your ignore list: " + matrixErrorText(ignoreErr))
			case ignored != nil:
				s.ignored = ignored
				reply("Ignoring " + strings.Join(userStrings(sortedKeys(add)), ", ") + " (SILENCE lists who you ignore).")
			}
		}
	})
}

func userStrings(users []id.UserID) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = string(u)
	}
	return out
}
