package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
	logTailLines = 50
)

// Homeserver is a running Dendrite with its own data directory.
type Homeserver struct {
	// URL is the client-server API base, e.g. http://127.0.0.1:40123.
	URL string
	// ServerName is the part after the colon in user IDs and aliases.
	ServerName string

	bins      string
	dir       string
	logPath   string
	httpAddr  string
	httpsAddr string

	mu     sync.Mutex // serialises Stop and Restart
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartHomeserver starts a Dendrite of the test's own, stopped when the test
// ends. Use it when a test stops or restarts the homeserver; otherwise
// SharedHomeserver is much cheaper.
func StartHomeserver(t testing.TB) *Homeserver { return StartHomeserverWith(t, Options{}) }

// Options change the Dendrite that StartHomeserverWith starts.
type Options struct {
	// Lean leaves out what a load benchmark does not measure and a busy
	// Dendrite spends much of its CPU on: presence (every login wakes the
	// sync of everyone who shares a room with the user), full-text
	// indexing of messages, and logging below warnings (the -ci
	// configuration traces every request).
	Lean bool
	// Quiet logs only warnings and errors, as Lean does, but keeps
	// everything Dendrite offers (presence included): for a rig that runs
	// many short-lived homeservers and looks at their logs only when
	// something breaks.
	Quiet bool
	// Postgres, when not empty, is the DSN of a PostgreSQL server: the
	// homeserver keeps its data in a database of its own made there, and
	// dropped when the test ends, instead of in SQLite files.
	Postgres string
}

// StartHomeserverWith is StartHomeserver with opts.
func StartHomeserverWith(t testing.TB, opts Options) *Homeserver {
	t.Helper()
	bins := DendriteBinaries(t)
	// TempDir first so that its removal runs after Stop in cleanup order.
	dir := t.TempDir()
	var dbDSN string
	if opts.Postgres != "" {
		var drop func()
		var err error
		dbDSN, drop, err = createDatabase(opts.Postgres)
		if err != nil {
			t.Fatalf("a PostgreSQL database for Dendrite: %v", err)
		}
		t.Cleanup(drop) // after Stop: cleanups run last first
	}
	hs, err := newHomeserver(bins, dir, opts, dbDSN)
	if err != nil {
		t.Fatalf("starting Dendrite: %v", err)
	}
	t.Cleanup(func() {
		hs.logTailOnFailure(t)
		hs.Stop()
	})
	return hs
}

// StartHomeserverIn starts a Dendrite outside of a test, with its data in
// dir (which must exist and should be empty), for tools such as the irctest
// rig (conformance/irctest/rig). Dendrite is built first if no earlier run
// has cached it; logf reports that. The caller stops it with Stop.
func StartHomeserverIn(dir string, opts Options, logf func(string, ...any)) (*Homeserver, error) {
	bins, err := dendriteBinaries(logf)
	if err != nil {
		return nil, fmt.Errorf("building Dendrite: %w", err)
	}
	if opts.Postgres != "" {
		// Nothing would drop the database afterwards.
		return nil, errors.New("StartHomeserverIn: Options.Postgres is for tests only")
	}
	return newHomeserver(bins, dir, opts, "")
}

// Dir is the homeserver's data directory: dendrite.yaml, its log and, with
// SQLite, its databases (dendrite_userapi.db holds the accounts).
func (hs *Homeserver) Dir() string { return hs.dir }

var mainCalled atomic.Bool

var shared struct {
	once sync.Once
	hs   *Homeserver
	dir  string
	err  error
}

// SharedHomeserver returns the homeserver shared by all tests of this test
// binary, starting it on first use. Tests must register their own accounts
// with Register and must not stop or restart it.
func SharedHomeserver(t testing.TB) *Homeserver {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("testenv.SharedHomeserver needs func TestMain(m *testing.M) { testenv.Main(m) } in the package, which stops it")
	}
	shared.once.Do(func() {
		bins, err := dendriteBinaries(t.Logf)
		if err != nil {
			shared.err = fmt.Errorf("building Dendrite: %w", err)
			return
		}
		// Not t.TempDir: the directory must outlive the test that happens to
		// start the homeserver.
		shared.dir, err = os.MkdirTemp("", "mxircd-dendrite-")
		if err != nil {
			shared.err = err
			return
		}
		start := time.Now()
		shared.hs, shared.err = newHomeserver(bins, shared.dir, Options{}, "")
		if shared.err == nil {
			t.Logf("testenv: shared Dendrite at %s ready in %v", shared.hs.URL, time.Since(start).Round(time.Millisecond))
		}
	})
	if shared.err != nil {
		t.Fatalf("starting the shared Dendrite: %v", shared.err)
	}
	hs := shared.hs
	t.Cleanup(func() { hs.logTailOnFailure(t) })
	return hs
}

