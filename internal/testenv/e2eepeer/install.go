package e2eepeer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
)

// minNodeMajor is the oldest Node.js the peer was seen working on, with the
// Promise.withResolvers polyfill in peer.mjs; the SDK itself asks for 22.
const minNodeMajor = 20

const installHint = "the encryption tests run Element's matrix-js-sdk in Node.js: " +
	"install Node.js 20 or newer with npm (e.g. the nodejs package from NodeSource; " +
	"Debian bookworm's own nodejs is 18, too old)"

// installed is the node binary and the peer script of this process, found
// once; later Starts must not hash and lock again.
var installed struct {
	mu     sync.Mutex
	node   string
	script string
}

// peerScript returns node's path and the path of peer.mjs next to its npm
// packages in the testenv cache, installing them first if no earlier run on
// this machine has.
func peerScript(logf func(string, ...any)) (node, script string, err error) {
	installed.mu.Lock()
	defer installed.mu.Unlock()
	if installed.script != "" {
		return installed.node, installed.script, nil
	}
	node, err = findNode()
	if err != nil {
		return "", "", err
	}
	src, err := sourceDir()
	if err != nil {
		return "", "", err
	}
	dir, err := installPackages(src, logf)
	if err != nil {
		return "", "", err
	}
	script, err = placeScript(src, dir)
	if err != nil {
		return "", "", err
	}
	installed.node, installed.script = node, script
	return node, script, nil
}

// findNode looks for node on PATH and checks that it is new enough, so that
// a missing or old Node.js is named as such instead of surfacing as a
// syntax error deep inside the SDK.
func findNode() (string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("no node on PATH: %s", installHint)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w; %s", node, err, installHint)
	}
	version := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < minNodeMajor {
		return "", fmt.Errorf("%s is Node.js %s: %s", node, version, installHint)
	}
	return node, nil
}

// sourceDir is this package's directory, found from the source file because
// tests run with their own package directory as working directory.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate e2eepeer's source file")
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
		return "", fmt.Errorf("e2eepeer's package-lock.json not found (was the test built with -trimpath?): %w", err)
	}
	return dir, nil
}

// packageFiles pin what npm installs; their hash names the install.
var packageFiles = []string{"package.json", "package-lock.json"}

func hashFiles(dir string, names ...string) (string, error) {
	h := sha256.New()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// installPackages runs npm ci into CacheRoot/e2eepeer-KEY, KEY being the
// hash of the package files, unless that directory exists already. It is
// filled by rename, so a directory that exists is complete.
func installPackages(src string, logf func(string, ...any)) (string, error) {
	key, err := hashFiles(src, packageFiles...)
	if err != nil {
		return "", err
	}
	root, err := testenv.CacheRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(root, "e2eepeer-"+key)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	// Test binaries of several packages may want the peer at once.
	unlock, err := testenv.LockFile(dir+".lock", "installing the E2EE peer's npm packages", logf)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("no npm on PATH: %s", installHint)
	}

	tmp, err := os.MkdirTemp(root, "e2eepeer-"+key+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, name := range packageFiles {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return "", err
		}
	}
	start := time.Now()
	logf("e2eepeer: installing matrix-js-sdk from npm into %s (once per machine)", dir)
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--no-update-notifier")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s (in %s): %w\n%s", strings.Join(cmd.Args, " "), tmp, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	logf("e2eepeer: installed in %v", time.Since(start).Round(time.Millisecond))
	return dir, nil
}

// placeScript copies peer.mjs next to the installed packages, because node
// resolves a module's imports from where the module lies. The copy is named
// by its content, so editing peer.mjs needs no reinstall and test binaries
// running different versions of it do not disturb each other.
func placeScript(src, dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(src, "peer.mjs"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	path := filepath.Join(dir, "peer-"+hex.EncodeToString(sum[:8])+".mjs")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	f, err := os.CreateTemp(dir, "peer-*.mjs.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(f.Name(), path)
}
