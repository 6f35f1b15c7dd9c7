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
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

const (
	// connectRooms is how many rooms the measured account is in;
	// bigRooms of them have bigRoomMembers members besides the account.
	connectRooms   = 200
	bigRooms       = 2
	bigRoomMembers = 1000
	connectTries   = 5
)

// BenchmarkConnectBurst: from TCP connect to the last 366 of the connect
// burst for an account in 200 rooms (two with 1,000 members), in one run:
//   - cold: a gateway with always_on = false, so each connect starts the
//     account's session with an initial sync, against the same account's
//     raw initial /sync (the least any client must wait for);
//   - reconnect: a gateway with always-on sessions (the default), where the
//     session is already synced and a reconnect needs no sync.
func BenchmarkConnectBurst(b *testing.B) {
	hs := testenv.SharedHomeserver(b)
	cold := startGateway(b, hs, "[bouncer]\nalways_on = false\n")
	warm := startGateway(b, hs, "")
	alice := hs.Register(b, "alice")
	ctx := context.Background()

	rooms := make([]id.RoomID, connectRooms)
	parallel(b, connectRooms, 4, func(i int) error {
		resp, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: fmt.Sprintf("Room %d", i), Topic: "a topic", Preset: "public_chat"})
		if err == nil {
			rooms[i] = resp.RoomID
		}
		return err
	})
	start := time.Now()
	parallel(b, bigRoomMembers, 8, func(int) error {
		m, err := hs.TryRegister("member")
		if err != nil {
			return err
		}
		for _, roomID := range rooms[:bigRooms] {
			if _, err := m.Client.JoinRoomByID(ctx, roomID); err != nil {
				return err
			}
		}
		return nil
	})
	fmt.Printf("\n(setup: %d members joined %d rooms in %s)\n", bigRoomMembers, bigRooms, time.Since(start).Round(time.Second))

	// One connect to each gateway first, so the gateway's first login
	// (password hashing, device) is not counted; that happens once per
	// account. On the always-on gateway it leaves the session running.
	connectAndCount(b, cold, alice)
	connectAndCount(b, warm, alice)

	var native, coldT, warmT []time.Duration
	for i := 0; i < connectTries; i++ {
		start := time.Now()
		if _, err := alice.Client.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
			b.Fatal(err)
		}
		native = append(native, time.Since(start))
		time.Sleep(500 * time.Millisecond) // let the previous cold session end
		start = time.Now()
		if n := connectAndCount(b, cold, alice); n != connectRooms {
			b.Fatalf("burst had %d channels, want %d", n, connectRooms)
		}
		coldT = append(coldT, time.Since(start))
		start = time.Now()
		if n := connectAndCount(b, warm, alice); n != connectRooms {
			b.Fatalf("burst had %d channels, want %d", n, connectRooms)
		}
		warmT = append(warmT, time.Since(start))
	}
	med := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	n, c, w := med(native), med(coldT), med(warmT)
	fmt.Printf("connect to last 366, account in %d rooms (%d with %d members), median of %d\n", connectRooms, bigRooms, bigRoomMembers, connectTries)
	fmt.Printf("%-34s %10s\n", "raw initial /sync", n.Round(time.Millisecond))
	fmt.Printf("%-34s %10s %8.2fx\n", "mxircd connect, cold session", c.Round(time.Millisecond), float64(c)/float64(n))
	fmt.Printf("%-34s %10s %8.2fx\n", "mxircd reconnect, always-on", w.Round(100*time.Microsecond), float64(w)/float64(n))
	b.ReportMetric(float64(c)/float64(n), "cold/sync-ratio")
	b.ReportMetric(float64(w)/float64(time.Millisecond), "reconnect-ms")
}

// parallel runs f(0..n-1) on at most width goroutines and fails the
// benchmark on the first error.
func parallel(b *testing.B, n, width int, f func(i int) error) {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	sem := make(chan struct{}, width)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
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
