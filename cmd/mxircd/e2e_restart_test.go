package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// 7: the gateway binary killed with SIGKILL while a Matrix user streams
// messages into a room, and started again on the same SQLite file or
// PostgreSQL database: it resumes the always-on session by itself, without
// logging in again; the IRC client that reconnects (while the stream goes
// on) has got every streamed message exactly once, in order, across both
// connections; and a message typed on IRC just before the kill is in the
// room exactly once.
func TestRestartAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { sigkillRestart(t, bin, driver) })
	}
}

// binaryConfig writes the configuration a test runs the built binary
// with: an always-on bouncer on the shared homeserver and a fresh store of
// driver, its pickle key in the test's folder.
func binaryConfig(t *testing.T, driver string) (hs *testenv.Homeserver, dir string, sc store.Config, addr, configPath string) {
	hs = testenv.SharedHomeserver(t)
	dir, sc, addr, configPath = binaryConfigOn(t, hs, driver)
	return hs, dir, sc, addr, configPath
}

// binaryConfigOn is binaryConfig on a homeserver of the test's own.
func binaryConfigOn(t *testing.T, hs *testenv.Homeserver, driver string) (dir string, sc store.Config, addr, configPath string) {
	dir = t.TempDir()
	sc = storetest.Config(t, driver)
	addr = freeAddr(t)
	storeKey := fmt.Sprintf("path = %q", sc.Path)
	if sc.Driver == store.DialectPostgres {
		storeKey = fmt.Sprintf("dsn = %q", sc.DSN)
	}
	config := fmt.Sprintf(`
[irc]
listen = [%q]
[matrix]
homeserver = %q
server_name = %q
sync_timeout = "5s"
[bouncer]
always_on = true
away_when_detached = true
replay_limit = 1000
[store]
driver = %q
%s
[encryption]
pickle_key_file = %q
[log]
level = "debug"
`, addr, hs.URL, hs.ServerName, sc.Driver, storeKey, filepath.Join(dir, "pickle.key"))
	configPath = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, sc, addr, configPath
}

// 10: a burst of lines typed on IRC, the gateway killed with SIGKILL as
// soon as it has answered a command typed after them (so it has accepted
// them all), and started again: every line of the burst is in the room
// exactly once, in the order typed, before anything typed after the
// restart. Again with the homeserver down during the burst and the kill,
// and up again only for the restart.
func TestRestartAfterBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			t.Run("homeserver up", func(t *testing.T) { burstKill(t, bin, testenv.SharedHomeserver(t), driver, false) })
			t.Run("homeserver down", func(t *testing.T) { burstKill(t, bin, testenv.StartHomeserver(t), driver, true) })
		})
	}
}

func burstKill(t *testing.T, bin string, hs *testenv.Homeserver, driver string, down bool) {
	dir, _, addr, configPath := binaryConfigOn(t, hs, driver)
	alice, bob, room, channel := twoInARoom(t, hs, "burst")

	first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
	waitListening(t, addr)
	c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
	c1.Timeout = 60 * time.Second
	awaitBurst(t, c1, channel)
	waitNames(t, c1, channel, bob.Localpart)
	if down {
		hs.Stop()
		c1.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && strings.Contains(strings.ToLower(m.Trailing()), "cannot reach")
		}, "NOTICE that the homeserver is unreachable")
	}
	// Within the flood burst, so none of it waits on the reader.
	const lines = 30
	var typed []string
	for i := range lines {
		typed = append(typed, fmt.Sprintf("burst %02d", i+1))
		c1.Send("PRIVMSG %s :%s", channel, typed[i])
	}
	// The owner answers TOPIC after it has taken every line before it; a
	// line it has taken is saved before the client is shown anything more.
	c1.Send("TOPIC %s", channel)
	c1.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == irc.RPL_TOPIC || m.Command == irc.RPL_NOTOPIC
	}, "the answer to TOPIC")
	first.kill(t)
	c1.ExpectClosed(t)
	if down {
		hs.Restart(t)
	}

	startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
	waitListening(t, addr)
	c2 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
	c2.Timeout = 60 * time.Second
	awaitBurst(t, c2, channel)
	c2.Send("PRIVMSG %s :typed after the restart", channel)
	bodies := waitInRoom(t, bob, room, "typed after the restart")
	var got []string
	for _, b := range bodies {
		if strings.HasPrefix(b, "burst ") || b == "typed after the restart" {
			got = append(got, b)
		}
	}
	want := append(typed, "typed after the restart")
	if !slices.Equal(got, want) {
		var missing, twice []string
		for _, l := range typed {
			switch count(got, l) {
			case 0:
				missing = append(missing, l)
			case 1:
			default:
				twice = append(twice, l)
			}
		}
		t.Errorf("the room has the burst as %q;\nmissing %q, more than once %q; the gateway's sends:\n%s", got, missing, twice, gatewaySends(hs, room))
	}
}

