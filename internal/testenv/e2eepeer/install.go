package e2eepeer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

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

// installPackages installs the pinned matrix-js-sdk into the testenv cache
// (once per machine and version).
func installPackages(src string, logf func(string, ...any)) (string, error) {
	return testenv.NPMPackages(src, "e2eepeer", installHint, logf)
}

// placeScript copies peer.mjs next to the installed packages.
func placeScript(src, dir string) (string, error) {
	return testenv.PlaceScript(src, "peer.mjs", dir)
}
