package session

import (
	"encoding/json"
	"fmt"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// recordingClient keeps what it is sent.
type recordingClient struct {
	namedDiscard
	msgs []*irc.Message
}

func (c *recordingClient) SendMessage(m *irc.Message) { c.msgs = append(c.msgs, m) }

func textEvent(t *testing.T, eventID, text string) *event.Event {
	t.Helper()
	ev := &event.Event{ID: id.EventID(eventID), Type: event.EventMessage, Sender: "@bob:x", RoomID: "!r:x", Timestamp: 1}
	raw, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": text})
	if err := json.Unmarshal(raw, &ev.Content); err != nil {
		t.Fatal(err)
	}
	return ev
}

// A lurker's history on join comes before what the room said while it
// loaded, and an event in both is shown once.
func TestLurkerHistoryThenHeld(t *testing.T) {
	m := NewManager(Config{}, nil)
	cli, err := mautrix.NewClient("http://hs.invalid", "@guest:x", "token")
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(m, cli)
	r := s.newRoom("!r:x")
	r.applyState(memberEvent(t, "$bob", "@bob:x", "join", "bob"))
	s.addRoom(r)
	c := &recordingClient{namedDiscard: namedDiscard{nick: "Guest12345"}}
	a := newAttachment(s, c, "")
	a.lurk = &lurkView{rooms: map[id.RoomID]*lurkRoom{}}
	s.lurkAttach(a)
	lr := &lurkRoom{loading: true}
	a.lurk.rooms[r.id] = lr
	s.lurkers[r.id] = map[*Attachment]bool{a: true}

	// While the history loads: one event the history will have too, one
	// it will not.
	s.showMessage(r, textEvent(t, "$both", "in both"))
	s.showMessage(r, textEvent(t, "$late", "after the history"))
	if len(c.msgs) != 0 {
		t.Fatalf("shown while the history loaded: %v", c.msgs)
	}
	var history []store.StoredEvent
	for _, ev := range []*event.Event{textEvent(t, "$old", "from before"), textEvent(t, "$both", "in both")} {
		raw, _ := json.Marshal(ev)
		history = append(history, store.StoredEvent{RoomID: "!r:x", EventID: ev.ID, Sender: "@bob:x", Type: "m.room.message", JSON: raw})
	}
	s.lurkHistoryDone(a, r.id, lr, history, nil)
	var got []string
	for _, msg := range c.msgs {
		got = append(got, msg.Trailing())
	}
	if fmt.Sprint(got) != "[from before in both after the history]" {
		t.Fatalf("lines %q, want the history, then what came meanwhile, each once", got)
	}
	s.showMessage(r, textEvent(t, "$live", "live"))
	if last := c.msgs[len(c.msgs)-1]; last.Trailing() != "live" {
		t.Fatalf("after the history, a live line did not come at once: %v", last)
	}
}

// No Matrix user is given a nick of the lurkers' form, which a lurker
// would take for its own.
func TestNoGuestNickForMatrixUsers(t *testing.T) {
	m := NewManager(Config{}, nil)
	cli, err := mautrix.NewClient("http://hs.invalid", "@guest:x", "token")
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(m, cli)
	r := s.newRoom("!r:x")
	r.applyState(memberEvent(t, "$g", "@mallory:x", "join", "Guest12345"))
	r.applyState(memberEvent(t, "$h", "@guestbook:x", "join", "Guestbook"))
	s.addRoom(r)
	if nick := s.nickFor("@mallory:x"); nick == "Guest12345" {
		t.Fatalf("a Matrix user was given the guest nick %s", nick)
	}
	if nick := s.nickFor("@guestbook:x"); nick != "Guestbook" {
		t.Fatalf("Guestbook (not a guest nick) became %s", nick)
	}
}
