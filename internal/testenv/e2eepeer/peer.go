// Package e2eepeer starts an independent end-to-end encryption implementation
// for mxircd's encryption tests to talk to: Element's matrix-js-sdk with its
// Rust crypto (matrix-sdk-crypto-wasm), as Element Web runs it, in a Node.js
// process of its own.
//
// Each Peer is one Matrix device: peer.mjs logs in with a password, sets up
// the Rust crypto (keys in an in-memory IndexedDB, gone when the peer ends),
// syncs, and then takes requests from the test as JSON lines on its stdin
// and answers on its stdout, along with the messages it sees, decrypted
// where it can. Its log goes to the test's log.
//
// The SDK's npm packages, pinned by package.json and package-lock.json here,
// are installed with npm ci on first use into the testenv cache (next to the
// Dendrite build, and locked the same way), so that later runs start at once
// and need no network. Node.js 20 or newer and npm must be on PATH.
//
// A test typically makes accounts on testenv's homeserver and starts a peer
// for each side that is not mxircd:
//
//	hs := testenv.SharedHomeserver(t)
//	alice := hs.Register(t, "alice")
//	peer := e2eepeer.Start(t, hs.URL, alice.Localpart, alice.Password)
//	room := peer.CreateRoom(t, e2eepeer.RoomOptions{Encrypted: true, Invite: []id.UserID{bob}})
//	peer.Send(t, room, "hello")
//	peer.WaitMessage(t, ctx, func(m e2eepeer.Message) bool { return m.Body == "hi" })
package e2eepeer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Timeout bounds each request to a peer and each WaitMessage; starting a
// peer may take twice as long.
const Timeout = 60 * time.Second

// stopTimeout is how long a peer gets to end after its stdin closes.
const stopTimeout = 5 * time.Second

// stderrTail is how many of the peer's last log lines an error quotes.
const stderrTail = 30

// Peer is a running matrix-js-sdk client, logged in on a device of its own.
// Its methods may be called from any goroutine; those that take a
// testing.TB fail the test on error, so call them from the test's goroutine.
type Peer struct {
	UserID   id.UserID
	DeviceID id.DeviceID

	name   string // for log lines: the user given to Start
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{} // closed when the process has ended and its output is read

	writeMu sync.Mutex
	nextID  atomic.Int64

	mu       sync.Mutex
	pending  map[int64]chan response
	messages []Message     // every message event, in the order the peer reported them
	changed  chan struct{} // closed and replaced when messages grows
	logTail  []string
	exitErr  error
}

// Message is an m.room.message as the SDK saw it. A message that failed to
// decrypt is reported with DecryptionError set and no body, and again,
// decrypted, if its key arrives later.
type Message struct {
	RoomID  id.RoomID         `json:"room"`
	Sender  id.UserID         `json:"sender"`
	EventID id.EventID        `json:"event_id"`
	Body    string            `json:"body"`
	MsgType event.MessageType `json:"msgtype"`
	// Encrypted is true when the event came as m.room.encrypted.
	Encrypted bool `json:"encrypted"`
	// DecryptionError is the SDK's reason (a DecryptionFailureCode such as
	// MEGOLM_UNKNOWN_INBOUND_SESSION_ID), empty if it decrypted.
	DecryptionError string `json:"decryption_error"`
}

type response struct {
	raw json.RawMessage
	err error
}

// Start logs in as user (a localpart or a full user ID) with password on the
// homeserver and returns the peer once its first sync is done. The peer is
// stopped when the test ends.
func Start(t testing.TB, homeserverURL, user, password string) *Peer {
	t.Helper()
	p, err := start(t, homeserverURL, user, password)
	if err != nil {
		t.Fatalf("e2eepeer: starting a matrix-js-sdk peer for %s: %v", user, err)
	}
	return p
}

func start(t testing.TB, homeserverURL, user, password string) (*Peer, error) {
	node, script, err := peerScript(t.Logf)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(),
		"PEER_HOMESERVER="+homeserverURL,
		"PEER_USER="+user,
		"PEER_PASSWORD="+password,
	)
	if os.Getenv("PEER_LOG_LEVEL") == "" {
		// The SDK's info level is thousands of lines per test; a test run
		// can ask for them with PEER_LOG_LEVEL=debug.
		cmd.Env = append(cmd.Env, "PEER_LOG_LEVEL=warn")
	}
	cmd.SysProcAttr = testenv.ChildProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Peer{
		name:    user,
		cmd:     cmd,
		stdin:   stdin,
		exited:  make(chan struct{}),
		pending: make(map[int64]chan response),
		changed: make(chan struct{}),
	}
	ready := make(chan readyEvent, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		p.readStdout(stdout, ready)
	}()
	go func() {
		defer readers.Done()
		p.readStderr(t, stderr)
	}()
	go func() {
		// Wait must follow the reads of the pipes it closes.
		readers.Wait()
		err := cmd.Wait()
		// Under mu, so that Call either sees exited or has its request
		// answered here.
		p.mu.Lock()
		defer p.mu.Unlock()
		p.exitErr = err
		for id, ch := range p.pending {
			ch <- response{err: p.exitedErrorLocked()}
			delete(p.pending, id)
		}
		close(p.exited)
	}()
	// Cleanup also runs when the test fails below, and it must finish before
	// the test does, because the stderr reader logs to t.
	t.Cleanup(p.stop)

	select {
	case r := <-ready:
		p.UserID, p.DeviceID = r.UserID, r.DeviceID
		return p, nil
	case <-p.exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		return nil, p.exitedErrorLocked()
	case <-time.After(2 * Timeout):
		return nil, fmt.Errorf("not ready after %v; its last lines:\n%s", 2*Timeout, p.tail())
	}
}

