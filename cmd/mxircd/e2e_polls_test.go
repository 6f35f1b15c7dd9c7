package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Polls, locations, voice messages and pins (issue 18): a poll shows its
// question and numbered answers, VOTE through the service nick answers it,
// its end shows the results as the gateway counted them; a location is a
// map link, a voice message a media link with its duration, a pin change a
// notice.
func TestPolls(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) { testPolls(t, hs, g) })
}

// expectService waits for the service's NOTICE containing text.
func expectService(t *testing.T, c *testenv.IRCClient, text string) *irc.Message {
	t.Helper()
	return c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "NOTICE" && m.Prefix != nil && m.Prefix.Name == "mxircd" && strings.Contains(m.Trailing(), text)
	}, "the service's answer containing "+text)
}

// expectServiceAndFrom waits for the service's answer to a command and for
// the echo of the event it sent, in either order: the echo comes through
// /sync, which can be quicker than the answer to the send itself. It
// returns the echo.
func expectServiceAndFrom(t *testing.T, c *testenv.IRCClient, service, command, nick, text string) *irc.Message {
	t.Helper()
	var answered bool
	var echo *irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		switch {
		case m.Command == "NOTICE" && m.Prefix != nil && m.Prefix.Name == "mxircd" && strings.Contains(m.Trailing(), service):
			answered = true
		case m.Command == command && m.Prefix != nil && m.Prefix.Name == nick && strings.Contains(m.Trailing(), text):
			echo = m
		}
		return answered && echo != nil
	}, "the service's answer containing "+service+" and "+command+" from "+nick+" containing "+text)
	return echo
}

func sendRaw(t *testing.T, acct *testenv.Account, room id.RoomID, evType string, content any) id.EventID {
	t.Helper()
	resp, err := acct.Client.SendMessageEvent(ctxFor(t), room, event.Type{Type: evType, Class: event.MessageEventType}, content)
	if err != nil {
		t.Fatalf("%s sends %s: %v", acct.UserID, evType, err)
	}
	return resp.EventID
}

