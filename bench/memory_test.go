package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

const (
	memRoomsPerUser   = 50
	memMembersPerRoom = 20
	memAttached       = 500 // IRC clients attached in each run (at most the sessions)
)

// BenchmarkSessionMemory: the gateway's heap and RSS per always-on session
// with no client attached, and per attached IRC client, at 100, 1,000 and
// 10,000 sessions (MXIRCD_BENCH_SESSIONS overrides; MXIRCD_BENCH_TRANSPORTS
// = h2 or h1 runs one transport only), each account in 50
// rooms of 20 members, rooms shared between accounts. The homeserver is
// the synthetic one (bench/synthetic_test.go): Dendrite on two cores cannot
// serve 10,000 syncing accounts, and this measures the gateway alone. The
// built binary runs with its always-on sessions resumed from a seeded
// store, as after a restart; its memory is read from its debug listener
// after a forced GC, and its RSS from /proc.
func BenchmarkSessionMemory(b *testing.B) {
	counts := []int{100, 1000, 10000}
	if env := os.Getenv("MXIRCD_BENCH_SESSIONS"); env != "" {
		counts = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("MXIRCD_BENCH_SESSIONS: %v", err)
			}
			counts = append(counts, n)
		}
	}
	bin := buildGateway(b)
	transports := []bool{true, false}
	switch os.Getenv("MXIRCD_BENCH_TRANSPORTS") {
	case "h2":
		transports = []bool{true}
	case "h1":
		transports = []bool{false}
	}
	encryption := []bool{true, false}
	switch os.Getenv("MXIRCD_BENCH_ENCRYPTION") {
	case "on":
		encryption = []bool{true}
	case "off":
		encryption = []bool{false}
	}
	for _, tls := range transports {
		for _, enc := range encryption {
			memoryRuns(b, bin, counts, tls, enc)
		}
	}
}

