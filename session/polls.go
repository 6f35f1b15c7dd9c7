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
		s.releaseServiceTxn(ev)
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
		s.releaseServiceTxn(ev)
		sel := mapping.ParsePollResponse(ev.Content.VeryRaw)
		if sel == nil || ps.ended {
			return
		}
		// Only a user's latest response counts: one is kept per user, so a
		// user who votes again and again costs nothing more.
		if prev := ps.votes[string(ev.Sender)]; len(prev) == 0 || prev[0].TS <= ev.Timestamp {
			ps.votes[string(ev.Sender)] = []mapping.PollVote{{TS: ev.Timestamp, Selections: sel}}
		}
	case isPollEnd(t):
		s.releaseServiceTxn(ev)
		if ps := s.polls[referenceOf(ev)]; ps != nil && ps.room == r.id && s.mayEndPoll(r, ps, ev.Sender) {
			ps.ended = true
		}
	}
}

// releaseServiceTxn ends the wait for the echo of a poll event the
// service sent (POLL, VOTE, ENDPOLL): it is shown like anyone's, to every
// client, as the service's answer already went to the one that asked.
func (s *Session) releaseServiceTxn(ev *event.Event) {
	if txn := ev.Unsigned.TransactionID; ev.Sender == s.user && s.sentTxns[txn] != nil {
		s.dropTxn(txn)
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
	if len(fields) < 2 {
		reply("Usage: " + serviceCommands["VOTE"].usage)
		return
	}
	numbers := strings.Join(fields[1:], "") // "1, 3" as "1,3"
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
	for _, f := range strings.Split(numbers, ",") {
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
	s.sendPollEvent(a, out, reply, r, evType, content, "Your vote was not sent: ", "Voted in "+r.channel+" on \""+ps.poll.Question+"\".")
}

// sendPollEvent sends one poll event from the account through the outbox,
// as a reaction is sent, and tells the client how it went.
func (s *Session) sendPollEvent(a *Attachment, out output, reply func(string), r *room, evType string, content any, failed, done string) {
	txnID := s.newTxnID(a, out)
	p := s.prepareSend(r.id, event.Type{Type: evType, Class: event.MessageEventType}, content, txnID)
	ok := s.roomRequest(a, out, "PRIVMSG", r.id, func(ctx context.Context) func() {
		err := s.sendAccepted(ctx, p)
		return func() {
			if err != nil {
				s.dropTxn(txnID)
				reply(failed + matrixErrorText(err))
				return
			}
			reply(done)
		}
	})
	if ok {
		s.accept(a, p)
	} else {
		s.dropTxn(txnID)
	}
}

// maxPollAnswers is the spec's limit on a poll's answers.
const maxPollAnswers = 20

// servicePoll starts a poll: POLL <channel> <question> | <answer> | ...
func (s *Session) servicePoll(a *Attachment, out output, reply func(string), args string) {
	name, rest, _ := strings.Cut(args, " ")
	r := s.roomByChannel(name)
	if name == "" || r == nil {
		if name == "" {
			reply("Usage: " + serviceCommands["POLL"].usage)
		} else {
			reply("You are not in " + name + ".")
		}
		return
	}
	var parts []string
	for _, p := range strings.Split(rest, "|") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) < 3 || len(parts) > maxPollAnswers+1 {
		reply("A poll needs a question and 2 to " + strconv.Itoa(maxPollAnswers) + " answers, separated by |: " + serviceCommands["POLL"].usage)
		return
	}
	s.sendPollEvent(a, out, reply, r, mapping.UnstablePollStartType, mapping.PollStartContent(parts[0], parts[1:]),
		"Your poll was not started: ", "Poll started in "+r.channel+"; ENDPOLL "+r.channel+" ends it and shows the results.")
}

// serviceEndPoll ends the newest open poll of a channel that the account
// may end.
func (s *Session) serviceEndPoll(a *Attachment, out output, reply func(string), args string) {
	r := s.roomByChannel(strings.TrimSpace(args))
	if r == nil {
		if args == "" {
			reply("Usage: " + serviceCommands["ENDPOLL"].usage)
		} else {
			reply("You are not in " + args + ".")
		}
		return
	}
	for i := len(s.pollOrder) - 1; i >= 0; i-- {
		ps := s.polls[s.pollOrder[i]]
		if ps.room != r.id || ps.ended || !s.mayEndPoll(r, ps, s.user) {
			continue
		}
		evType, content := ps.poll.PollEndContent(string(s.pollOrder[i]))
		s.sendPollEvent(a, out, reply, r, evType, content, "The poll was not ended: ", "Ended the poll \""+ps.poll.Question+"\" in "+r.channel+".")
		return
	}
	reply("There is no open poll in " + r.channel + " that you may end (yours, or any as a moderator).")
}
