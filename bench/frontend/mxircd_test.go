package frontend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircd"
)

// helperEnv switches the test binary into the mxircd helper: a separate
// process running only ircd.Server, so that it is measured from outside
// exactly as ngircd is.
const helperEnv = "MXIRCD_FRONTEND_HELPER"

// benchPass is the password both servers take: mxircd's backend accepts any,
// ngircd's [Global] Password is set to it.
const benchPass = "benchpass"

// memBackend logs anyone in without Matrix.
type memBackend struct{}

func (memBackend) Login(_ context.Context, req ircd.LoginRequest, c *ircd.Conn) (ircd.Handler, error) {
	return &memHandler{c: c, account: "@" + req.Account + ":bench"}, nil
}

func (memBackend) StartLogin(context.Context, string, *ircd.Conn) (*ircd.BrowserLogin, error) {
	return nil, errors.New("no browser login in the benchmark")
}

func (memBackend) LoginWays(context.Context) (password, browser bool) { return true, false }

// Commands declares what memHandler is sent.
func (memBackend) Commands() map[string]ircd.Command {
	return map[string]ircd.Command{"JOIN": {MinParams: 1}, "PRIVMSG": {MinParams: 2}, "NOTICE": {MinParams: 2}}
}

// memHandler answers forwarded commands as cheaply as a handler can: JOIN
// gets its JOIN line back, everything else (PRIVMSG above all) is dropped.
type memHandler struct {
	c       *ircd.Conn
	account string
}

func (h *memHandler) Attach() {}
func (h *memHandler) Detach() {}

func (h *memHandler) Account() string { return h.account }

func (h *memHandler) HandleCommand(m *irc.Message) {
	if m.Command == "JOIN" {
		h.c.SendMessage(&irc.Message{
			Prefix:  &irc.Prefix{Name: h.c.Nick(), User: h.c.Username(), Host: "127.0.0.1"},
			Command: "JOIN",
			Params:  []string{m.Params[0]},
		})
	}
}

// runHelper is the helper process: it serves IRC on a loopback port,
// prints "addr HOST:PORT", then obeys commands on stdin until it closes:
//
//	mem              runtime.GC, then "mem HEAPINUSE STACKINUSE SYS GOROUTINES"
//	profile PATH     start a CPU profile into PATH, answers "ok"
//	stopprofile      stop it, answers "ok"
//	heapprofile PATH runtime.GC, then write a heap profile into PATH, answers "ok"
func runHelper() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := ircd.NewServer(ircd.Config{
		ServerName: "mxircd.bench",
		// Flood control lifted, as ngircd's MaxPenaltyTime = 0 does: the
		// limiter is still consulted for every line, it just never waits.
		FloodRate:  1e9,
		FloodBurst: 1 << 20,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, memBackend{})
	go srv.Serve(ln)
	fmt.Printf("addr %s\n", ln.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "mem":
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("mem %d %d %d %d\n", ms.HeapInuse, ms.StackInuse, ms.Sys, runtime.NumGoroutine())
		case "profile":
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			fmt.Printf("ok %v\n", err)
		case "stopprofile":
			pprof.StopCPUProfile()
			fmt.Println("ok")
		case "heapprofile":
			runtime.GC()
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
			fmt.Printf("ok %v\n", err)
		}
	}
}

// goMem is what the helper reports about its Go runtime after a GC.
type goMem struct {
	heapInuse, stackInuse, sys uint64
	goroutines                 int
}

// mxircdProc is a running helper process.
type mxircdProc struct {
	cmd  *exec.Cmd
	addr string
	in   io.WriteCloser
	out  *bufio.Scanner
}

func startMxircd(b *testing.B) *mxircdProc {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &mxircdProc{cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	line := p.read(b)
	addr, ok := strings.CutPrefix(line, "addr ")
	if !ok {
		p.stop()
		b.Fatalf("helper said %q, want its address", line)
	}
	p.addr = addr
	return p
}

func (p *mxircdProc) pid() int { return p.cmd.Process.Pid }

func (p *mxircdProc) read(b *testing.B) string {
	if !p.out.Scan() {
		b.Fatalf("mxircd helper ended: %v", p.out.Err())
	}
	return p.out.Text()
}

func (p *mxircdProc) ask(b *testing.B, cmd string) string {
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		b.Fatal(err)
	}
	return p.read(b)
}

func (p *mxircdProc) mem(b *testing.B) goMem {
	var m goMem
	line := p.ask(b, "mem")
	if _, err := fmt.Sscanf(line, "mem %d %d %d %d", &m.heapInuse, &m.stackInuse, &m.sys, &m.goroutines); err != nil {
		b.Fatalf("helper said %q: %v", line, err)
	}
	return m
}

func (p *mxircdProc) stop() {
	p.in.Close() // the helper exits when stdin ends
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}
