package mapping

import (
	"slices"
	"testing"
)

func TestPollTally(t *testing.T) {
	p := Poll{Question: "Q", MaxSelections: 1, Answers: []PollAnswer{{"a", "A"}, {"b", "B"}}}
	votes := map[string][]PollVote{
		"@changed": {{TS: 10, Selections: []string{"a"}}, {TS: 20, Selections: []string{"b"}}},
		"@late":    {{TS: 10, Selections: []string{"a"}}, {TS: 99, Selections: []string{"b"}}}, // after the end
		"@spoiled": {{TS: 10, Selections: []string{"a"}}, {TS: 20, Selections: []string{"nope"}}},
		"@toomany": {{TS: 10, Selections: []string{"a", "b"}}},
	}
	counts, voters := p.Tally(votes, 50)
	if !slices.Equal(counts, []int{2, 1}) || voters != 3 {
		t.Errorf("Tally = %v, %d voters; want [2 1], 3", counts, voters)
	}
}

func TestParsePollStart(t *testing.T) {
	p, ok := ParsePollStart(PollStartType, []byte(`{"m.poll":{"max_selections":0,"question":{"m.text":[{"mimetype":"text/html","body":"<b>Q</b>"},{"body":"Q?"}]},"answers":[{"m.id":"x","m.text":[{"body":"X"}]},{"m.id":"x","m.text":[{"body":"dup"}]},{"m.text":[{"body":"no id"}]}]}}`))
	if !ok || p.Question != "Q?" || p.MaxSelections != 1 || len(p.Answers) != 1 || p.Answers[0] != (PollAnswer{"x", "X"}) || p.Unstable {
		t.Errorf("ParsePollStart = %+v, %v", p, ok)
	}
	if _, ok := ParsePollStart(UnstablePollStartType, []byte(`{"org.matrix.msc3381.poll.start":{"question":{"org.matrix.msc1767.text":"Q"},"answers":[]}}`)); ok {
		t.Error("a poll without answers parsed")
	}
}

func TestGeoLink(t *testing.T) {
	for uri, want := range map[string]string{
		"geo:51.5007,-0.1246;u=35": "https://www.openstreetmap.org/?mlat=51.5007&mlon=-0.1246#map=16/51.5007/-0.1246",
		"geo:1,2,3":                "https://www.openstreetmap.org/?mlat=1&mlon=2#map=16/1/2",
		"geo:91,0":                 "",
		"http://x":                 "",
		"geo:a,b":                  "",
	} {
		if got := GeoLink(uri); got != want {
			t.Errorf("GeoLink(%q) = %q, want %q", uri, got, want)
		}
	}
}
