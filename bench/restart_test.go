package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// BenchmarkRestart measures a restart of the gateway with n always-on
// sessions (MXIRCD_BENCH_SESSIONS, default 1,000) on the synthetic
// homeserver (50 rooms of 20 members each): the time from starting the
// process until every session is live (mxircd_sessions{state="live"}),
// side by side in one run for a resume with full-state syncs (what every
// restart did before room state was stored; here forced by clearing the
// stored room lists) and for the incremental resume from stored state.
//
//	go test -tags goolm -run '^$' -bench Restart -benchtime 1x ./bench/
//
// With MXIRCD_BENCH_RESTART=stored it measures the resume from stored
// state alone, from a store seeded with what a first start would have
// saved (tokens, room lists, room state): a first start and a full-state
// resume of 10,000 sessions take longer than a busy machine can give.
func BenchmarkRestart(b *testing.B) {
	n := 1000
	if env := os.Getenv("MXIRCD_BENCH_SESSIONS"); env != "" {
		v, err := strconv.Atoi(strings.Split(env, ",")[0])
		if err != nil {
			b.Fatalf("MXIRCD_BENCH_SESSIONS: %v", err)
		}
		n = v
	}
	bin := buildGateway(b)
	hs := newSyntheticHS(b, max(n, memMembersPerRoom), memRoomsPerUser, memMembersPerRoom, true)
	dir := b.TempDir()
	sc := storetest.Config(b, memDriver())
	seedAccounts(b, sc, hs.srv.URL, n)
	ircAddr, debugAddr := freePort(b), freePort(b)
	config := fmt.Sprintf("[irc]\nlisten = [%q]\n[matrix]\nhomeserver = %q\nserver_name = %q\n[store]\ndriver = %q\npath = %q\ndsn = %q\n[encryption]\nenabled = false\npickle_key_file = %q\n[debug]\nlisten = %q\n[log]\nlevel = \"warn\"\n",
		ircAddr, hs.srv.URL, syntheticServer, sc.Driver, sc.Path, sc.DSN, filepath.Join(dir, "pickle.key"), debugAddr)
	env := []string{"SSL_CERT_FILE=" + hs.caFile(b, dir)}

	// run starts the gateway, waits until all n sessions are live and
	// idle, stops it gracefully, and returns the time to all live.
	run := func(what string) time.Duration {
		start := time.Now()
		cmd := runGateway(b, bin, dir, config, ircAddr, env...)
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		profiled := make(chan struct{})
		if pdir := os.Getenv("MXIRCD_BENCH_PROFILES"); pdir != "" {
			// A CPU profile of the start's first 30 seconds.
			go func() {
				defer close(profiled)
				resp, err := http.Get("http://" + debugAddr + "/debug/pprof/profile?seconds=30")
				if err != nil {
					return
				}
				defer resp.Body.Close()
				if f, err := os.Create(filepath.Join(pdir, "restart-"+strings.ReplaceAll(what, " ", "-")+".pprof")); err == nil {
					io.Copy(f, resp.Body)
					f.Close()
				}
			}()
		} else {
			close(profiled)
		}
		defer func() { <-profiled }()
		for deadline := start.Add(15 * time.Minute); liveSessions(b, debugAddr) < n; {
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d sessions live after 15 minutes", what, liveSessions(b, debugAddr), n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		waitIdle(b, debugAddr)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		return took
	}
	b.ResetTimer()
	if os.Getenv("MXIRCD_BENCH_RESTART") == "stored" {
		seedStored(b, sc, hs, n)
		incr := run("incremental resume")
		b.StopTimer()
		fmt.Printf("restart of %d always-on sessions (%d rooms of %d, HTTPS/HTTP/2, store %s), from process start to all live:\n",
			n, n*memRoomsPerUser/memMembersPerRoom, memMembersPerRoom, memDriver())
		fmt.Printf("  resume from stored state      %8.1f s  (%d full-state syncs)\n", incr.Seconds(), hs.initialSyncs.Load())
		b.ReportMetric(incr.Seconds(), "s-incremental")
		return
	}
	first := run("first start")
	syncsBefore := hs.initialSyncs.Load()
	forgetRooms(b, sc)
	full := run("full-state resume")
	fullSyncs := hs.initialSyncs.Load() - syncsBefore
	syncsBefore = hs.initialSyncs.Load()
	incr := run("incremental resume")
	incrSyncs := hs.initialSyncs.Load() - syncsBefore
	b.StopTimer()
	fmt.Printf("restart of %d always-on sessions (%d rooms of %d, HTTPS/HTTP/2, store %s), from process start to all live:\n",
		n, n*memRoomsPerUser/memMembersPerRoom, memMembersPerRoom, memDriver())
	fmt.Printf("  first start (initial syncs)   %8.1f s\n", first.Seconds())
	fmt.Printf("  resume with full-state syncs  %8.1f s  (%d full-state syncs)\n", full.Seconds(), fullSyncs)
	fmt.Printf("  resume from stored state      %8.1f s  (%d full-state syncs)\n", incr.Seconds(), incrSyncs)
	fmt.Printf("  ratio full-state / stored     %8.1f\n", full.Seconds()/incr.Seconds())
	b.ReportMetric(full.Seconds(), "s-full-state")
	b.ReportMetric(incr.Seconds(), "s-incremental")
}

// liveSessions reads mxircd_sessions{state="live"} from the gateway's
// metrics.
func liveSessions(b *testing.B, debugAddr string) int {
	resp, err := http.Get("http://" + debugAddr + "/metrics")
	if err != nil {
		return 0 // not listening yet
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `mxircd_sessions{state="live"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return int(f)
		}
	}
	return 0
}

// forgetRooms makes the store as it was before room state was stored:
// the next start resumes every session with a full-state sync.
func forgetRooms(b *testing.B, sc store.Config) {
	ctx := context.Background()
	st, err := store.Open(ctx, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := storetest.RawDB(b, sc).ExecContext(ctx, `UPDATE sync_state SET rooms_stored = 0`); err != nil {
		b.Fatal(err)
	}
}

// seedStored writes what the first start of n sessions would have saved:
// each account's token and rooms, and each room's state.
func seedStored(b *testing.B, sc store.Config, hs *syntheticHS, n int) {
	ctx := context.Background()
	st, err := store.Open(ctx, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tx, err := storetest.RawDB(b, sc).BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	// Rows go in statements of many rows each: one at a time, a million
	// rows take longer than the restart they prepare.
	type batch struct {
		head string
		cols int
		args []any
	}
	flush := func(bt *batch) {
		if len(bt.args) == 0 {
			return
		}
		var q strings.Builder
		q.WriteString(bt.head)
		for i := 0; i < len(bt.args); i += bt.cols {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('(')
			for c := 0; c < bt.cols; c++ {
				if c > 0 {
					q.WriteByte(',')
				}
				fmt.Fprintf(&q, "$%d", i+c+1)
			}
			q.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, q.String(), bt.args...); err != nil {
			b.Fatal(err)
		}
		bt.args = bt.args[:0]
	}
	add := func(bt *batch, vals ...any) {
		bt.args = append(bt.args, vals...)
		if len(bt.args) >= 900 { // SQLite allows 32,766 parameters, PostgreSQL 65,535
			flush(bt)
		}
	}
	syncs := &batch{head: `INSERT INTO sync_state (user_id, next_batch, head, rooms_stored) VALUES `, cols: 4}
	rooms := &batch{head: `INSERT INTO account_rooms (user_id, room_id) VALUES `, cols: 2}
	// The channel names the first start made up from the room names.
	names := &batch{head: `INSERT INTO channel_names (user_id, room_id, name) VALUES `, cols: 3}
	states := &batch{head: `INSERT INTO room_state (seq, room_id, event_id, type, state_key, json) VALUES `, cols: 6}
	for i := 0; i < n; i++ {
		add(syncs, syntheticUser(i), "s1", 0, 1)
		for j := 0; j < hs.roomsPerUser; j++ {
			r := (j*hs.users + i) / hs.membersPerRoom
			add(rooms, syntheticUser(i), fmt.Sprintf("!r%d:%s", r, syntheticServer))
			add(names, syntheticUser(i), fmt.Sprintf("!r%d:%s", r, syntheticServer), mapping.ReadableChannel(fmt.Sprintf("Room %d", r)))
		}
	}
	var seq int64
	for r, raw := range hs.rooms {
		var section struct {
			State struct {
				Events []map[string]any `json:"events"`
			} `json:"state"`
		}
		if err := json.Unmarshal(raw, &section); err != nil {
			b.Fatal(err)
		}
		roomID := fmt.Sprintf("!r%d:%s", r, syntheticServer)
		for _, ev := range section.State.Events {
			ev["room_id"] = roomID
			js, _ := json.Marshal(ev)
			seq++
			add(states, seq, roomID, ev["event_id"], ev["type"], ev["state_key"], string(js))
		}
	}
	for _, bt := range []*batch{syncs, rooms, names, states} {
		flush(bt)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = $1 WHERE name = 'state'`, seq); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
