package session

import (
	"encoding/json"
	"fmt"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// discard is an attached client that drops what it is sent, with the
// capabilities a modern client negotiates.
type discard struct{ lines int }

func (d *discard) Nick() string                               { return "me" }
func (d *discard) SetNick(string)                             {}
func (d *discard) SendMessage(*irc.Message)                   { d.lines++ }
func (d *discard) SendNumeric(string, ...string)              { d.lines++ }
func (d *discard) SendNotice(string)                          { d.lines++ }
func (d *discard) ServerName() string                         { return "mxircd" }
func (d *discard) HasCap(name string) bool                    { return name == "message-tags" || name == "server-time" }
func (d *discard) Close(string)                               {}
func (d *discard) Checkpoint(key string, commit, undo func()) { commit() }

// BenchmarkRenderMessage: one formatted Matrix message with a mention, from
// sync event to IRC lines for one attached client, as the owner does it
// (without the store and the socket).
func BenchmarkRenderMessage(b *testing.B) {
	m := NewManager(Config{}, nil)
	cli, err := mautrix.NewClient("http://hs.invalid", "@me:x", "token")
	if err != nil {
		b.Fatal(err)
	}
	s := newSession(m, cli)
	r := s.newRoom("!r:x")
	for i := 0; i < 50; i++ {
		user := fmt.Sprintf("@user%d:x", i)
		r.applyState(memberEvent(b, "$m"+user, user, "join", fmt.Sprintf("User %d", i)))
	}
	r.applyState(memberEvent(b, "$me", "@me:x", "join", "Me"))
	s.addRoom(r)
	client := &discard{}
	a := newAttachment(s, client, "")
	s.clients[a] = true
	content := json.RawMessage(`{"msgtype":"m.text","body":"User 7: see **this** and ` + "`code`" + `",` +
		`"format":"org.matrix.custom.html","formatted_body":"<a href=\"https://matrix.to/#/@user7:x\">User 7</a>: see <b>this</b> and <code>code</code>"}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := &event.Event{ID: id.EventID(fmt.Sprintf("$e%d", i)), Type: event.EventMessage, Sender: "@user3:x", RoomID: r.id, Timestamp: 1}
		if err := json.Unmarshal(content, &ev.Content); err != nil {
			b.Fatal(err)
		}
		s.showMessage(r, ev)
	}
	if client.lines == 0 {
		b.Fatal("nothing was rendered")
	}
}