type readyEvent struct {
	UserID   id.UserID   `json:"user_id"`
	DeviceID id.DeviceID `json:"device_id"`
}

// stop closes the peer's stdin, which ends it, and kills it if it lingers.
func (p *Peer) stop() {
	p.writeMu.Lock()
	p.stdin.Close()
	p.writeMu.Unlock()
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *Peer) readStdout(r io.Reader, ready chan<- readyEvent) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var head struct {
			ID    *int64 `json:"id"`
			Event string `json:"event"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			p.logLine("stdout is not protocol: " + string(line))
			continue
		}
		switch {
		case head.ID != nil:
			resp := response{raw: append(json.RawMessage(nil), line...)}
			if head.Error != "" {
				resp.err = errors.New(head.Error)
			}
			p.mu.Lock()
			ch := p.pending[*head.ID]
			delete(p.pending, *head.ID)
			p.mu.Unlock()
			if ch != nil {
				ch <- resp
			}
		case head.Event == "ready":
			var r readyEvent
			json.Unmarshal(line, &r)
			ready <- r
		case head.Event == "message":
			var m Message
			if err := json.Unmarshal(line, &m); err != nil {
				p.logLine("bad message event: " + string(line))
				continue
			}
			p.mu.Lock()
			p.messages = append(p.messages, m)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		case head.Error != "":
			p.logLine("peer: " + head.Error)
		}
	}
	io.Copy(io.Discard, r)
}

func (p *Peer) readStderr(t testing.TB, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("e2eepeer %s: %s", p.name, line)
		p.logLine(line)
	}
	io.Copy(io.Discard, r)
}

func (p *Peer) logLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logTail = append(p.logTail, line)
	if len(p.logTail) > stderrTail {
		p.logTail = p.logTail[len(p.logTail)-stderrTail:]
	}
}

func (p *Peer) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logTail, "\n")
}

func (p *Peer) exitedErrorLocked() error {
	return fmt.Errorf("the peer exited (%v); its last lines:\n%s", p.exitErr, strings.Join(p.logTail, "\n"))
}

// Call sends one request to the peer and decodes its whole answer into
// reply (which may be nil), waiting at most Timeout unless ctx has a
// deadline. It is the way to ops that have no method here;
// peer.mjs lists them. args must not hold "id" or "op".
func (p *Peer) Call(ctx context.Context, op string, args map[string]any, reply any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, Timeout)
		defer cancel()
	}
	reqID := p.nextID.Add(1)
	req := map[string]any{}
	for k, v := range args {
		req[k] = v
	}
	req["id"], req["op"] = reqID, op
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ch := make(chan response, 1)
	p.mu.Lock()
	select {
	case <-p.exited:
		p.mu.Unlock()
		return p.exitedError()
	default:
	}
	p.pending[reqID] = ch
	p.mu.Unlock()

	p.writeMu.Lock()
	_, err = p.stdin.Write(append(line, '\n'))
	p.writeMu.Unlock()
	if err != nil {
		p.forget(reqID)
		return fmt.Errorf("writing to the peer: %w", err)
	}
	select {
	case resp := <-ch:
		if resp.err != nil {
			return fmt.Errorf("%s: %w", op, resp.err)
		}
		if reply != nil {
			if err := json.Unmarshal(resp.raw, reply); err != nil {
				return fmt.Errorf("%s: decoding %s: %w", op, resp.raw, err)
			}
		}
		return nil
	case <-ctx.Done():
		p.forget(reqID)
		return fmt.Errorf("%s: no answer: %w", op, context.Cause(ctx))
	}
}

func (p *Peer) exitedError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitedErrorLocked()
}

func (p *Peer) forget(reqID int64) {
	p.mu.Lock()
	delete(p.pending, reqID)
	p.mu.Unlock()
}

func (p *Peer) call(t testing.TB, op string, args map[string]any, reply any) {
	t.Helper()
	if err := p.Call(context.Background(), op, args, reply); err != nil {
		t.Fatalf("e2eepeer %s: %v", p.name, err)
	}
}
