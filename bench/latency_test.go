// Package bench measures mxircd against the native Matrix path, side by
// side in one run, on the test homeserver. Run with
//
//	go test -tags goolm -run '^$' -bench . -benchtime 1x ./bench/
//
// Figures are ratios between the two paths measured in the same run; the
// absolute times depend on the machine and on Dendrite.
package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// rounds is how many messages each path sends, one at a time, pace apart:
// slower than the gateway's flood control (5 lines a second after a burst),
// as a person types, so that the figure is latency, not throttling.
const (
	rounds = 300
	pace   = 250 * time.Millisecond
)

// BenchmarkMessageLatency: IRC client A → mxircd → homeserver → mxircd →
// IRC client B, against mautrix client A → homeserver → mautrix client B
// (send, then B's /sync wakes up). One message at a time; p50/p95/p99 of
// each path and their ratios.
func BenchmarkMessageLatency(b *testing.B) {
	hs := testenv.SharedHomeserver(b)
	addr := startGateway(b, hs, "")
	alice, bob := hs.Register(b, "alice"), hs.Register(b, "bob")
	ctx := context.Background()
	room, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: fmt.Sprintf("bench%d", time.Now().UnixNano()), Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bob.Client.JoinRoom(ctx, room.RoomID.String(), nil); err != nil {
		b.Fatal(err)
	}

	for i := 0; i < b.N; i++ {
		native := nativeLatencies(b, alice, bob, room.RoomID)
		gateway := gatewayLatencies(b, addr, alice, bob)
		report(b, native, gateway)
	}
}

func nativeLatencies(b *testing.B, alice, bob *testenv.Account, room id.RoomID) []time.Duration {
	ctx := context.Background()
	// Alice's client syncs too, as every client does (and as her gateway
	// session does on the other path): the homeserver wakes two long-polls
	// for each message on both paths.
	first, err := alice.Client.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		b.Fatal(err)
	}
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go keepSyncing(syncCtx, alice.Client, first.NextBatch)
	// Catch bob's sync up first, so each round waits for one new event.
	since := ""
	resp, err := bob.Client.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		b.Fatal(err)
	}
	since = resp.NextBatch
	var out []time.Duration
	for r := 0; r < rounds; r++ {
		time.Sleep(pace)
		text := fmt.Sprintf("native %d", r)
		start := time.Now()
		if _, err := alice.Client.SendText(ctx, room, text); err != nil {
			b.Fatal(err)
		}
		for found := false; !found; {
			resp, err := bob.Client.SyncRequest(ctx, 30000, since, "", false, "")
			if err != nil {
				b.Fatal(err)
			}
			since = resp.NextBatch
			if joined := resp.Rooms.Join[room]; joined != nil {
				for _, ev := range joined.Timeline.Events {
					if ev.Type == event.EventMessage && strings.Contains(string(ev.Content.VeryRaw), text+`"`) {
						found = true
					}
				}
			}
		}
		out = append(out, time.Since(start))
	}
	return out
}

// keepSyncing long-polls cli's /sync from since until ctx ends, as an
// idle client.
func keepSyncing(ctx context.Context, cli *mautrix.Client, since string) {
	for ctx.Err() == nil {
		resp, err := cli.SyncRequest(ctx, 30000, since, "", false, "")
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		since = resp.NextBatch
	}
}

func gatewayLatencies(b *testing.B, addr string, alice, bob *testenv.Account) []time.Duration {
	a := dial(b, addr, "alice", alice)
	c := dial(b, addr, "bob", bob)
	channel := a.channel
	var out []time.Duration
	for r := 0; r < rounds; r++ {
		time.Sleep(pace)
		text := fmt.Sprintf("irc %d", r)
		start := time.Now()
		a.send("PRIVMSG %s :%s", channel, text)
		c.waitFor(b, func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Trailing() == text })
		out = append(out, time.Since(start))
	}
	a.conn.Close()
	c.conn.Close()
	return out
}

func report(b *testing.B, native, gateway []time.Duration) {
	slices.Sort(native)
	slices.Sort(gateway)
	p := func(d []time.Duration, q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	fmt.Printf("\nmessage latency, %d messages each, one every %s\n", rounds, pace)
	fmt.Printf("%-6s %12s %12s %8s\n", "", "native", "mxircd", "ratio")
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}} {
		n, g := p(native, q.q), p(gateway, q.q)
		ratio := float64(g) / float64(n)
		fmt.Printf("%-6s %12s %12s %7.2fx\n", q.name, n.Round(10*time.Microsecond), g.Round(10*time.Microsecond), ratio)
		b.ReportMetric(ratio, q.name+"-ratio")
	}
}

// startGateway builds and runs the mxircd binary against hs, as operators
// run it.
// startGateway builds and starts the mxircd binary against hs, with extra
// TOML appended to its config, and returns its IRC address.
func startGateway(b *testing.B, hs *testenv.Homeserver, extra string) string {
	return startGatewayIn(b, hs, b.TempDir(), extra)
}

// startGatewayIn is startGateway with its files (SQLite store, config,
// pickle key) in dir, for benchmarks that look into the store afterwards.
func startGatewayIn(b *testing.B, hs *testenv.Homeserver, dir, extra string) string {
	bin := filepath.Join(dir, "mxircd")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-tags", "goolm", "-o", bin, "./cmd/mxircd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// Clients keep the nicks the benchmarks give them (alice, f1, ...).
	config := fmt.Sprintf("[irc]\nlisten = [%q]\nkeep_client_nick = true\n[matrix]\nhomeserver = %q\nserver_name = %q\n[store]\npath = %q\n[log]\nlevel = \"warn\"\n",
		addr, hs.URL, hs.ServerName, filepath.Join(dir, "mxircd.db")) + extra
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "config.toml"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatal("mxircd did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
