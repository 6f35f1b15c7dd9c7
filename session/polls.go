package session

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
)

// Polls: a poll start shows as its question and numbered answers, from
// its sender; responses are counted, not shown; a poll's end shows its
// results as the gateway counted them (mapping.Poll.Tally), or the end's
// own text for a poll that started before the gateway was there. The
// service nick's VOTE answers the newest open poll of a channel with
// the answers' numbers, as an m.poll.response (or MSC3381's unstable
// response for a poll started that way, as Element does). The count
// lives in memory: a restart forgets the responses seen before it.

// maxPolls bounds the polls a session remembers; the oldest go first.
const maxPolls = 256

type pollState struct {
	room    id.RoomID
	creator id.UserID
	ts      int64
	poll    mapping.Poll
	votes   map[string][]mapping.PollVote
	ended   bool
}

func isPollStart(t string) bool {
	return t == mapping.PollStartType || t == mapping.UnstablePollStartType
}

func isPollEnd(t string) bool {
	return t == mapping.PollEndType || t == mapping.UnstablePollEndType
}

func isPollResponse(t string) bool {
	return t == mapping.PollResponseType || t == mapping.UnstablePollResponseTy
}

// referenceOf is the event a poll response or end refers to.
func referenceOf(ev *event.Event) id.EventID {
	var c struct {
		Rel struct {
			Type    string     `json:"rel_type"`
			EventID id.EventID `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(ev.Content.VeryRaw, &c) != nil || c.Rel.Type != "m.reference" {
		return ""
	}
	return c.Rel.EventID
}

// notePoll counts a live poll event: a start is remembered, a response
// recorded, an end closes its poll. Owner goroutine.
func (s *Session) notePoll(r *room, ev *event.Event) {
	t := ev.Type.Type
	switch {
	case isPollStart(t):
		p, ok := mapping.ParsePollStart(t, ev.Content.VeryRaw)
		if !ok {
			return
		}
		if s.polls == nil {
			s.polls = map[id.EventID]*pollState{}
		}
		if _, seen := s.polls[ev.ID]; seen {
			return
		}
		s.polls[ev.ID] = &pollState{room: r.id, creator: ev.Sender, ts: ev.Timestamp, poll: p, votes: map[string][]mapping.PollVote{}}
		s.pollOrder = append(s.pollOrder, ev.ID)
		if len(s.pollOrder) > maxPolls {
			delete(s.polls, s.pollOrder[0])
			s.pollOrder = s.pollOrder[1:]
		}
	case isPollResponse(t):
		ps := s.polls[referenceOf(ev)]
		if ps == nil || ps.room != r.id {
			return
		}
		if txn := ev.Unsigned.TransactionID; ev.Sender == s.user && s.sentTxns[txn] != nil {
			s.dropTxn(txn) // a VOTE's echo: nothing to show
		}
		if sel := mapping.ParsePollResponse(ev.Content.VeryRaw); sel != nil {
			ps.votes[string(ev.Sender)] = append(ps.votes[string(ev.Sender)], mapping.PollVote{TS: ev.Timestamp, Selections: sel})
		}
	case isPollEnd(t):
		if ps := s.polls[referenceOf(ev)]; ps != nil && ps.room == r.id && s.mayEndPoll(r, ps, ev.Sender) {
			ps.ended = true
		}
	}
}

// mayEndPoll: the spec lets the poll's sender end it, or anyone who may
// redact it.
func (s *Session) mayEndPoll(r *room, ps *pollState, user id.UserID) bool {
	return user == ps.creator || r.power != nil && r.power.GetUserLevel(user) >= r.power.Redact()
}

// showPoll shows a poll start or end to client a; ok is false for other
// events.
func (s *Session) showPoll(a *Attachment, out output, r *room, ev *event.Event) bool {
	t := ev.Type.Type
	switch {
	case isPollStart(t):
		p, ok := mapping.ParsePollStart(t, ev.Content.VeryRaw)
		if !ok {
			s.sendNote(a, out, r, ev, "[started a poll that IRC cannot show]")
			return true
		}
		lines := p.PollLines()
		if r.dm == "" {
			how := "vote with /msg " + s.mgr.cfg.ServiceNick + " VOTE " + r.channel + " <number>"
			if p.MaxSelections > 1 {
				how += " (up to " + strconv.Itoa(p.MaxSelections) + " numbers, separated by commas)"
			}
			lines = append(lines, "  ("+how+")")
		}
		s.sendLines(a, out, r, ev, "PRIVMSG", false, strings.Join(lines, "\n"))
		return true
	case isPollEnd(t):
		ps := s.polls[referenceOf(ev)]
		if ps != nil && ps.room == r.id {
			if !s.mayEndPoll(r, ps, ev.Sender) {
				return true // not theirs to end: the poll goes on
			}
			counts, voters := ps.poll.Tally(ps.votes, ev.Timestamp)
			s.sendNote(a, out, r, ev, ps.poll.PollResults(counts, voters)+" (as counted by this gateway)")
			return true
		}
		text := mapping.PollEndText(ev.Content.VeryRaw)
		if text == "" {
			text = "ended a poll"
		}
		s.sendNote(a, out, r, ev, "[poll ended] "+text)
		return true
	}
	return false
}

// serviceVote answers the newest open poll of a channel.
func (s *Session) serviceVote(a *Attachment, out output, reply func(string), args string) {
	fields := strings.Fields(args)
	if len(fields) != 2 {
		reply("Usage: " + serviceCommands["VOTE"].usage)
		return
	}
	r := s.roomByChannel(fields[0])
	if r == nil {
		reply("You are not in " + fields[0] + ".")
		return
	}
	var pollID id.EventID
	var ps *pollState
	for i := len(s.pollOrder) - 1; i >= 0; i-- {
		if p := s.polls[s.pollOrder[i]]; p.room == r.id && !p.ended {
			pollID, ps = s.pollOrder[i], p
			break
		}
	}
	if ps == nil {
		reply("There is no open poll in " + r.channel + " that this gateway has seen start.")
		return
	}
	var answers []string
	seen := map[int]bool{}
	for _, f := range strings.Split(fields[1], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > len(ps.poll.Answers) {
			reply(strconv.Quote(f) + " is not an answer of the poll \"" + ps.poll.Question + "\": give a number from 1 to " + strconv.Itoa(len(ps.poll.Answers)) + ".")
			return
		}
		if !seen[n] {
			seen[n] = true
			answers = append(answers, ps.poll.Answers[n-1].ID)
		}
	}
	if len(answers) > ps.poll.MaxSelections {
		reply("The poll \"" + ps.poll.Question + "\" takes at most " + strconv.Itoa(ps.poll.MaxSelections) + " answer(s).")
		return
	}
	evType, content := ps.poll.PollResponseContent(string(pollID), answers)
	txnID := s.newTxnID(a, out)
	p := s.prepareSend(r.id, event.Type{Type: evType, Class: event.MessageEventType}, content, txnID)
	channel := r.channel
	question := ps.poll.Question
	ok := s.roomRequest(a, out, "PRIVMSG", r.id, func(ctx context.Context) func() {
		err := s.sendAccepted(ctx, p)
		return func() {
			if err != nil {
				s.dropTxn(txnID)
				reply("Your vote was not sent: " + matrixErrorText(err))
				return
			}
			reply("Voted in " + channel + " on \"" + question + "\".")
		}
	})
	if ok {
		s.accept(a, p)
	} else {
		s.dropTxn(txnID)
	}
}
