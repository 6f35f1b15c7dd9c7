package session

import (
	"slices"
	"strings"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/irctext"
)

// A client may send JOIN #chan and, on the next line, PRIVMSG #chan or
// MODE #chan, as bots and scripts do: on IRC the second command finds
// the channel joined. Here the room is shown only once the homeserver
// has answered the JOIN and sync has brought the room, so a command on a
// channel the same client is still joining waits for that JOIN to be
// answered (its room shown, or its refusal sent), and then runs, in the
// order the client sent it. It holds the client's PING meanwhile, in its
// own place, as a command's request does.

// behindJoin is a command waiting for the JOIN of its channel.
type behindJoin struct {
	join    uint64 // the JOIN's hold
	place   uint64 // the command's own hold, for the PINGs after it
	release func()
	out     output
	msg     *irc.Message
}

// noteJoining remembers the hold of the JOIN of name client a just sent:
// the last hold it took. Owner goroutine.
func (s *Session) noteJoining(a *Attachment, name string) {
	mark := a.applying
	if mark == 0 {
		mark = a.holdSeq
	}
	if a.joining == nil {
		a.joining = map[string]uint64{}
	}
	a.joining[irctext.Casefold(name)] = mark
}

// waitForJoin puts m behind the JOIN of its channel when client a is
// still joining it; false when m may run now. Owner goroutine.
func (s *Session) waitForJoin(a *Attachment, out output, m *irc.Message) bool {
	if len(a.joining) == 0 || m.Command == "JOIN" || m.Command == "PING" {
		return false
	}
	name := channelParam(m)
	if name == "" {
		return false
	}
	folded := irctext.Casefold(name)
	mark, ok := a.joining[folded]
	if !ok {
		return false
	}
	if !slices.Contains(a.open, mark) || s.roomByChannel(name) != nil {
		delete(a.joining, folded)
		return false
	}
	place, release := a.takeHold()
	if resp := labeledOf(out); resp != nil {
		resp.Hold()
	}
	a.behindJoin = append(a.behindJoin, behindJoin{join: mark, place: place, release: release, out: out, msg: m})
	return true
}

// runBehindJoin runs, in order, the waiting commands whose JOIN has been
// answered. Owner goroutine (from a hold's release).
func (a *Attachment) runBehindJoin() {
	if a.replaying {
		return // the outer call goes on with the next
	}
	a.replaying = true
	defer func() { a.replaying = false }()
	for len(a.behindJoin) > 0 && !slices.Contains(a.open, a.behindJoin[0].join) {
		w := a.behindJoin[0]
		a.behindJoin = a.behindJoin[1:]
		applying := a.applying
		a.applying = w.place // its requests keep its place
		a.sess.runCommand(a, w.out, w.msg)
		a.applying = applying
		if resp := labeledOf(w.out); resp != nil {
			resp.Done()
		}
		w.release()
	}
}

// channelParam is the channel a command acts on, if it names one: the
// first target of most, the second parameter of INVITE and CHATHISTORY.
func channelParam(m *irc.Message) string {
	i := 0
	switch m.Command {
	case "INVITE", "CHATHISTORY":
		i = 1
	}
	if len(m.Params) <= i {
		return ""
	}
	name, _, _ := strings.Cut(m.Params[i], ",")
	if name == "" || !strings.ContainsRune("#!", rune(name[0])) {
		return ""
	}
	return name
}
