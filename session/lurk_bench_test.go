package session

import (
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// namedDiscard is a discard client with a nick of its own.
type namedDiscard struct {
	discard
	nick string
}

func (d *namedDiscard) Nick() string { return d.nick }

// BenchmarkLurkerFanout: one formatted Matrix message rendered on the
// owner goroutine for 1,000 lurkers reading the room, against 1,000
// clients attached to the account (without the store and the sockets).
func BenchmarkLurkerFanout(b *testing.B) {
	const n = 1000
	for _, lurkers := range []bool{true, false} {
		b.Run(map[bool]string{true: "lurkers", false: "attached"}[lurkers], func(b *testing.B) {
			m := NewManager(Config{}, nil)
			cli, err := mautrix.NewClient("http://hs.invalid", "@guest:x", "token")
			if err != nil {
				b.Fatal(err)
			}
			s := newSession(m, cli)
			r := s.newRoom("!r:x")
			for i := 0; i < 50; i++ {
				user := fmt.Sprintf("@user%d:x", i)
				r.applyState(memberEvent(b, "$m"+user, user, "join", fmt.Sprintf("User %d", i)))
			}
			r.applyState(memberEvent(b, "$me", "@guest:x", "join", ""))
			s.addRoom(r)
			clients := make([]*namedDiscard, n)
			for i := range clients {
				clients[i] = &namedDiscard{nick: fmt.Sprintf("Guest%d", 10000+i)}
				a := newAttachment(s, clients[i], "")
				if lurkers {
					a.lurk = &lurkView{rooms: map[id.RoomID]*lurkRoom{r.id: {}}}
					s.lurkAttach(a)
					if s.lurkers[r.id] == nil {
						s.lurkers[r.id] = map[*Attachment]bool{}
					}
					s.lurkers[r.id][a] = true
				} else {
					s.clients[a] = true
				}
			}
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
			for _, c := range clients {
				if c.lines == 0 {
					b.Fatal("a client was shown nothing")
				}
			}
		})
	}
}
