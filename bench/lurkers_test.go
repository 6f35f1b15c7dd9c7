package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

const lurkerMessages = 5

// BenchmarkLurkers: N anonymous lurkers (issue 16) read one public room
// through the guests' shared session, and N IRC clients attached to one
// logged-in account (client names c0…) sit in the same room, on one
// gateway against a lean Dendrite of its own. Both groups are one Matrix
// session each, so what differs is what the gateway does per connection.
// Reported: memory per lurker connection against per attached client
// (growth of the Go heap and stacks after a GC, and of the RSS, divided
// by N), and for each message from a Matrix user the time until half,
// 99% and all of each group have it (median of lurkerMessages messages).
// N is 1,000 (MXIRCD_BENCH_LURKERS sets it).
func BenchmarkLurkers(b *testing.B) {
	n := 1000
	if env := os.Getenv("MXIRCD_BENCH_LURKERS"); env != "" {
		var err error
		if n, err = strconv.Atoi(env); err != nil {
			b.Fatal(err)
		}
	}
	hs := testenv.StartHomeserverWith(b, testenv.Options{Lean: true})
	ctx := context.Background()
	sender, reader := hs.Register(b, "sender"), hs.Register(b, "reader")
	alias := fmt.Sprintf("lurk%d", time.Now().UnixNano())
	room, err := sender.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		RoomAliasName: alias, Preset: "public_chat",
		InitialState: []*event.Event{{Type: event.StateGuestAccess,
			Content: event.Content{Parsed: &event.GuestAccessEventContent{GuestAccess: event.GuestAccessCanJoin}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reader.Client.JoinRoomByID(ctx, room.RoomID); err != nil {
		b.Fatal(err)
	}
	channel := "#" + alias + ":" + hs.ServerName

	dir := b.TempDir()
	bin := buildGateway(b)
	ircAddr, debugAddr := freePort(b), freePort(b)
	config := fmt.Sprintf("[irc]\nlisten = [%q]\nmax_connections_per_address = 0\nmax_sendq = 4194304\n[matrix]\nhomeserver = %q\nserver_name = %q\n"+
		"[guests]\nenabled = true\nhistory_on_join = 0\n[store]\npath = %q\n[encryption]\npickle_key_file = %q\n[debug]\nlisten = %q\n[log]\nlevel = \"warn\"\n",
		ircAddr, hs.URL, hs.ServerName, filepath.Join(dir, "mxircd.db"), filepath.Join(dir, "pickle.key"), debugAddr)
	cmd := runGateway(b, bin, dir, config, ircAddr)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	var mu sync.Mutex
	arrivals := map[string][]time.Duration{} // "lurker/msg" or "attached/msg"
	var sentAt [lurkerMessages]time.Time
	stop := make(chan struct{})
	defer close(stop)
	listen := func(group string, c *ircClient) {
		c.conn.SetReadDeadline(time.Time{})
		go func() {
			defer c.conn.Close()
			for {
				line, err := c.r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "PING ") {
					c.send("PONG %s", strings.TrimSpace(line[len("PING "):]))
					continue
				}
				i := strings.Index(line, "lurkbench-")
				if i < 0 {
					continue
				}
				k, err := strconv.Atoi(strings.TrimSpace(line[i+len("lurkbench-"):]))
				if err != nil || k < 0 || k >= lurkerMessages {
					continue
				}
				mu.Lock()
				arrivals[group+"/"+strconv.Itoa(k)] = append(arrivals[group+"/"+strconv.Itoa(k)], time.Since(sentAt[k]))
				mu.Unlock()
			}
		}()
		go func() { <-stop; c.conn.Close() }()
	}
	joinLurker := func(i int) (*ircClient, error) {
		conn, err := net.Dial("tcp", ircAddr)
		if err != nil {
			return nil, err
		}
		c := &ircClient{conn: conn, r: newReader(conn)}
		c.send("NICK l%d", i)
		c.send("USER l%d 0 * :bench", i)
		c.send("JOIN %s", channel)
		return c, waitLine(c, func(m *irc.Message) bool {
			return m.Command == irc.RPL_ENDOFNAMES && strings.EqualFold(m.Param(1), channel)
		})
	}
	attach := func(i int) (*ircClient, error) {
		conn, err := net.Dial("tcp", ircAddr)
		if err != nil {
			return nil, err
		}
		c := &ircClient{conn: conn, r: newReader(conn)}
		c.send("CAP REQ :sasl")
		c.send("NICK a%d", i)
		c.send("USER a%d 0 * :bench", i)
		c.send("AUTHENTICATE PLAIN")
		c.send("AUTHENTICATE %s", plainAs(fmt.Sprintf("%s@c%d", reader.Localpart, i), reader.Password))
		c.send("CAP END")
		return c, waitLine(c, func(m *irc.Message) bool {
			return m.Command == irc.RPL_ENDOFNAMES && strings.EqualFold(m.Param(1), channel)
		})
	}

	// One of each first, so that both sessions run before measuring.
	start := time.Now()
	first, err := joinLurker(-1)
	if err != nil {
		b.Fatal(err)
	}
	listen("lurker", first)
	one, err := attach(-1)
	if err != nil {
		b.Fatal(err)
	}
	listen("attached", one)
	waitIdle(b, debugAddr)
	before := sample(b, debugAddr, cmd.Process.Pid)

	var connMu sync.Mutex
	parallel(b, n, 8, func(i int) error {
		c, err := joinLurker(i)
		if err == nil {
			connMu.Lock()
			listen("lurker", c)
			connMu.Unlock()
		}
		return err
	})
	waitIdle(b, debugAddr)
	withLurkers := sample(b, debugAddr, cmd.Process.Pid)
	fmt.Printf("\n(setup: %d lurkers reading after %s)\n", n, time.Since(start).Round(time.Second))
	parallel(b, n, 8, func(i int) error {
		c, err := attach(i)
		if err == nil {
			connMu.Lock()
			listen("attached", c)
			connMu.Unlock()
		}
		return err
	})
	waitIdle(b, debugAddr)
	withAttached := sample(b, debugAddr, cmd.Process.Pid)
	fmt.Printf("(setup: %d attached clients after %s)\n", n, time.Since(start).Round(time.Second))
	time.Sleep(2 * time.Second)

	per := func(after, before memSample) (goMem, rss float64) {
		return float64(after.heap+after.stacks-before.heap-before.stacks) / float64(n) / 1024,
			float64(int64(after.rss)-int64(before.rss)) / float64(n) / 1024
	}
	lg, lr := per(withLurkers, before)
	ag, ar := per(withAttached, withLurkers)
	fmt.Printf("memory per connection, %d of each\n", n)
	fmt.Printf("%-28s %14s %14s\n", "", "Go heap+stacks", "RSS")
	fmt.Printf("%-28s %11.1f KiB %11.1f KiB\n", "lurker", lg, lr)
	fmt.Printf("%-28s %11.1f KiB %11.1f KiB\n", "attached client", ag, ar)

	total := n + 1
	type result struct{ half, p99, all time.Duration }
	results := map[string][]result{}
	for k := 0; k < lurkerMessages; k++ {
		text := fmt.Sprintf("lurkbench-%d", k)
		mu.Lock()
		sentAt[k] = time.Now()
		mu.Unlock()
		if _, err := sender.Client.SendText(ctx, room.RoomID, text); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			nl, na := len(arrivals["lurker/"+strconv.Itoa(k)]), len(arrivals["attached/"+strconv.Itoa(k)])
			mu.Unlock()
			if nl >= total && na >= total {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d lurkers and %d of %d attached clients got it", text, nl, total, na, total)
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		for _, group := range []string{"lurker", "attached"} {
			d := slices.Clone(arrivals[group+"/"+strconv.Itoa(k)])
			slices.Sort(d)
			results[group] = append(results[group], result{half: d[len(d)/2], p99: d[len(d)*99/100], all: d[len(d)-1]})
		}
		mu.Unlock()
		time.Sleep(time.Second)
	}
	med := func(rs []result, f func(result) time.Duration) time.Duration {
		d := make([]time.Duration, len(rs))
		for i, r := range rs {
			d[i] = f(r)
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	half := func(r result) time.Duration { return r.half }
	p99 := func(r result) time.Duration { return r.p99 }
	all := func(r result) time.Duration { return r.all }
	fmt.Printf("one message to %d lurkers and %d attached clients of one account, median of %d messages\n", total, total, lurkerMessages)
	fmt.Printf("%-28s %10s %10s %10s\n", "", "half", "99%", "all")
	for _, group := range []string{"lurker", "attached"} {
		rs := results[group]
		fmt.Printf("%-28s %10s %10s %10s\n", map[string]string{"lurker": "lurkers", "attached": "attached clients"}[group], med(rs, half).Round(time.Millisecond), med(rs, p99).Round(time.Millisecond), med(rs, all).Round(time.Millisecond))
	}
	ratio := func(f func(result) time.Duration) float64 {
		return float64(med(results["lurker"], f)) / float64(med(results["attached"], f))
	}
	fmt.Printf("%-28s %9.2fx %9.2fx %9.2fx\n", "lurkers / attached", ratio(half), ratio(p99), ratio(all))
	b.ReportMetric(lg, "KiB/lurker")
	b.ReportMetric(ratio(all), "all-ratio")
}

// waitLine reads until pred accepts a line, answering pings, for at most
// two minutes.
func waitLine(c *ircClient, pred func(*irc.Message) bool) error {
	c.conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		m, err := irc.ParseMessage(line)
		if err != nil {
			continue
		}
		if m.Command == "PING" {
			c.send("PONG :%s", m.Trailing())
		}
		if m.Command == "ERROR" {
			return fmt.Errorf("closed: %s", m.Trailing())
		}
		if pred(m) {
			return nil
		}
	}
}

// plainAs is the SASL PLAIN payload for authcid (an account with a
// client name) and password.
func plainAs(authcid, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + authcid + "\x00" + password))
}
