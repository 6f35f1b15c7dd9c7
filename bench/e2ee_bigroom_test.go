package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	_ "modernc.org/sqlite"

	"github.com/mxircd/mxircd/internal/testenv"
)

// BenchmarkEncryptedBigRoom: the first message typed on IRC into an
// end-to-end encrypted room of N other members (1,000;
// MXIRCD_BENCH_E2EE_MEMBERS sets N), each with one device that has
// published its identity and one-time keys. That message carries the
// gateway's Megolm key to every device: /keys/query for N users, a
// one-time key claimed and an Olm session made per device, and the
// to-device messages. Reported: the time until the encrypted event is in
// the room (seen by a member's /sync), the number of Olm sessions the
// gateway's device made, the second message into the same room (no
// sharing), and a message into a small encrypted room sent 50 ms after
// the first big-room one (does the key sharing hold up the account's
// other rooms?) against the same message alone. Run with -benchtime 1x:
// the first message of a room happens once.
func BenchmarkEncryptedBigRoom(b *testing.B) {
	n := 1000
	if env := os.Getenv("MXIRCD_BENCH_E2EE_MEMBERS"); env != "" {
		var err error
		if n, err = strconv.Atoi(env); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	hs := testenv.StartHomeserverWith(b, testenv.Options{Lean: true})
	dir := b.TempDir()
	addr := startGatewayIn(b, hs, dir, "")
	alice := hs.Register(b, "alice")

	// The watcher makes both rooms and reports when alice's events land.
	watcher := hs.Register(b, "watcher")
	encryption := &event.Event{Type: event.StateEncryption, Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}
	big, err := watcher.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "big", Preset: "public_chat", InitialState: []*event.Event{encryption}})
	if err != nil {
		b.Fatal(err)
	}
	small, err := watcher.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "small", Preset: "public_chat", InitialState: []*event.Event{encryption}})
	if err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	nop := zerolog.Nop()
	parallel(b, n, 8, func(i int) error {
		m, err := hs.TryRegister("member")
		if err != nil {
			return err
		}
		// A real device: identity keys and one-time keys, as any
		// Matrix client uploads them.
		mach := crypto.NewOlmMachine(m.Client, &nop, crypto.NewMemoryStore(nil), noRooms{})
		if err := mach.Load(ctx); err != nil {
			return err
		}
		if err := mach.ShareKeys(ctx, 0); err != nil {
			return fmt.Errorf("uploading keys of %s: %w", m.UserID, err)
		}
		_, err = m.Client.JoinRoomByID(ctx, big.RoomID)
		return err
	})
	fmt.Printf("\n(setup: %d members with a device each joined in %s)\n", n, time.Since(start).Round(time.Second))

	// alice comes on IRC now: an idle client that answers no PING for
	// the minutes of the setup would be disconnected.
	a := login(b, addr, "alice", alice)
	defer a.conn.Close()
	a.waitFor(b, func(m *irc.Message) bool { return m.Command == irc.RPL_ENDOFMOTD || m.Command == irc.ERR_NOMOTD })
	waitDeviceKeys(b, alice)

	channels := map[id.RoomID]string{}
	for _, room := range []id.RoomID{big.RoomID, small.RoomID} {
		if _, err := alice.Client.JoinRoomByID(ctx, room); err != nil {
			b.Fatal(err)
		}
		a.waitFor(b, func(m *irc.Message) bool {
			if m.Command == "JOIN" && m.Prefix != nil && m.Prefix.Name == "alice" {
				channels[room] = m.Param(0)
			}
			return channels[room] != ""
		})
	}
	// What else the gateway tells alice (names, echoes) is read and
	// dropped, so that her connection never falls behind.
	go func() {
		for {
			if _, err := a.r.ReadString('\n'); err != nil {
				return
			}
		}
	}()

	landed := watch(ctx, b, watcher, alice.UserID)
	send := func(room id.RoomID, text string) time.Time {
		at := time.Now()
		a.send("PRIVMSG %s :%s", channels[room], text)
		return at
	}
	wait := func(room id.RoomID, since time.Time) time.Duration {
		for {
			select {
			case l := <-landed:
				if l.room == room {
					return l.at.Sub(since)
				}
			case <-time.After(5 * time.Minute):
				b.Fatalf("alice's message never reached %s", room)
			}
		}
	}

	for i := 0; i < b.N; i++ {
		if i > 0 {
			break // the first message of a room happens once
		}
		smallAlone := wait(small.RoomID, send(small.RoomID, "small first")) // its own key sharing, out of the way
		time.Sleep(time.Second)
		smallAlone = wait(small.RoomID, send(small.RoomID, "small alone"))

		time.Sleep(time.Second)
		bigFirstAt := send(big.RoomID, "big first")
		time.Sleep(50 * time.Millisecond)
		smallDuringAt := send(small.RoomID, "small during")
		var bigFirst, smallDuring time.Duration
		for got := 0; got < 2; got++ {
			select {
			case l := <-landed:
				switch l.room {
				case big.RoomID:
					bigFirst = l.at.Sub(bigFirstAt)
				case small.RoomID:
					smallDuring = l.at.Sub(smallDuringAt)
				}
			case <-time.After(10 * time.Minute):
				b.Fatal("a message never landed")
			}
		}
		time.Sleep(time.Second)
		bigSecond := wait(big.RoomID, send(big.RoomID, "big second"))

		sessions := olmSessions(b, filepath.Join(dir, "mxircd.db"))
		fmt.Printf("\nfirst message into an encrypted room of %d member devices (IRC → in the room)\n", n)
		fmt.Printf("  first message (shares the key):   %8s   Olm sessions made: %d\n", bigFirst.Round(time.Millisecond), sessions)
		fmt.Printf("  second message:                   %8s\n", bigSecond.Round(time.Millisecond))
		fmt.Printf("  small room, 50 ms after the first: %8s   (alone: %s, %.1f×)\n", smallDuring.Round(time.Millisecond), smallAlone.Round(time.Millisecond), float64(smallDuring)/float64(smallAlone))
		b.ReportMetric(bigFirst.Seconds(), "first-s")
		b.ReportMetric(bigSecond.Seconds(), "second-s")
		b.ReportMetric(float64(sessions), "olm-sessions")
		b.ReportMetric(float64(smallDuring)/float64(smallAlone), "other-room-x")
	}
}