func testPolls(t *testing.T, hs *testenv.Homeserver, g *gateway) {
	alice, bob, room, channel := twoInARoom(t, hs, "polls")
	c := connect(t, g, "alice", alice)
	waitNames(t, c, channel, bob.Localpart)
	ctx := ctxFor(t)

	// A poll as Element sends it (MSC3381's unstable types).
	poll := sendRaw(t, bob, room, "org.matrix.msc3381.poll.start", map[string]any{
		"org.matrix.msc3381.poll.start": map[string]any{
			"kind": "org.matrix.msc3381.poll.disclosed", "max_selections": 1,
			"question": map[string]any{"org.matrix.msc1767.text": "Lunch?"},
			"answers": []any{
				map[string]any{"id": "pizza", "org.matrix.msc1767.text": "Pizza"},
				map[string]any{"id": "sushi", "org.matrix.msc1767.text": "Sushi"},
				map[string]any{"id": "salad", "org.matrix.msc1767.text": "Salad"},
			},
		},
		"org.matrix.msc1767.text": "Lunch?\n1. Pizza\n2. Sushi\n3. Salad",
	})
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "[poll] Lunch?")
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "1. Pizza")
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "2. Sushi")
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "3. Salad")
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "VOTE "+channel+" <number>")

	vote := func(acct *testenv.Account, answer string) {
		sendRaw(t, acct, room, "org.matrix.msc3381.poll.response", map[string]any{
			"m.relates_to":                     map[string]any{"rel_type": "m.reference", "event_id": poll},
			"org.matrix.msc3381.poll.response": map[string]any{"answers": []string{answer}},
		})
	}
	// bob changes his mind: only his latest vote counts.
	vote(bob, "salad")
	vote(bob, "pizza")

	c.Send("PRIVMSG mxircd :HELP VOTE")
	expectService(t, c, "VOTE <channel> <number>[,<number>...]: votes in the newest open poll")
	// Bad votes change nothing and say why.
	c.Send("PRIVMSG mxircd :VOTE %s 7", channel)
	expectService(t, c, "give a number from 1 to 3")
	c.Send("PRIVMSG mxircd :VOTE #nowhere:localhost 1")
	expectService(t, c, "You are not in #nowhere:localhost")

	c.Send("PRIVMSG mxircd :VOTE %s 2", channel)
	expectService(t, c, "Voted in "+channel)
	ev := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type.Type == "org.matrix.msc3381.poll.response" && ev.Sender == alice.UserID
	})
	var resp struct {
		Rel struct {
			Type    string     `json:"rel_type"`
			EventID id.EventID `json:"event_id"`
		} `json:"m.relates_to"`
		Response struct {
			Answers []string `json:"answers"`
		} `json:"org.matrix.msc3381.poll.response"`
	}
	if err := json.Unmarshal(ev.Content.VeryRaw, &resp); err != nil || resp.Rel.Type != "m.reference" || resp.Rel.EventID != poll || !slices.Equal(resp.Response.Answers, []string{"sushi"}) {
		t.Errorf("alice's vote on Matrix = %s, want a reference to %s answering [sushi]", ev.Content.VeryRaw, poll)
	}

	sendRaw(t, bob, room, "org.matrix.msc3381.poll.end", map[string]any{
		"m.relates_to":                map[string]any{"rel_type": "m.reference", "event_id": poll},
		"org.matrix.msc3381.poll.end": map[string]any{},
		"org.matrix.msc1767.text":     "The poll has ended.",
	})
	m := expectFrom(t, c, "NOTICE", bob.Localpart, "[poll ended] Lunch?")
	if want := "1. Pizza: 1 vote, 2. Sushi: 1 vote, 3. Salad: 0 votes (2 voters)"; !strings.Contains(m.Trailing(), want) {
		t.Errorf("poll results = %q, want them to contain %q", m.Trailing(), want)
	}
	// The poll is over: no vote goes to it.
	c.Send("PRIVMSG mxircd :VOTE %s 1", channel)
	expectService(t, c, "There is no open poll in "+channel)

	// A poll with the spec's stable types, two answers allowed, started
	// by alice from her Matrix client (she made the room: a moderator).
	stable := sendRaw(t, alice, room, "m.poll.start", map[string]any{
		"m.poll": map[string]any{
			"kind": "m.disclosed", "max_selections": 2,
			"question": map[string]any{"m.text": []any{map[string]any{"body": "Which days?"}}},
			"answers": []any{
				map[string]any{"m.id": "mon", "m.text": []any{map[string]any{"body": "Monday"}}},
				map[string]any{"m.id": "tue", "m.text": []any{map[string]any{"body": "Tuesday"}}},
				map[string]any{"m.id": "wed", "m.text": []any{map[string]any{"body": "Wednesday"}}},
			},
		},
		"m.text": []any{map[string]any{"body": "Which days?"}},
	})
	expectFrom(t, c, "PRIVMSG", "alice", "3. Wednesday")
	c.Send("PRIVMSG mxircd :VOTE %s 1,2,3", channel)
	expectService(t, c, "takes at most 2 answer(s)")
	c.Send("PRIVMSG mxircd :VOTE %s 1, 3", channel)
	expectService(t, c, "Voted in "+channel)
	ev = bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
		return ev.Type.Type == "m.poll.response" && ev.Sender == alice.UserID
	})
	var sresp struct {
		Rel struct {
			EventID id.EventID `json:"event_id"`
		} `json:"m.relates_to"`
		Selections []string `json:"m.selections"`
	}
	if err := json.Unmarshal(ev.Content.VeryRaw, &sresp); err != nil || sresp.Rel.EventID != stable || !slices.Equal(sresp.Selections, []string{"mon", "wed"}) {
		t.Errorf("alice's stable vote = %s, want m.selections [mon wed] on %s", ev.Content.VeryRaw, stable)
	}
	// Only the poll's sender (or a moderator) may end it: an end from
	// bob is not shown, and the poll stays open.
	sendRaw(t, bob, room, "m.poll.end", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": stable},
		"m.text":       []any{map[string]any{"body": "Ended"}},
	})
	say(t, bob, room, "after bob's end")
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if strings.Contains(m.Trailing(), "[poll ended]") {
			t.Errorf("an end by someone who may not end the poll was shown: %s", m)
		}
		return m.Command == "PRIVMSG" && strings.Contains(m.Trailing(), "after bob's end")
	}, "bob's line after his end")
	sendRaw(t, alice, room, "m.poll.end", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": stable},
		"m.text":       []any{map[string]any{"body": "Ended"}},
	})
	m = expectFrom(t, c, "NOTICE", "alice", "[poll ended] Which days?")
	if want := "1. Monday: 1 vote, 2. Tuesday: 0 votes, 3. Wednesday: 1 vote (1 voter)"; !strings.Contains(m.Trailing(), want) {
		t.Errorf("stable poll results = %q, want them to contain %q", m.Trailing(), want)
	}

	// A location: a map link.
	sendContent(t, bob, room, &event.MessageEventContent{MsgType: event.MsgLocation, Body: "Big Ben", GeoURI: "geo:51.5007,-0.1246;u=35"})
	m = expectFrom(t, c, "PRIVMSG", bob.Localpart, "Big Ben")
	if want := "[location] Big Ben https://www.openstreetmap.org/?mlat=51.5007&mlon=-0.1246#map=16/51.5007/-0.1246"; m.Trailing() != want {
		t.Errorf("location = %q, want %q", m.Trailing(), want)
	}
	// A voice message: a media link with its duration.
	sendContent(t, bob, room, &event.MessageEventContent{MsgType: event.MsgAudio, Body: "Voice message",
		URL: "mxc://localhost/voiceclip", Info: &event.FileInfo{MimeType: "audio/ogg", Duration: 72400},
		MSC3245Voice: &event.MSC3245Voice{}})
	m = expectFrom(t, c, "PRIVMSG", bob.Localpart, "Voice message")
	if want := "[voice message, 1:12] Voice message mxc://localhost/voiceclip"; m.Trailing() != want {
		t.Errorf("voice message = %q, want %q", m.Trailing(), want)
	}

	// Pins: who pinned or unpinned which message (alice may pin, as the
	// room's creator; her Matrix client does it).
	pinMe := say(t, bob, room, "the meeting is at noon")
	expectFrom(t, c, "PRIVMSG", bob.Localpart, "the meeting is at noon")
	pin := func(events ...id.EventID) {
		if events == nil {
			events = []id.EventID{}
		}
		if _, err := alice.Client.SendStateEvent(ctx, room, event.StatePinnedEvents, "", &event.PinnedEventsEventContent{Pinned: events}); err != nil {
			t.Fatal(err)
		}
	}
	pin(pinMe)
	m = expectFrom(t, c, "NOTICE", "alice", "pinned")
	if want := "pinned " + bob.Localpart + "'s message \"the meeting is at noon\""; m.Trailing() != want {
		t.Errorf("pin notice = %q, want %q", m.Trailing(), want)
	}
	pin()
	m = expectFrom(t, c, "NOTICE", "alice", "unpinned")
	if want := "unpinned " + bob.Localpart + "'s message \"the meeting is at noon\""; m.Trailing() != want {
		t.Errorf("unpin notice = %q, want %q", m.Trailing(), want)
	}
}

