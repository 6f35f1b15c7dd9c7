// Package testenv is the rig for mxircd's end-to-end tests: it builds and runs a
// real Dendrite homeserver, registers Matrix accounts on it, and speaks IRC to
// the server under test.
//
// Packages that use a shared homeserver must call Main from their TestMain so
// that the homeserver is stopped when the test binary ends:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dendriteCommands are built from the nested module, which pins their version.
var dendriteCommands = []string{"dendrite", "generate-keys", "generate-config"}

var binaries struct {
	mu  sync.Mutex
	dir string
}

// DendriteBinaries returns a directory holding the dendrite, generate-keys and
// generate-config binaries, building them first if no earlier run (of this or
// any other test binary on this machine) has.
func DendriteBinaries(t testing.TB) (dir string) {
	t.Helper()
	dir, err := dendriteBinaries(t.Logf)
	if err != nil {
		t.Fatalf("building Dendrite: %v", err)
	}
	return dir
}

func dendriteBinaries(logf func(string, ...any)) (string, error) {
	// A process only needs to find the binaries once; later calls must not pay
	// for hashing and locking again.
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	if binaries.dir != "" {
		return binaries.dir, nil
	}

	modDir, err := nestedModuleDir()
	if err != nil {
		return "", err
	}
	key, err := cacheKey(modDir)
	if err != nil {
		return "", err
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(root, "dendrite-"+key)
	if haveBinaries(dir) {
		binaries.dir = dir
		return dir, nil
	}

	// go test ./... runs one test binary per package at the same time; without
	// the lock each of them would start its own multi-minute build.
	unlock, err := LockFile(filepath.Join(root, "dendrite-"+key+".lock"), "building Dendrite", logf)
	if err != nil {
		return "", err
	}
	defer unlock()
	if haveBinaries(dir) {
		binaries.dir = dir
		return dir, nil
	}
	// Only reachable if someone tampered with the cache, since it is filled by
	// rename; start over rather than trust a partial directory.
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}

	start := time.Now()
	logf("testenv: building Dendrite into %s (takes minutes when Go's build cache is cold)", dir)
	if err := buildInto(modDir, root, dir); err != nil {
		return "", err
	}
	logf("testenv: built Dendrite in %v", time.Since(start).Round(time.Millisecond))
	binaries.dir = dir
	return dir, nil
}

// nestedModuleDir finds the module that pins Dendrite next to this source
// file, because tests run with their own package directory as working
// directory.
func nestedModuleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate testenv's source file")
	}
	dir := filepath.Join(filepath.Dir(file), "dendrite")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("nested Dendrite module not found (was the test built with -trimpath?): %w", err)
	}
	return dir, nil
}

// cacheKey changes whenever the pinned Dendrite version or the toolchain
// changes, so a stale build is never reused.
func cacheKey(modDir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(modDir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// CacheRoot is the directory that holds what the rig builds or installs once
// per machine, shared by every test binary: $MXIRCD_TESTENV_CACHE, or
// mxircd-testenv under the user's cache directory.
func CacheRoot() (string, error) { return cacheRoot() }

// ChildProcAttr is for helper processes that the rig starts besides
// Dendrite: on Linux the kernel kills them when the test binary dies without
// running its cleanups.
func ChildProcAttr() *syscall.SysProcAttr { return childProcAttr() }

func cacheRoot() (string, error) {
	if dir := os.Getenv("MXIRCD_TESTENV_CACHE"); dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set MXIRCD_TESTENV_CACHE): %w", err)
	}
	return filepath.Join(dir, "mxircd-testenv"), nil
}

func haveBinaries(dir string) bool {
	for _, name := range dendriteCommands {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// LockFile takes an exclusive lock on path (created if missing), waiting for
// another process that holds it; purpose says what that process is doing,
// for the log line that explains the wait. The lock lasts until unlock is
// called or the process ends.
func LockFile(path, purpose string, logf func(string, ...any)) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	err = flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		logf("testenv: waiting for another process to finish %s", purpose)
		err = flock(fd, syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// Closing the file releases the lock, also when the process dies.
	return func() { f.Close() }, nil
}

func flock(fd, how int) error {
	for {
		err := syscall.Flock(fd, how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// buildInto builds into a temporary sibling of dir and renames it into place,
// so that a killed or failed build never leaves a directory that looks usable.
func buildInto(modDir, root, dir string) error {
	tmp, err := os.MkdirTemp(root, filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	args := []string{"build", "-o", tmp + string(filepath.Separator)}
	for _, name := range dendriteCommands {
		args = append(args, "github.com/element-hq/dendrite/cmd/"+name)
	}
	cmd := exec.Command(goCommand(), args...)
	cmd.Dir = modDir
	cmd.Env = buildEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s (in %s): %w\n%s", strings.Join(cmd.Args, " "), modDir, err, out)
	}
	if !haveBinaries(tmp) {
		return fmt.Errorf("go build succeeded but did not produce %v in %s\n%s", dendriteCommands, tmp, out)
	}
	return os.Rename(tmp, dir)
}

// goCommand prefers the toolchain that built the test binary, because the
// cache key records that toolchain's version.
func goCommand() string {
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// buildEnv passes the caller's environment through, but the binaries are
// shared by every later test run whatever its flags, so flags such as -race,
// -cover or -tags that the caller put in GOFLAGS must not leak into them. An
// empty GOFLAGS would fall back to "go env -w" settings, hence the explicit
// default value.
func buildEnv() []string {
	flags := []string{"-mod=readonly"}
	var env []string
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS":
			for _, f := range strings.Fields(v) {
				if f == "-modcacherw" || f == "-modcacherw=true" {
					flags = append(flags, f)
				}
			}
		case "GOWORK", "GOTOOLCHAIN":
		default:
			env = append(env, kv)
		}
	}
	return append(env,
		"GOFLAGS="+strings.Join(flags, " "),
		// A go.work above the repository must not pull Dendrite into it.
		"GOWORK=off",
		// Switching toolchains would defeat the cache key.
		"GOTOOLCHAIN=local",
	)
}