func sigkillRestart(t *testing.T, bin, driver string) {
	hs, dir, sc, addr, configPath := binaryConfig(t, driver)
	alice, bob, room, channel := twoInARoom(t, hs, "sigkill")

	first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
	waitListening(t, addr)
	c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
	c1.Timeout = 60 * time.Second
	awaitBurst(t, c1, channel)
	waitNames(t, c1, channel, bob.Localpart)

	// got is every streamed message the laptop is shown, over both
	// connections.
	var got []*irc.Message
	own := 0
	keep := func(m *irc.Message) {
		switch {
		case m.Command == "PRIVMSG" && m.Param(0) == channel && strings.HasPrefix(m.Trailing(), "stream "):
			got = append(got, m)
		case m.Command == "PRIVMSG" && m.Trailing() == "typed before the kill":
			own++
		}
	}
	st := startStream(t, bob, room)
	c1.ExpectMatch(t, func(m *irc.Message) bool { keep(m); return len(got) >= 20 }, "20 streamed messages")
	// Kill the gateway as soon as it has taken the message on: saved it
	// to send (its outbox) or sent it. It may be on its way to the
	// homeserver right then.
	c1.Send("PRIVMSG %s :typed before the kill", channel)
	waitAccepted(t, sc, alice, bob, room, "typed before the kill")
	first.kill(t)
	for _, m := range c1.ExpectClosed(t) {
		keep(m)
	}
	shownBeforeKill := len(got)
	acct := storedAccount(t, sc, alice.UserID)

	startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
	waitListening(t, addr)
	// The session resumes by itself: a message streamed after the start is
	// stored while no client is connected.
	n := len(st.sent())
	afterStart := st.waitSent(t, n+3)[n+2]
	{
		s2, err := store.Open(context.Background(), sc)
		if err != nil {
			t.Fatal(err)
		}
		waitStoredIn(t, s2, alice.UserID, afterStart)
		resumed, err := s2.Account(ctxFor(t), alice.UserID)
		s2.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resumed.AccessToken != acct.AccessToken || resumed.DeviceID != acct.DeviceID {
			t.Errorf("the restarted gateway logged in again: device %s -> %s, token changed: %v",
				acct.DeviceID, resumed.DeviceID, resumed.AccessToken != acct.AccessToken)
		}
	}
	if devices := gatewayDevices(t, alice); len(devices) != 1 {
		t.Errorf("gateway devices after the restart: %v", devices)
	}

	// The laptop comes back while the stream goes on.
	c2 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
	c2.Timeout = 60 * time.Second
	for _, m := range awaitBurst(t, c2, channel) {
		keep(m)
	}
	st.waitSent(t, len(st.sent())+15)
	st.halt()
	s := sentinel(t, bob, room)
	before, _ := untilText(t, c2, s.text)
	for _, m := range before {
		keep(m)
	}
	sent := st.sent()
	t.Logf("%d messages streamed; the laptop was shown %d before the kill and %d after", len(sent), shownBeforeKill, len(got)-shownBeforeKill)
	checkExactlyOnce(t, got, sent, shownBeforeKill)
	if own != 0 {
		t.Errorf("the laptop was shown its own \"typed before the kill\" %d times, want 0 (3: what a client typed is not replayed to it)", own)
	}

	// The message typed before the kill is in the room exactly once: the
	// restarted gateway sent it if the first had not, and not again if it
	// had. Anything it resends goes out before what is typed after it.
	c2.Send("PRIVMSG %s :typed after the restart", channel)
	bodies := waitInRoom(t, bob, room, "typed after the restart")
	if n := count(bodies, "typed before the kill"); n != 1 {
		t.Errorf("the message typed before the kill is in the room %d times, want once; the gateway's sends to the room:\n%s",
			n, gatewaySends(hs, room))
	}
}