// A poll that started while the gateway was down can be voted on after it
// comes back: the first sync brings it.
func TestPollWhileAway(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob, room, channel := twoInARoom(t, hs, "pollaway")
		c := dialClient(t, b.addr(), "alice", alice, "")
		awaitBurst(t, c, channel)
		quit(t, c)

		b.stop(t)
		poll := sendRaw(t, bob, room, "org.matrix.msc3381.poll.start", map[string]any{
			"org.matrix.msc3381.poll.start": map[string]any{
				"kind": "org.matrix.msc3381.poll.disclosed", "max_selections": 1,
				"question": map[string]any{"org.matrix.msc1767.text": "Coffee or tea?"},
				"answers": []any{
					map[string]any{"id": "coffee", "org.matrix.msc1767.text": "Coffee"},
					map[string]any{"id": "tea", "org.matrix.msc1767.text": "Tea"},
				},
			},
		})
		b.start(t)
		c = dialClient(t, b.addr(), "alice", alice, "")
		awaitBurst(t, c, channel)
		c.Send("PRIVMSG mxircd :VOTE %s 2", channel)
		expectService(t, c, "Voted in "+channel+" on \"Coffee or tea?\"")
		ev := bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
			return ev.Type.Type == "org.matrix.msc3381.poll.response" && ev.Sender == alice.UserID
		})
		if !strings.Contains(string(ev.Content.VeryRaw), `"tea"`) || !strings.Contains(string(ev.Content.VeryRaw), string(poll)) {
			t.Errorf("alice's vote = %s, want tea on %s", ev.Content.VeryRaw, poll)
		}
	})
}

