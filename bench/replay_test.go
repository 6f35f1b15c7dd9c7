package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"

	"github.com/mxircd/mxircd/internal/testenv"
)

// replayEvents is how many messages the reconnecting client missed.
const replayEvents = 1000

// BenchmarkReplay: an IRC client that missed 1,000 messages logs in
// again; the time from its login to the last of them replayed. Each
// replayed event moves the client's cursor, which its writer saves before
// it writes the line (docs/architecture.md, "The stream, cursors and
// replay"). Run it once: the replay moves the cursor, so a second
// iteration would replay nothing (-benchtime 1x).
func BenchmarkReplay(b *testing.B) {
	hs := testenv.SharedHomeserver(b)
	debugAddr := freeLoopback(b)
	addr := startGateway(b, hs, fmt.Sprintf("[bouncer]\nalways_on = true\nreplay_limit = %d\n[debug]\nlisten = %q\n", replayEvents, debugAddr))
	alice, bob := hs.Register(b, "alice"), hs.Register(b, "bob")
	ctx := context.Background()
	room, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: fmt.Sprintf("replay%d", time.Now().UnixNano()), Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bob.Client.JoinRoom(ctx, room.RoomID.String(), nil); err != nil {
		b.Fatal(err)
	}
	// The laptop gets a cursor and leaves; the watcher stays, so that the
	// last message reaching it says the gateway has stored them all.
	laptop := loginAs(b, addr, "alice", "alice@laptop", alice)
	laptop.waitFor(b, func(m *irc.Message) bool { return m.Command == irc.RPL_ENDOFNAMES })
	laptop.send("QUIT")
	laptop.conn.Close()
	watcher := loginAs(b, addr, "alicew", "alice@watcher", alice)
	watcher.waitFor(b, func(m *irc.Message) bool { return m.Command == irc.RPL_ENDOFNAMES })

	// Sent from a few goroutines: Dendrite takes one at a time per room
	// anyway, and the order does not matter here.
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := bob.Client.SendText(ctx, room.RoomID, fmt.Sprintf("missed %04d", i)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range replayEvents - 1 {
		next <- i
	}
	close(next)
	wg.Wait()
	if _, err := bob.Client.SendText(ctx, room.RoomID, "the last one"); err != nil {
		b.Fatal(err)
	}
	watcher.waitFor(b, func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Trailing() == "the last one" })

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := cursorCommits(b, debugAddr)
		start := time.Now()
		c := loginAs(b, addr, "alice", "alice@laptop", alice)
		replayed := 0
		c.waitFor(b, func(m *irc.Message) bool {
			if m.Command == "PRIVMSG" && strings.HasPrefix(m.Trailing(), "missed ") {
				replayed++
			}
			return m.Command == "PRIVMSG" && m.Trailing() == "the last one"
		})
		elapsed := time.Since(start)
		c.conn.Close()
		if replayed != replayEvents-1 {
			b.Errorf("replayed %d missed messages, want %d", replayed, replayEvents-1)
		}
		b.ReportMetric(float64(elapsed.Microseconds())/1000, "ms/replay")
		// The watcher's cursor commits are in the count too: a few.
		b.ReportMetric(float64(cursorCommits(b, debugAddr)-before), "cursor-commits/replay")
	}
}

// loginAs logs in as account with a client name (user@client) through
// SASL, and returns without waiting.
func loginAs(b *testing.B, addr, nick, authcid string, acct *testenv.Account) *ircClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &ircClient{conn: conn, r: newReader(conn)}
	payload := base64.StdEncoding.EncodeToString([]byte("\x00" + strings.Replace(authcid, "alice", acct.UserID.String(), 1) + "\x00" + acct.Password))
	c.send("CAP REQ :sasl server-time")
	c.send("NICK %s", nick)
	c.send("USER %s 0 * :bench", nick)
	c.send("AUTHENTICATE PLAIN")
	c.send("AUTHENTICATE %s", payload)
	c.send("CAP END")
	return c
}

func freeLoopback(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cursorCommits reads how many transactions the gateway's cursor writer
// has made, from its debug counters.
func cursorCommits(b *testing.B, debugAddr string) int64 {
	resp, err := http.Get("http://" + debugAddr + "/debug/vars")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var vars struct {
		Mxircd map[string]int64 `json:"mxircd"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		b.Fatal(err)
	}
	n, ok := vars.Mxircd["cursor_commits"]
	if !ok {
		b.Fatal("the gateway does not report cursor_commits")
	}
	return n
}