// gatewaySends lists the lines of the homeserver's log about messages sent
// to room with mxircd's transaction IDs, for failure messages.
func gatewaySends(hs *testenv.Homeserver, room id.RoomID) string {
	log, err := os.ReadFile(hs.LogPath())
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "/rooms/"+room.String()+"/send/") && strings.Contains(line, "/mxircd.") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// waitAccepted waits until the gateway has saved a message typed on IRC
// to its outbox, or sent it.
func waitAccepted(t *testing.T, sc store.Config, from, reader *testenv.Account, room id.RoomID, body string) {
	t.Helper()
	st, err := store.Open(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		entries, err := st.Outbox(ctxFor(t), from.UserID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.Contains(string(e.Content), body) {
				return
			}
		}
		if i%25 == 24 && slices.Contains(roomBodies(t, reader, room), body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never took %q on", body)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkExactlyOnce compares the msgids of the streamed messages the client
// was shown with the event IDs sent, and explains any difference.
func checkExactlyOnce(t *testing.T, got []*irc.Message, sent []id.EventID, split int) {
	t.Helper()
	gotIDs := make([]string, len(got))
	for i, m := range got {
		gotIDs[i] = m.Tags["msgid"]
	}
	want := make([]string, len(sent))
	index := map[string]int{}
	for i, evID := range sent {
		want[i] = evID.String()
		index[want[i]] = i + 1
	}
	if slices.Equal(gotIDs, want) {
		return
	}
	seen := map[string]int{}
	var dup, unknown []string
	for _, g := range gotIDs {
		seen[g]++
		if seen[g] == 2 {
			dup = append(dup, fmt.Sprintf("#%d", index[g]))
		}
		if index[g] == 0 {
			unknown = append(unknown, g)
		}
	}
	var missing []string
	for i, w := range want {
		if seen[w] == 0 {
			missing = append(missing, fmt.Sprintf("#%d", i+1))
		}
	}
	order := make([]int, len(gotIDs))
	for i, g := range gotIDs {
		order[i] = index[g]
	}
	t.Errorf("streamed %d messages, the client was shown %d (%d before the kill): missing %v, twice %v, unknown %v; order shown (by number sent, kill after the %dth line): %v",
		len(want), len(gotIDs), split, missing, dup, unknown, split, order)
}

// stream sends "stream NNNN" messages as one user into a room, one after
// the other, until halted.
type stream struct {
	mu   sync.Mutex
	ids  []id.EventID
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func startStream(t *testing.T, from *testenv.Account, room id.RoomID) *stream {
	s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 1; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			resp, err := from.Client.SendText(ctx, room, fmt.Sprintf("stream %04d", i))
			cancel()
			if err != nil {
				t.Errorf("streaming message %d: %v", i, err)
				return
			}
			s.mu.Lock()
			s.ids = append(s.ids, resp.EventID)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(15 * time.Millisecond): // a steady stream, not a flood
			}
		}
	}()
	t.Cleanup(s.halt)
	return s
}

// halt stops the stream and waits for the message in flight.
func (s *stream) halt() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

func (s *stream) sent() []id.EventID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// waitSent waits until at least n messages have been sent and returns them.
func (s *stream) waitSent(t *testing.T, n int) []id.EventID {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids := s.sent()
		if len(ids) >= n {
			return ids
		}
		select {
		case <-s.done:
			t.Fatalf("the stream ended after %d messages, before %d", len(ids), n)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages streamed", len(ids), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storedAccount reads an account from the store, with no gateway running
// on it.
func storedAccount(t *testing.T, sc store.Config, user id.UserID) *store.Account {
	t.Helper()
	s, err := store.Open(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acct, err := s.Account(ctxFor(t), user)
	if err != nil {
		t.Fatalf("account %s after the kill: %v", user, err)
	}
	return acct
}

// buildMxircd builds the binary once for the test.
func buildMxircd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mxircd")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goBin, "build", "-tags", "goolm", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// mxircdProcess is a running mxircd binary, killed when the test ends.
type mxircdProcess struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func startMxircd(t *testing.T, bin, configPath, logPath string) *mxircdProcess {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	p := &mxircdProcess{cmd: exec.Command(bin, "-config", configPath), exited: make(chan struct{}), logPath: logPath}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
			if len(lines) > 150 {
				lines = lines[len(lines)-150:]
			}
			t.Logf("last lines of %s:\n%s", logPath, strings.Join(lines, "\n"))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *mxircdProcess) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("mxircd did not die of SIGKILL")
	}
}