// Main runs the tests and then stops the shared homeserver. Packages that use
// SharedHomeserver call it from TestMain.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	if shared.hs != nil {
		shared.hs.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func newHomeserver(bins, dir string, opts Options, dbDSN string) (*Homeserver, error) {
	hs := &Homeserver{
		ServerName: "localhost",
		bins:       bins,
		dir:        dir,
		logPath:    filepath.Join(dir, "dendrite.log"),
	}
	if err := hs.configure(opts, dbDSN); err != nil {
		return nil, err
	}
	var err error
	for range 5 {
		hs.httpAddr, err = freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		hs.httpsAddr, err = freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		hs.URL = "http://" + hs.httpAddr
		if err = hs.start(); !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return hs, nil
}

// RegistrationSharedSecret is every test Dendrite's
// client_api.registration_shared_secret, for shared-secret registration
// (/_synapse/admin/v1/register).
const RegistrationSharedSecret = "mxircd-testenv-shared-secret"

// configure writes dendrite.yaml: SQLite under the data directory, or the
// PostgreSQL database dbDSN when it is not empty.
func (hs *Homeserver) configure(opts Options, dbDSN string) error {
	keys := exec.Command(filepath.Join(hs.bins, "generate-keys"), "--private-key", "matrix_key.pem")
	keys.Dir = hs.dir
	if out, err := keys.CombinedOutput(); err != nil {
		return fmt.Errorf("generate-keys: %w\n%s", err, out)
	}

	// -ci gives SQLite under dir, no rate limiting, cheap bcrypt and open
	// registration, which is what tests want.
	args := []string{"-ci", "-dir", hs.dir, "-server", hs.ServerName}
	if dbDSN != "" {
		args = append(args, "-db", dbDSN)
	}
	gen := exec.Command(filepath.Join(hs.bins, "generate-config"), args...)
	gen.Dir = hs.dir
	var stderr bytes.Buffer
	gen.Stderr = &stderr
	cfg, err := gen.Output()
	if err != nil {
		return fmt.Errorf("generate-config: %w\n%s", err, stderr.Bytes())
	}
	// Tests must never reach out to other homeservers.
	doc, err := setYAMLScalar(string(cfg), "global.disable_federation", "true")
	if err != nil {
		return fmt.Errorf("editing dendrite.yaml: %w", err)
	}
	// A known secret for tests of shared-secret registration.
	if doc, err = setYAMLScalar(doc, "client_api.registration_shared_secret", RegistrationSharedSecret); err != nil {
		return fmt.Errorf("editing dendrite.yaml: %w", err)
	}
	want := map[string]string{
		"client_api.registration_shared_secret": RegistrationSharedSecret,
		"global.disable_federation":             "true",
		"global.server_name":                    hs.ServerName,
	}
	if opts.Lean {
		for _, path := range []string{"global.presence.enable_inbound", "global.presence.enable_outbound", "sync_api.search.enabled"} {
			if doc, err = setYAMLScalar(doc, path, "false"); err != nil {
				return fmt.Errorf("editing dendrite.yaml: %w", err)
			}
			want[path] = "false"
		}
	}
	if opts.Lean || opts.Quiet {
		// The one logger -ci configures, to standard output at trace level.
		const trace, warn = "\n- type: std\n  level: trace\n", "\n- type: std\n  level: warn\n"
		if !strings.Contains(doc, trace) {
			return errors.New("dendrite.yaml: no standard-output logger at trace level to quieten")
		}
		doc = strings.Replace(doc, trace, warn, 1)
	}
	for path, want := range want {
		if got, _, _, err := findYAMLScalar(doc, path); err != nil || got != want {
			return fmt.Errorf("dendrite.yaml: %s is %q, want %q (%v)", path, got, want, err)
		}
	}
	return os.WriteFile(filepath.Join(hs.dir, "dendrite.yaml"), []byte(doc), 0o644)
}

var errAddrInUse = errors.New("address already in use")

// start runs Dendrite on hs's addresses and waits until it serves clients.
// The caller must hold hs.mu or own hs exclusively.
func (hs *Homeserver) start() error {
	logFile, err := os.OpenFile(hs.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	fi, err := logFile.Stat()
	if err != nil {
		return err
	}
	logStart := fi.Size()
	fmt.Fprintf(logFile, "=== testenv: starting Dendrite on %s at %s ===\n", hs.httpAddr, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(filepath.Join(hs.bins, "dendrite"),
		"-config", "dendrite.yaml",
		"-really-enable-open-registration",
		"-http-bind-address", hs.httpAddr,
		"-https-bind-address", hs.httpsAddr,
	)
	cmd.Dir = hs.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	hs.cmd, hs.exited = cmd, exited

	if err := waitReady(hs.URL, exited); err != nil {
		hs.stopLocked()
		log := hs.logTail(logTailLines)
		if strings.Contains(hs.logSince(logStart), "address already in use") {
			err = errAddrInUse
		}
		return fmt.Errorf("dendrite on %s: %w; last lines of %s:\n%s", hs.httpAddr, err, hs.logPath, log)
	}
	return nil
}

func waitReady(baseURL string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(baseURL + "/_matrix/client/versions")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", readyTimeout, err)
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops Dendrite, gracefully if it lets itself be. It is safe to call
// more than once.
func (hs *Homeserver) Stop() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.stopLocked()
}

func (hs *Homeserver) stopLocked() {
	if hs.cmd == nil {
		return
	}
	hs.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-hs.exited:
	case <-time.After(stopTimeout):
		hs.cmd.Process.Kill()
		<-hs.exited
	}
	hs.cmd, hs.exited = nil, nil
}

// Restart stops Dendrite and starts it again with the same address and data,
// as an operator restarting the homeserver would.
func (hs *Homeserver) Restart(t testing.TB) {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.stopLocked()
	var err error
	// The port was ours a moment ago, but a connection may still hold it.
	for range 20 {
		if err = hs.start(); !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restarting Dendrite: %v", err)
	}
}

// LogPath is Dendrite's combined stdout and stderr, for tests that want to
// look at what the homeserver saw.
func (hs *Homeserver) LogPath() string { return hs.logPath }

func (hs *Homeserver) logTailOnFailure(t testing.TB) {
	if t.Failed() {
		t.Logf("last lines of Dendrite's log %s:\n%s", hs.logPath, hs.logTail(logTailLines))
	}
}

// logTail returns the last n lines of the log, reading only its end because
// Dendrite's log grows large over a test run.
func (hs *Homeserver) logTail(n int) string {
	const window = 256 << 10
	f, err := os.Open(hs.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := max(fi.Size()-window, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // most likely cut in the middle
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (hs *Homeserver) logSince(off int64) string {
	b, err := os.ReadFile(hs.logPath)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// freeLoopbackAddr asks the kernel for a free port. Another process may take
// it before Dendrite binds it; callers retry on "address already in use".
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// findYAMLScalar finds the scalar value at a dot-separated path of block
// mapping keys, in YAML laid out like generate-config's output (block style,
// consistent indentation). It reports the line index and the key's
// indentation.
func findYAMLScalar(doc, path string) (value string, line, indent int, err error) {
	lines := strings.Split(doc, "\n")
	keys := strings.Split(path, ".")
	start, end, parentIndent := 0, len(lines), -1
	for depth, key := range keys {
		// The block's own indentation is that of its first key.
		childIndent := -1
		found := -1
		for i := start; i < end; i++ {
			ind, text := indentation(lines[i])
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			if ind <= parentIndent {
				end = i
				break
			}
			if childIndent < 0 {
				childIndent = ind
			}
			if ind == childIndent && strings.HasPrefix(text, key+":") {
				found = i
				break
			}
		}
		if found < 0 {
			return "", 0, 0, fmt.Errorf("key %q of %q not found", key, path)
		}
		_, text := indentation(lines[found])
		rest := strings.TrimSpace(strings.TrimPrefix(text, key+":"))
		if depth == len(keys)-1 {
			if rest == "" || strings.HasPrefix(rest, "#") {
				return "", 0, 0, fmt.Errorf("%q is not a scalar", path)
			}
			return rest, found, childIndent, nil
		}
		if rest != "" {
			return "", 0, 0, fmt.Errorf("%q is a scalar, not a mapping", strings.Join(keys[:depth+1], "."))
		}
		start, parentIndent = found+1, childIndent
		end = len(lines)
	}
	panic("unreachable")
}

// setYAMLScalar replaces the scalar at path (see findYAMLScalar); value must
// already be valid YAML.
func setYAMLScalar(doc, path, value string) (string, error) {
	_, line, indent, err := findYAMLScalar(doc, path)
	if err != nil {
		return "", err
	}
	keys := strings.Split(path, ".")
	lines := strings.Split(doc, "\n")
	lines[line] = strings.Repeat(" ", indent) + keys[len(keys)-1] + ": " + value
	return strings.Join(lines, "\n"), nil
}

func indentation(line string) (int, string) {
	text := strings.TrimLeft(line, " ")
	return len(line) - len(text), strings.TrimRight(text, " \r")
}
