// Package ircframework runs npm's irc-framework (the IRC library of Kiwi
// IRC) in Node.js as a WebSocket IRC client for tests: a client that is
// not ours, speaking to the gateway over its WebSocket listener.
package ircframework

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
)

const installHint = "the WebSocket client test runs npm's irc-framework in Node.js: " +
	"install Node.js 22 (or 20.10 or newer) with npm"

// Options say where the client connects and who it logs in as.
type Options struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	TLS      bool   `json:"tls"`
	Protocol string `json:"protocol"` // WebSocket subprotocol; "" for text.ircv3.net
	Nick     string `json:"nick"`
	Account  string `json:"account"` // SASL PLAIN
	Password string `json:"password"`
}

// Client is a running irc-framework client.
type Client struct {
	stdin io.WriteCloser
	lines chan string // closed when its output ends
	seen  []string
}

var installed struct {
	mu             sync.Mutex
	node, script   string
	experimentalWS bool
}

// Start runs the client; it is stopped when the test ends.
func Start(t testing.TB, opts Options) *Client {
	t.Helper()
	node, script, flag, err := setup(t.Logf)
	if err != nil {
		t.Fatalf("irc-framework: %v", err)
	}
	arg, _ := json.Marshal(opts)
	var args []string
	if flag {
		args = append(args, "--experimental-websocket")
	}
	cmd := exec.Command(node, append(args, script, string(arg))...)
	cmd.Dir = filepath.Dir(script)
	cmd.Stderr = testWriter{t}
	cmd.SysProcAttr = testenv.ChildProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("irc-framework: %v", err)
	}
	c := &Client{stdin: stdin, lines: make(chan string, 64)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

// Expect waits for an output line starting with prefix and returns it.
func (c *Client) Expect(t testing.TB, prefix string) string {
	t.Helper()
	timer := time.NewTimer(testenv.DefaultIRCTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("irc-framework ended before %q; it said:\n%s", prefix, strings.Join(c.seen, "\n"))
			}
			c.seen = append(c.seen, line)
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timer.C:
			t.Fatalf("irc-framework: no %q after %v; it said:\n%s", prefix, testenv.DefaultIRCTimeout, strings.Join(c.seen, "\n"))
		}
	}
}

// Say sends a PRIVMSG.
func (c *Client) Say(target, text string) { fmt.Fprintf(c.stdin, "SAY %s %s\n", target, text) }

// Quit sends QUIT.
func (c *Client) Quit() { fmt.Fprintln(c.stdin, "QUIT") }

func setup(logf func(string, ...any)) (node, script string, experimentalWS bool, err error) {
	installed.mu.Lock()
	defer installed.mu.Unlock()
	if installed.script != "" {
		return installed.node, installed.script, installed.experimentalWS, nil
	}
	node, major, minor, err := findNode()
	if err != nil {
		return "", "", false, err
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", "", false, errors.New("cannot locate the package's source")
	}
	src := filepath.Dir(file)
	dir, err := testenv.NPMPackages(src, "ircframework", installHint, logf)
	if err != nil {
		return "", "", false, err
	}
	script, err = testenv.PlaceScript(src, "client.cjs", dir)
	if err != nil {
		return "", "", false, err
	}
	// Node 22 has WebSocket; 20.10 and later behind a flag.
	experimentalWS = major < 22
	if major < 20 || major == 20 && minor < 10 {
		return "", "", false, fmt.Errorf("%s is Node.js %d.%d: %s", node, major, minor, installHint)
	}
	installed.node, installed.script, installed.experimentalWS = node, script, experimentalWS
	return node, script, experimentalWS, nil
}

func findNode() (string, int, int, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", 0, 0, fmt.Errorf("no node on PATH: %s", installHint)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", 0, 0, fmt.Errorf("%s --version: %w; %s", node, err, installHint)
	}
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".", 3)
	if len(parts) < 2 {
		return "", 0, 0, fmt.Errorf("%s --version said %q", node, out)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return "", 0, 0, fmt.Errorf("%s --version said %q", node, out)
	}
	return node, major, minor, nil
}

// testWriter logs what node writes to stderr.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("irc-framework: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
