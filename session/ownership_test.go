package session

import (
	"sync"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
)

// capRecorder is a recorder that negotiated the given capabilities.
type capRecorder struct {
	recorder
	caps map[string]bool
}

func (c *capRecorder) HasCap(name string) bool { return c.caps[name] }

// unstartedSession is a session whose owner goroutine the test plays
// itself; it has no store and no homeserver.
func unstartedSession(t *testing.T) *Session {
	t.Helper()
	m := NewManager(Config{}, nil)
	cli, err := mautrix.NewClient("http://hs.invalid", "@me:x", "token")
	if err != nil {
		t.Fatal(err)
	}
	return newSession(m, cli)
}

// A client's reader goroutine closes the connection when the session has
// ended, while the owner renders a labeled response to the same client:
// the two must not share a field that the owner changes.
func TestAttachmentClientIsNotSwapped(t *testing.T) {
	s := unstartedSession(t)
	s.synced = true
	conn := &capRecorder{caps: map[string]bool{"labeled-response": true, "batch": true}}
	a := newAttachment(s, conn, "")
	s.clients[a] = true
	s.cancel() // the session has ended: HandleCommand closes the client
	names := &irc.Message{Tags: irc.Tags{"label": "x"}, Command: "NAMES"}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the owner
		defer wg.Done()
		for range 100 {
			s.handleCommand(a, names)
		}
	}()
	go func() { // the client's reader
		defer wg.Done()
		for range 100 {
			a.HandleCommand(names)
		}
	}()
	wg.Wait()
	if len(conn.all()) != 100 {
		t.Errorf("%d replies to 100 labeled NAMES, want 100", len(conn.all()))
	}
}
