package bench

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"

	"github.com/mxircd/mxircd/internal/testenv"
)

// connectRooms is how many rooms the measured account is in.
const connectRooms = 200

// BenchmarkConnectBurst: from TCP connect to the last 366 of the connect
// burst for an account in 200 rooms, against the same account's raw
// initial /sync (the least any client must wait for), in one run. The
// gateway runs no session for the account before each connect, so every
// connect includes its initial sync.
func BenchmarkConnectBurst(b *testing.B) {
	hs := testenv.SharedHomeserver(b)
	addr := startGateway(b, hs)
	alice := hs.Register(b, "alice")
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := 0; i < connectRooms; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: fmt.Sprintf("Room %d", i), Topic: "a topic", Preset: "public_chat"}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	// One connect first, so the gateway's login (password hashing, device)
	// is not counted; that happens once per account.
	connectAndCount(b, addr, alice)

	const tries = 5
	var native, gateway []time.Duration
	for i := 0; i < tries; i++ {
		start := time.Now()
		if _, err := alice.Client.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
			b.Fatal(err)
		}
		native = append(native, time.Since(start))
		time.Sleep(500 * time.Millisecond) // let the previous session end
		start = time.Now()
		if n := connectAndCount(b, addr, alice); n != connectRooms {
			b.Fatalf("burst had %d channels, want %d", n, connectRooms)
		}
		gateway = append(gateway, time.Since(start))
	}
	med := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	n, g := med(native), med(gateway)
	fmt.Printf("\nconnect to last 366, account in %d rooms, median of %d\n", connectRooms, tries)
	fmt.Printf("%-22s %12s\n%-22s %12s\n%-22s %11.2fx\n", "raw initial /sync", n.Round(time.Millisecond),
		"mxircd connect burst", g.Round(time.Millisecond), "ratio", float64(g)/float64(n))
	b.ReportMetric(float64(g)/float64(n), "burst/sync-ratio")
}

// connectAndCount logs in, counts the channels of the connect burst until
// the expected number have ended (366), and quits.
func connectAndCount(b *testing.B, addr string, acct *testenv.Account) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &ircClient{conn: conn, r: newReader(conn)}
	c.send("CAP REQ :sasl")
	c.send("NICK alice")
	c.send("USER alice 0 * :bench")
	c.send("AUTHENTICATE PLAIN")
	c.send("AUTHENTICATE %s", plain(acct))
	c.send("CAP END")
	ends := 0
	c.waitFor(b, func(m *irc.Message) bool {
		if m.Command == irc.RPL_ENDOFNAMES {
			ends++
		}
		return ends == connectRooms
	})
	c.send("QUIT")
	conn.Close()
	return ends
}
