package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// holdingProxy forwards to the homeserver, holding every message send
// into one room until released: a room whose send does not finish, as
// when its first encrypted message shares the room key with 1,000
// devices, for as long as the test wants.
type holdingProxy struct {
	room    id.RoomID
	release chan struct{}
	once    sync.Once
	held    chan struct{} // closed when the first send into room arrives
	heldOne sync.Once
}

func startHoldingProxy(t *testing.T, hs *testenv.Homeserver, room id.RoomID) (*holdingProxy, string) {
	t.Helper()
	target, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{room: room, release: make(chan struct{}), held: make(chan struct{})}
	forward := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/rooms/"+string(room)+"/send/") {
			p.heldOne.Do(func() { close(p.held) })
			select {
			case <-p.release:
			case <-r.Context().Done():
				return
			}
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func (p *holdingProxy) let() { p.once.Do(func() { close(p.release) }) }

// A room whose message is slow to send does not hold up the account's
// lines to another room: they reach Matrix while the slow one waits. The
// slow room's own lines keep their order behind it. (One worker for all
// of an account's requests held the other room's line for as long as the
// slow one took: 4.2 s behind a first message into a room of 1,000
// devices, docs/benchmarks.md.)
func TestSlowRoomDoesNotHoldOtherRooms(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			alice := hs.Register(t, "alice")
			slowAlias, fastAlias := uniq("slow"), uniq("fast")
			slow := createRoom(t, alice, slowAlias, "")
			createRoom(t, alice, fastAlias, "")
			slowChan, fastChan := "#"+slowAlias+":"+hs.ServerName, "#"+fastAlias+":"+hs.ServerName

			proxy, proxyURL := startHoldingProxy(t, hs, slow)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.Matrix.Homeserver = proxyURL
			}))
			t.Cleanup(proxy.let) // before the gateway's shutdown, which would wait for the held send
			c := connectWithCaps(t, g, "alice", alice, "echo-message")
			joined := map[string]bool{}
			c.ExpectMatch(t, func(m *irc.Message) bool {
				if m.Command == "JOIN" {
					joined[m.Param(0)] = true
				}
				return joined[slowChan] && joined[fastChan]
			}, "JOIN of both rooms")

			c.Send("PRIVMSG %s :slow one", slowChan)
			c.Send("PRIVMSG %s :slow two", slowChan)
			<-proxy.held
			c.Send("PRIVMSG %s :fast one", fastChan)
			// The echo comes through sync: the line reached the homeserver
			// while the slow room's send is still held.
			expectFrom(t, c, "PRIVMSG", "alice", "fast one")

			proxy.let()
			first := c.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "PRIVMSG" && m.Param(0) == slowChan
			}, "the slow room's first line")
			if first.Trailing() != "slow one" {
				t.Fatalf("the slow room's lines came out of order: first %q", first.Trailing())
			}
			expectFrom(t, c, "PRIVMSG", "alice", "slow two")
		})
	}
}