// memoryRuns measures each count of sessions on one transport, with
// encryption on or off.
func memoryRuns(b *testing.B, bin string, counts []int, tls, enc bool) {
	transport := "HTTPS, HTTP/2"
	if !tls {
		transport = "plain HTTP/1.1"
	}
	base := runMemory(b, bin, 0, tls, enc)
	fmt.Printf("\nsynthetic homeserver over %s, %s store, encryption %s; %d rooms per account, %d members per room; baseline heap %s, RSS %s\n",
		transport, memDriver(), onOff(enc), memRoomsPerUser, memMembersPerRoom, kib(base.idle.heap), kib(base.idle.rss))
	fmt.Printf("%8s %8s | %14s %14s %14s %14s | %9s %14s %14s\n", "sessions", "rooms", "heap/session", "stacks/sess.",
		"heap+stacks", "RSS/session", "attached", "heap/client", "RSS/client")
	for _, n := range counts {
		r := runMemory(b, bin, n, tls, enc)
		per := func(v, base uint64, n int) uint64 { return (v - min(v, base)) / uint64(n) }
		heap, stacks := per(r.idle.heap, base.idle.heap, n), per(r.idle.stacks, base.idle.stacks, n)
		fmt.Printf("%8d %8d | %14s %14s %14s %14s | %9d %14s %14s\n", n, n*memRoomsPerUser/memMembersPerRoom,
			kib(heap), kib(stacks), kib(heap+stacks), kib(per(r.idle.rss, base.idle.rss, n)),
			r.attached, kib(per(r.withClients.heap, r.idle.heap, r.attached)), kib(per(r.withClients.rss, r.idle.rss, r.attached)))
		b.ReportMetric(float64(heap+stacks)/1024, fmt.Sprintf("KiB/session@%d-%s-e2ee-%s", n, transportName(tls), onOff(enc)))
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func transportName(tls bool) string {
	if tls {
		return "h2"
	}
	return "h1"
}

type memSample struct{ heap, stacks, rss uint64 }

type memResult struct {
	idle, withClients memSample
	attached          int
}

func kib(v uint64) string { return fmt.Sprintf("%.1f KiB", float64(v)/1024) }

// runMemory starts the gateway with n always-on accounts on a synthetic
// homeserver, waits until every session is synced and idle, measures,
// attaches IRC clients to some and measures again.
func runMemory(b *testing.B, bin string, n int, tls, enc bool) memResult {
	users := max(n, memMembersPerRoom)
	hs := newSyntheticHS(b, users, memRoomsPerUser, memMembersPerRoom, tls)
	dir := b.TempDir()
	sc := storetest.Config(b, memDriver())
	seedAccounts(b, sc, hs.srv.URL, n)

	ircAddr, debugAddr := freePort(b), freePort(b)
	config := fmt.Sprintf("[irc]\nlisten = [%q]\nmax_sendq = 4194304\n[matrix]\nhomeserver = %q\nserver_name = %q\n[store]\ndriver = %q\npath = %q\ndsn = %q\n[encryption]\nenabled = %t\npickle_key_file = %q\n[debug]\nlisten = %q\n[log]\nlevel = \"warn\"\n",
		ircAddr, hs.srv.URL, syntheticServer, sc.Driver, sc.Path, sc.DSN, enc, filepath.Join(dir, "pickle.key"), debugAddr)
	var env []string
	if tls {
		env = append(env, "SSL_CERT_FILE="+hs.caFile(b, dir))
	}
	cmd := runGateway(b, bin, dir, config, ircAddr, env...)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	deadline := time.Now().Add(10 * time.Minute)
	for hs.initialSyncs.Load() < int64(n) || hs.longPolls.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d sessions: %d initial syncs, %d waiting after 10 minutes", n, hs.initialSyncs.Load(), hs.longPolls.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitIdle(b, debugAddr)
	res := memResult{idle: sample(b, debugAddr, cmd.Process.Pid)}
	if dir := os.Getenv("MXIRCD_BENCH_PROFILES"); dir != "" && n > 0 {
		saveHeapProfile(b, debugAddr, filepath.Join(dir, fmt.Sprintf("heap-%d-%s-idle.pprof", n, transportName(tls))))
		saveProfile(b, debugAddr, "goroutine?debug=1", filepath.Join(dir, fmt.Sprintf("goroutines-%d-%s-idle.txt", n, transportName(tls))))
	}
	if n == 0 {
		return res
	}

	res.attached = min(n, memAttached)
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < res.attached; i++ {
		conn, err := net.Dial("tcp", ircAddr)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, conn)
		c := &ircClient{conn: conn, r: newReader(conn)}
		c.send("PASS pw")
		c.send("NICK u%d", i)
		c.send("USER %s 0 * :bench", syntheticUser(i))
		ends := 0
		c.waitFor(b, func(m *irc.Message) bool {
			if m.Command == irc.RPL_ENDOFNAMES {
				ends++
			}
			return ends == memRoomsPerUser
		})
	}
	waitIdle(b, debugAddr)
	res.withClients = sample(b, debugAddr, cmd.Process.Pid)
	if dir := os.Getenv("MXIRCD_BENCH_PROFILES"); dir != "" {
		saveHeapProfile(b, debugAddr, filepath.Join(dir, fmt.Sprintf("heap-%d-%s-attached.pprof", n, transportName(tls))))
	}
	return res
}

// waitIdle waits until no session of the gateway has requests running
// (the first sync's store writes, presence), so that memory is measured at
// rest.
func waitIdle(b *testing.B, debugAddr string) {
	for deadline := time.Now().Add(10 * time.Minute); ; {
		resp, err := http.Get("http://" + debugAddr + "/debug/vars")
		if err != nil {
			b.Fatal(err)
		}
		var vars struct {
			Mxircd map[string]int `json:"mxircd"`
		}
		err = json.NewDecoder(resp.Body).Decode(&vars)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		busy, ok := vars.Mxircd["busy_sessions"]
		if !ok {
			b.Fatal("the gateway does not report busy_sessions")
		}
		if busy == 0 {
			time.Sleep(500 * time.Millisecond) // the last writes' aftermath
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d sessions still busy after 10 minutes", busy)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// saveHeapProfile writes the gateway's heap profile (MXIRCD_BENCH_PROFILES
// names the folder), to see what the memory is.
func saveHeapProfile(b *testing.B, debugAddr, path string) { saveProfile(b, debugAddr, "heap", path) }

func saveProfile(b *testing.B, debugAddr, profile, path string) {
	resp, err := http.Get("http://" + debugAddr + "/debug/pprof/" + profile)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Fatal(err)
	}
}

// memDriver is the gateway's store in the memory benchmark: PostgreSQL
// when the tests have one (MXIRCD_TEST_POSTGRES), as a gateway for
// thousands of accounts should run; else SQLite, which takes its time to
// store 10,000 first syncs one writer at a time.
func memDriver() string {
	if os.Getenv("MXIRCD_TEST_POSTGRES") != "" {
		return "postgres"
	}
	return "sqlite"
}

// seedAccounts writes n accounts with tokens for the synthetic homeserver
// into a fresh store, in one transaction, as if they had logged in before
// a restart.
func seedAccounts(b *testing.B, sc store.Config, hsURL string, n int) {
	ctx := context.Background()
	st, err := store.Open(ctx, sc) // the schema
	if err != nil {
		b.Fatal(err)
	}
	st.Close()
	tx, err := storetest.RawDB(b, sc).BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	now := time.Now().UnixMilli()
	for i := 0; i < n; i++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (user_id, homeserver, device_id, access_token, password_hash, created_at, updated_at)
			VALUES ($1, $2, 'SYNTH', $3, '', $4, $4)`, syntheticUser(i), hsURL, fmt.Sprintf("tok-%d", i), now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// sample forces a GC in the gateway and reads its heap, goroutine stacks
// and RSS.
func sample(b *testing.B, debugAddr string, pid int) memSample {
	httpc := &http.Client{Timeout: time.Minute}
	resp, err := httpc.Get("http://" + debugAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	resp, err = httpc.Get("http://" + debugAddr + "/debug/vars")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var vars struct {
		Memstats struct {
			HeapAlloc  uint64
			StackInuse uint64
		} `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		b.Fatal(err)
	}
	return memSample{heap: vars.Memstats.HeapAlloc, stacks: vars.Memstats.StackInuse, rss: rssOf(b, pid)}
}

func rssOf(b *testing.B, pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// buildGateway builds the mxircd binary into a temporary folder.
func buildGateway(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "mxircd")
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-tags", "goolm", "-o", bin, "./cmd/mxircd")
	build.Dir = filepath.Join(filepath.Dir(file), "..")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runGateway starts bin with config and waits until it listens on ircAddr.
func runGateway(b *testing.B, bin, dir, config, ircAddr string, env ...string) *exec.Cmd {
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", path)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if conn, err := net.Dial("tcp", ircAddr); err == nil {
			conn.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			b.Fatal("mxircd did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