// A poll is in CHATHISTORY like a message: its question and answers, and
// its end with the results.
func TestPollInHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "pollhistory")
		c := connectWithCaps(t, g, "alice", alice, "draft/chathistory", "batch", "message-tags", "server-time")
		c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")
		waitNames(t, c, channel, bob.Localpart)
		poll := sendRaw(t, bob, room, "m.poll.start", map[string]any{
			"m.poll": map[string]any{
				"kind": "m.disclosed", "max_selections": 1,
				"question": map[string]any{"m.text": []any{map[string]any{"body": "Ready?"}}},
				"answers": []any{
					map[string]any{"m.id": "y", "m.text": []any{map[string]any{"body": "Yes"}}},
					map[string]any{"m.id": "n", "m.text": []any{map[string]any{"body": "No"}}},
				},
			},
		})
		sendRaw(t, bob, room, "m.poll.response", map[string]any{
			"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": poll}, "m.selections": []string{"y"}})
		sendRaw(t, bob, room, "m.poll.end", map[string]any{
			"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": poll}, "m.text": []any{map[string]any{"body": "Ended"}}})
		expectFrom(t, c, "NOTICE", bob.Localpart, "[poll ended] Ready?")

		var texts []string
		for _, m := range chathistory(t, c, channel, "LATEST %s * 10", channel) {
			texts = append(texts, m.Trailing())
		}
		all := strings.Join(texts, "\n")
		for _, want := range []string{"[poll] Ready?", "1. Yes", "2. No", "[poll ended] Ready? — 1. Yes: 1 vote, 2. No: 0 votes (1 voter)"} {
			if !strings.Contains(all, want) {
				t.Errorf("CHATHISTORY LATEST lacks %q; got:\n%s", want, all)
			}
		}
	})
}

// POLL starts a poll from IRC that Matrix clients see as one; ENDPOLL ends
// it and the results show.
func TestPollFromIRC(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bob, room, channel := twoInARoom(t, hs, "pollirc")
		c := connect(t, g, "alice", alice)
		waitNames(t, c, channel, bob.Localpart)
		ctx := ctxFor(t)

		c.Send("PRIVMSG mxircd :HELP POLL")
		expectService(t, c, "POLL <channel> <question> | <answer> | <answer>...: starts a poll")
		c.Send("PRIVMSG mxircd :ENDPOLL %s", channel)
		expectService(t, c, "There is no open poll in "+channel)
		c.Send("PRIVMSG mxircd :POLL %s Only a question? |", channel)
		expectService(t, c, "A poll needs a question and 2 to 20 answers")

		c.Send("PRIVMSG mxircd :POLL %s Best colour? | Red | Blue", channel)
		expectServiceAndFrom(t, c, "Poll started in "+channel, "PRIVMSG", "alice", "[poll] Best colour?")
		ev := bob.WaitForEvent(t, ctx, room, func(ev *event.Event) bool {
			return ev.Type.Type == "org.matrix.msc3381.poll.start" && ev.Sender == alice.UserID
		})
		var start struct {
			Poll struct {
				MaxSelections int `json:"max_selections"`
				Question      struct {
					Text string `json:"org.matrix.msc1767.text"`
				} `json:"question"`
				Answers []struct {
					ID   string `json:"id"`
					Text string `json:"org.matrix.msc1767.text"`
				} `json:"answers"`
			} `json:"org.matrix.msc3381.poll.start"`
		}
		if err := json.Unmarshal(ev.Content.VeryRaw, &start); err != nil || start.Poll.Question.Text != "Best colour?" ||
			len(start.Poll.Answers) != 2 || start.Poll.Answers[1].Text != "Blue" || start.Poll.MaxSelections != 1 {
			t.Fatalf("the poll on Matrix = %s", ev.Content.VeryRaw)
		}
		sendRaw(t, bob, room, "org.matrix.msc3381.poll.response", map[string]any{
			"m.relates_to":                     map[string]any{"rel_type": "m.reference", "event_id": ev.ID},
			"org.matrix.msc3381.poll.response": map[string]any{"answers": []string{start.Poll.Answers[1].ID}},
		})
		say(t, bob, room, "voted")
		expectFrom(t, c, "PRIVMSG", bob.Localpart, "voted")

		c.Send("PRIVMSG mxircd :ENDPOLL %s", channel)
		m := expectServiceAndFrom(t, c, "Ended the poll \"Best colour?\"", "NOTICE", "alice", "[poll ended] Best colour?")
		if want := "1. Red: 0 votes, 2. Blue: 1 vote (1 voter)"; !strings.Contains(m.Trailing(), want) {
			t.Errorf("results = %q, want %q", m.Trailing(), want)
		}
		bob.WaitForEvent(t, ctx, room, func(e *event.Event) bool {
			return e.Type.Type == "org.matrix.msc3381.poll.end" && e.Sender == alice.UserID && strings.Contains(string(e.Content.VeryRaw), string(ev.ID))
		})
	})
}
