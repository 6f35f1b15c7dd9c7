package session

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// inFlight counts calls running at once and remembers the most.
type inFlight struct {
	now, most, calls atomic.Int32
}

func (f *inFlight) enter() {
	f.calls.Add(1)
	n := f.now.Add(1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			return
		}
	}
}

func (f *inFlight) leave() { f.now.Add(-1) }

// laneSession is an unstarted session on a stand-in homeserver; the test
// plays its owner goroutine with ownUntil.
func laneSession(t *testing.T, hs http.Handler, st store.Store) *Session {
	t.Helper()
	srv := httptest.NewServer(hs)
	t.Cleanup(srv.Close)
	m := NewManager(Config{}, st)
	cli, err := mautrix.NewClient(srv.URL, "@me:x", "token")
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(m, cli)
	t.Cleanup(s.cancel)
	s.synced = true
	return s
}

// ownUntil applies the session's events, as its owner would, until done.
func ownUntil(s *Session, done func() bool) {
	for !done() {
		s.handleEvent(<-s.events)
	}
}

// A client that floods LIST gets one directory listing at a time: the
// homeserver never sees two at once, a few wait their turn and are
// answered, and the rest are told to try again.
func TestListsAreBoundedPerSession(t *testing.T) {
	var flight inFlight
	release := make(chan struct{})
	var once sync.Once
	s := laneSession(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flight.enter()
		defer flight.leave()
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"chunk":[],"total_room_count_estimate":0}`))
	}), nil)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	conn := &recorder{nick: "me"}
	a := newAttachment(s, conn, "")
	s.clients[a] = true

	const flood = 50
	for range flood {
		s.handleCommand(a, &irc.Message{Command: "LIST"})
	}
	count := func(code string) int {
		n := 0
		for _, m := range conn.all() {
			if m.Command == code {
				n++
			}
		}
		return n
	}
	if got, want := count(irc.RPL_TRYAGAIN), flood-1-maxWaitingLists; got != want {
		t.Errorf("%d LISTs told to try again, want %d", got, want)
	}
	once.Do(func() { close(release) })
	ownUntil(s, func() bool { return count(irc.RPL_LISTEND) == 1+maxWaitingLists })
	if n := flight.most.Load(); n != 1 {
		t.Errorf("%d directory requests at once, want 1", n)
	}
	if n := flight.calls.Load(); n != 1+maxWaitingLists {
		t.Errorf("%d directory requests, want %d", n, 1+maxWaitingLists)
	}
	if !s.listings.idle() || len(s.listings.waiting) != 0 {
		t.Error("the LIST lane is still busy after every answer")
	}
}

// markerStore finds every event, at the time its ID names, one caller at a
// time if the lane works; the first call waits for the test.
type markerStore struct {
	store.Store
	flight  inFlight
	release chan struct{}
	first   sync.Once
}

func (m *markerStore) FindEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*store.StoredEvent, error) {
	m.flight.enter()
	defer m.flight.leave()
	m.first.Do(func() { <-m.release })
	return &store.StoredEvent{RoomID: roomID, EventID: eventID, TS: int64(len(eventID))}, nil
}

// Read markers that come while one helper resolves others are gathered
// for one more helper: never two at once, and a marker named many times
// is looked up once.
func TestReadMarkersAreCoalesced(t *testing.T) {
	st := &markerStore{release: make(chan struct{})}
	s := laneSession(t, http.NotFoundHandler(), st)
	const roomID = id.RoomID("!r:x")
	s.rooms[roomID] = s.newRoom(roomID)

	s.resolveMarkers([]markerRef{{roomID, "$a"}})
	for range 100 {
		s.resolveMarkers([]markerRef{{roomID, "$bb"}, {roomID, "$ccc"}})
	}
	close(st.release)
	ownUntil(s, func() bool { return s.rooms[roomID].readTS == 4 && s.markers.idle() })
	if n := st.flight.most.Load(); n != 1 {
		t.Errorf("%d read-marker lookups at once, want 1", n)
	}
	if n := st.flight.calls.Load(); n != 3 {
		t.Errorf("%d read-marker lookups, want 3 (one per marked event)", n)
	}
}
