package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
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

const fanoutMessages = 5

// BenchmarkFanout: one message into a room of N members (1,000;
// MXIRCD_BENCH_FANOUT sets N), each of them both a native Matrix client
// long-polling /sync and an IRC client attached to the gateway (its own
// always-on session, its own device), all at once on the same Dendrite.
// For each message: the time until half and until all of the native
// clients have it, against the same for the IRC clients, in one run.
//
// The homeserver is a lean Dendrite of its own (testenv.Options.Lean: no
// presence, no full-text index, warnings only in its log), so that two
// cores can serve 2·N syncing devices; with MXIRCD_BENCH_DENDRITE_POSTGRES
// set to a DSN it keeps its data on PostgreSQL.
func BenchmarkFanout(b *testing.B) {
	n := 1000
	if env := os.Getenv("MXIRCD_BENCH_FANOUT"); env != "" {
		var err error
		if n, err = strconv.Atoi(env); err != nil {
			b.Fatal(err)
		}
	}
	hs := testenv.StartHomeserverWith(b, testenv.Options{Lean: true, Postgres: os.Getenv("MXIRCD_BENCH_DENDRITE_POSTGRES")})
	fmt.Printf("\n(homeserver: lean Dendrite on %s)\n", map[bool]string{false: "SQLite", true: "PostgreSQL"}[os.Getenv("MXIRCD_BENCH_DENDRITE_POSTGRES") != ""])
	extra := ""
	if d := os.Getenv("MXIRCD_BENCH_DEBUG"); d != "" {
		extra = fmt.Sprintf("[debug]\nlisten = %q\n", d) // to profile the gateway during the run
	}
	addr := startGateway(b, hs, extra)
	ctx := context.Background()
	sender := hs.Register(b, "sender")
	alias := fmt.Sprintf("fanout%d", time.Now().UnixNano())
	room, err := sender.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: alias, Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	members := make([]*testenv.Account, n)
	parallel(b, n, 8, func(i int) error {
		m, err := hs.TryRegister("fan")
		if err == nil {
			_, err = m.Client.JoinRoomByID(ctx, room.RoomID)
		}
		members[i] = m
		return err
	})
	fmt.Printf("\n(setup: %d members joined in %s)\n", n, time.Since(start).Round(time.Second))

	var mu sync.Mutex
	arrivals := map[string][]time.Duration{} // "native/msg" or "irc/msg" → arrival offsets
	var sentAt [fanoutMessages]time.Time
	var sentMu sync.Mutex
	arrived := func(path, text string) {
		i, err := strconv.Atoi(strings.TrimPrefix(text, "fanout-"))
		if err != nil || i < 0 || i >= fanoutMessages {
			return
		}
		sentMu.Lock()
		at := sentAt[i]
		sentMu.Unlock()
		mu.Lock()
		arrivals[path+"/"+text] = append(arrivals[path+"/"+text], time.Since(at))
		mu.Unlock()
	}
	stop := make(chan struct{})
	defer close(stop)

	// Native clients: a bare /sync long-poll each, as lean as a client can be.
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 16}}
	filter := url.QueryEscape(`{"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]},"room":{"ephemeral":{"not_types":["*"]},"state":{"lazy_load_members":true},"timeline":{"limit":5}}}`)
	parallel(b, n, 8, func(i int) error {
		m := members[i]
		since, _, err := rawSync(httpc, hs.URL, m, "", filter, 0)
		if err != nil {
			return err
		}
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				next, body, err := rawSync(httpc, hs.URL, m, since, filter, 30000)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for i := 0; i < fanoutMessages; i++ {
					if text := fmt.Sprintf("fanout-%d", i); bytes.Contains(body, []byte(`"`+text+`"`)) {
						arrived("native", text)
					}
				}
				since = next
			}
		}()
		return nil
	})

	fmt.Printf("(setup: %d native clients syncing after %s)\n", n, time.Since(start).Round(time.Second))

	// IRC clients, one per member, through the gateway.
	channel := "#" + alias + ":" + hs.ServerName
	parallel(b, n, 8, func(i int) error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c := &ircClient{conn: conn, r: newReader(conn)}
		c.send("CAP REQ :sasl")
		c.send("NICK f%d", i)
		c.send("USER f%d 0 * :bench", i)
		c.send("AUTHENTICATE PLAIN")
		c.send("AUTHENTICATE %s", plain(members[i]))
		c.send("CAP END")
		conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		for {
			line, err := c.r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("IRC client %d: %w", i, err)
			}
			if m, err := irc.ParseMessage(line); err == nil && m.Command == irc.RPL_ENDOFNAMES && strings.EqualFold(m.Param(1), channel) {
				break
			}
		}
		conn.SetReadDeadline(time.Time{})
		go func() {
			defer conn.Close()
			for {
				line, err := c.r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "PING ") {
					// Setting up a thousand takes longer than the
					// gateway waits for an idle client's PONG.
					c.send("PONG %s", strings.TrimSpace(line[len("PING "):]))
					continue
				}
				if !strings.Contains(line, "fanout-") {
					continue
				}
				if m, err := irc.ParseMessage(line); err == nil && m.Command == "PRIVMSG" {
					arrived("irc", m.Trailing())
				}
			}
		}()
		go func() { <-stop; conn.Close() }()
		return nil
	})
	fmt.Printf("(setup: %d IRC clients attached after %s)\n", n, time.Since(start).Round(time.Second))
	time.Sleep(3 * time.Second) // let every sync settle into its long-poll

	type result struct{ half, all time.Duration }
	var native, gateway []result
	for i := 0; i < fanoutMessages; i++ {
		text := fmt.Sprintf("fanout-%d", i)
		sentMu.Lock()
		sentAt[i] = time.Now()
		sentMu.Unlock()
		if _, err := sender.Client.SendMessageEvent(ctx, room.RoomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text}); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			nn, ni := len(arrivals["native/"+text]), len(arrivals["irc/"+text])
			mu.Unlock()
			if nn >= n && ni >= n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d native clients and %d of %d IRC clients got it", text, nn, n, ni, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		for path, out := range map[string]*[]result{"native": &native, "irc": &gateway} {
			d := slices.Clone(arrivals[path+"/"+text])
			slices.Sort(d)
			*out = append(*out, result{half: d[len(d)/2], all: d[len(d)-1]})
		}
		mu.Unlock()
		time.Sleep(2 * time.Second)
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
	all := func(r result) time.Duration { return r.all }
	fmt.Printf("one message to %d members, median of %d messages\n", n, fanoutMessages)
	fmt.Printf("%-28s %12s %12s\n", "", "half have it", "all have it")
	fmt.Printf("%-28s %12s %12s\n", "native /sync wake-up", med(native, half).Round(time.Millisecond), med(native, all).Round(time.Millisecond))
	fmt.Printf("%-28s %12s %12s\n", "mxircd IRC clients", med(gateway, half).Round(time.Millisecond), med(gateway, all).Round(time.Millisecond))
	fmt.Printf("%-28s %11.2fx %11.2fx\n", "ratio", float64(med(gateway, half))/float64(med(native, half)), float64(med(gateway, all))/float64(med(native, all)))
	b.ReportMetric(float64(med(gateway, all))/float64(med(native, all)), "all-ratio")
}

// rawSync is one /sync request with as little client as possible; it
// returns the next batch token and the body.
func rawSync(c *http.Client, hsURL string, acct *testenv.Account, since, filter string, timeout int) (string, []byte, error) {
	u := fmt.Sprintf("%s/_matrix/client/v3/sync?timeout=%d&filter=%s", hsURL, timeout, filter)
	if since != "" {
		u += "&since=" + url.QueryEscape(since)
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Authorization", "Bearer "+acct.Client.AccessToken)
	resp, err := c.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("sync: %s %v", resp.Status, err)
	}
	i := bytes.Index(body, []byte(`"next_batch":"`))
	if i < 0 {
		return "", nil, fmt.Errorf("sync: no next_batch")
	}
	rest := body[i+len(`"next_batch":"`):]
	return string(rest[:bytes.IndexByte(rest, '"')]), body, nil
}
