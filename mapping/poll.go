package mapping

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Polls (Matrix spec v1.7 m.poll.*, and MSC3381's unstable
// org.matrix.msc3381.poll.*, which Element still sends): a poll start
// carries a question and answers with IDs; a response names answer IDs
// and refers to the start; an end closes it. The gateway counts the
// responses it saw by the spec's rules (Tally).

// Poll event types, stable and unstable.
const (
	PollStartType          = "m.poll.start"
	PollResponseType       = "m.poll.response"
	PollEndType            = "m.poll.end"
	UnstablePollStartType  = "org.matrix.msc3381.poll.start"
	UnstablePollResponseTy = "org.matrix.msc3381.poll.response"
	UnstablePollEndType    = "org.matrix.msc3381.poll.end"
)

// PollAnswer is one answer of a poll.
type PollAnswer struct {
	ID   string
	Text string
}

// Poll is a poll's question and answers, as its start event gave them.
type Poll struct {
	Question      string
	Answers       []PollAnswer
	MaxSelections int
	Unstable      bool // started with the MSC3381 types: answer with them too
}

// textBlock reads an extensible-events text: a plain string
// (org.matrix.msc1767.text) or a list of {mimetype, body} (m.text).
type textBlock struct {
	Unstable string `json:"org.matrix.msc1767.text"`
	Stable   []struct {
		MimeType string `json:"mimetype"`
		Body     string `json:"body"`
	} `json:"m.text"`
	Message []struct {
		MimeType string `json:"mimetype"`
		Body     string `json:"body"`
	} `json:"org.matrix.msc1767.message"`
}

func (t textBlock) plain() string {
	if t.Unstable != "" {
		return t.Unstable
	}
	for _, list := range [][]struct {
		MimeType string `json:"mimetype"`
		Body     string `json:"body"`
	}{t.Stable, t.Message} {
		for _, b := range list {
			if b.MimeType == "" || b.MimeType == "text/plain" {
				return b.Body
			}
		}
	}
	return ""
}

type pollAnswerJSON struct {
	textBlock
	ID       string `json:"id"`
	StableID string `json:"m.id"`
}

type pollJSON struct {
	Question      textBlock        `json:"question"`
	Answers       []pollAnswerJSON `json:"answers"`
	MaxSelections int              `json:"max_selections"`
}

// ParsePollStart reads a poll start event's content; ok is false when it
// has no question or no answers.
func ParsePollStart(evType string, raw json.RawMessage) (Poll, bool) {
	var c struct {
		Stable   *pollJSON `json:"m.poll"`
		Unstable *pollJSON `json:"org.matrix.msc3381.poll.start"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return Poll{}, false
	}
	p, unstable := c.Stable, false
	if evType == UnstablePollStartType || p == nil {
		p, unstable = c.Unstable, true
	}
	if p == nil {
		return Poll{}, false
	}
	out := Poll{Question: oneLine(p.Question.plain()), MaxSelections: p.MaxSelections, Unstable: unstable}
	if out.MaxSelections < 1 {
		out.MaxSelections = 1
	}
	seen := map[string]bool{}
	for _, a := range p.Answers {
		id := a.StableID
		if id == "" {
			id = a.ID
		}
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out.Answers = append(out.Answers, PollAnswer{ID: id, Text: oneLine(a.plain())})
	}
	if len(out.Answers) > 20 {
		out.Answers = out.Answers[:20] // the spec's limit
	}
	return out, out.Question != "" && len(out.Answers) > 0
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// PollVote is one user's response: the answer IDs it selected.
type PollVote struct {
	TS         int64
	Selections []string
}

// ParsePollResponse reads a response's selections (stable m.selections or
// unstable answers).
func ParsePollResponse(raw json.RawMessage) []string {
	var c struct {
		Stable   []string `json:"m.selections"`
		Unstable *struct {
			Answers []string `json:"answers"`
		} `json:"org.matrix.msc3381.poll.response"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return nil
	}
	if c.Stable != nil {
		return c.Stable
	}
	if c.Unstable != nil {
		return c.Unstable.Answers
	}
	return []string{}
}

// PollEndText is the fallback text of a poll end, for a poll the gateway
// did not see start.
func PollEndText(raw json.RawMessage) string {
	var c textBlock
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return oneLine(c.plain())
}

// PollResponseContent is the content of a vote for answer IDs, in the
// poll's own flavour.
func (p Poll) PollResponseContent(pollID string, answers []string) (evType string, content map[string]any) {
	rel := map[string]any{"rel_type": "m.reference", "event_id": pollID}
	if p.Unstable {
		return UnstablePollResponseTy, map[string]any{"m.relates_to": rel, UnstablePollResponseTy: map[string]any{"answers": answers}}
	}
	return PollResponseType, map[string]any{"m.relates_to": rel, "m.selections": answers}
}

// Tally counts votes by the spec's rules: each user's latest response
// sent no later than endTS (0: not ended) counts; unknown answer IDs are
// dropped, at most MaxSelections are kept, and a response left with none
// is spoiled (the user's vote counts for nothing). counts is per answer,
// in the poll's order; voters is how many users' votes counted.
func (p Poll) Tally(votes map[string][]PollVote, endTS int64) (counts []int, voters int) {
	counts = make([]int, len(p.Answers))
	index := map[string]int{}
	for i, a := range p.Answers {
		index[a.ID] = i
	}
	for _, list := range votes {
		var latest *PollVote
		for i := range list {
			v := &list[i]
			if endTS > 0 && v.TS > endTS {
				continue
			}
			if latest == nil || v.TS >= latest.TS {
				latest = v
			}
		}
		if latest == nil {
			continue
		}
		picked := map[int]bool{}
		for _, sel := range latest.Selections {
			if i, ok := index[sel]; ok && len(picked) < p.MaxSelections {
				picked[i] = true
			}
		}
		for i := range picked {
			counts[i]++
		}
		if len(picked) > 0 {
			voters++
		}
	}
	return counts, voters
}

// PollLines is a poll as IRC lines: the question, then one numbered line
// per answer.
func (p Poll) PollLines() []string {
	lines := []string{"[poll] " + p.Question}
	for i, a := range p.Answers {
		lines = append(lines, "  "+strconv.Itoa(i+1)+". "+a.Text)
	}
	return lines
}

// PollResults is the line shown when a poll ends.
func (p Poll) PollResults(counts []int, voters int) string {
	parts := make([]string, len(p.Answers))
	best := 0
	for i, a := range p.Answers {
		parts[i] = strconv.Itoa(i+1) + ". " + a.Text + ": " + plural(counts[i], "vote")
		if counts[i] > best {
			best = counts[i]
		}
	}
	var top []string
	for i, a := range p.Answers {
		if best > 0 && counts[i] == best {
			top = append(top, a.Text)
		}
	}
	text := "[poll ended] " + p.Question + " — " + strings.Join(parts, ", ") + " (" + plural(voters, "voter") + ")"
	if len(top) > 0 {
		text += "; top answer: " + strings.Join(top, ", ")
	}
	return text
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// PollStartContent is a new poll's content as Element sends it (MSC3381,
// which every client with polls reads), its answers' IDs their numbers,
// with a plain-text fallback for clients without polls.
func PollStartContent(question string, answers []string) map[string]any {
	list := make([]any, len(answers))
	fallback := []string{question}
	for i, a := range answers {
		n := strconv.Itoa(i + 1)
		list[i] = map[string]any{"id": n, "org.matrix.msc1767.text": a}
		fallback = append(fallback, n+". "+a)
	}
	return map[string]any{
		UnstablePollStartType: map[string]any{
			"kind": "org.matrix.msc3381.poll.disclosed", "max_selections": 1,
			"question": map[string]any{"org.matrix.msc1767.text": question},
			"answers":  list,
		},
		"org.matrix.msc1767.text": strings.Join(fallback, "\n"),
	}
}

// PollEndContent ends the poll pollID, in the poll's own flavour.
func (p Poll) PollEndContent(pollID string) (evType string, content map[string]any) {
	rel := map[string]any{"rel_type": "m.reference", "event_id": pollID}
	if p.Unstable {
		return UnstablePollEndType, map[string]any{"m.relates_to": rel, UnstablePollEndType: map[string]any{},
			"org.matrix.msc1767.text": "The poll has ended."}
	}
	return PollEndType, map[string]any{"m.relates_to": rel, "m.text": []any{map[string]any{"body": "The poll has ended."}}}
}