// noRooms is the members' state store: they never send, so they need to
// know of no encrypted rooms.
type noRooms struct{}

func (noRooms) IsEncrypted(context.Context, id.RoomID) (bool, error) { return false, nil }
func (noRooms) GetEncryptionEvent(context.Context, id.RoomID) (*event.EncryptionEventContent, error) {
	return nil, nil
}
func (noRooms) GetHistoryVisibility(context.Context, id.RoomID) (*event.HistoryVisibilityEventContent, error) {
	return nil, nil
}
func (noRooms) FindSharedRooms(context.Context, id.UserID) ([]id.RoomID, error) { return nil, nil }

// landing is when one of the sender's encrypted events was first in a
// room's timeline.
type landing struct {
	room id.RoomID
	at   time.Time
}

// watch long-polls watcher's /sync and reports each m.room.encrypted
// event from sender, in order.
func watch(ctx context.Context, b *testing.B, watcher *testenv.Account, sender id.UserID) <-chan landing {
	resp, err := watcher.Client.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan landing, 16)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		since := resp.NextBatch
		for ctx.Err() == nil {
			resp, err := watcher.Client.SyncRequest(ctx, 30000, since, "", false, "")
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			now := time.Now()
			for room, joined := range resp.Rooms.Join {
				for _, ev := range joined.Timeline.Events {
					if ev.Sender == sender && ev.Type == event.EventEncrypted {
						out <- landing{room: room, at: now}
					}
				}
			}
			since = resp.NextBatch
		}
	}()
	return out
}

// olmSessions counts the Olm sessions in the gateway's store (alice's
// device is its only one).
func olmSessions(b *testing.B, path string) int {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM crypto_olm_session`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
