package frontend

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ngircdBin is where Debian's ngircd package installs the daemon.
const ngircdBin = "/usr/sbin/ngircd"

// ngircdConf is a minimal configuration: loopback only, every path in the
// temp dir, no DNS, IDENT or PAM, no connection limits, and
// MaxPenaltyTime = 0, which turns ngircd's flood control (one second of
// penalty after 3 commands in one read, or 256 bytes a second) into
// penalties of zero seconds. Clients log in with the global password, as
// they send PASS to mxircd.
const ngircdConf = `[Global]
Name = irc.bench
Info = mxircd front end benchmark
Listen = 127.0.0.1
Ports = %d
Password = %s
PidFile = %s
MotdPhrase = bench
HelpFile = /dev/null

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600

[Options]
DNS = no
Ident = no
PAM = no
IncludeDir = %s
`

type ngircdProc struct {
	cmd  *exec.Cmd
	addr string
	log  string
}

func startNgircd(b *testing.B) *ngircdProc {
	dir := b.TempDir()
	// ngircd started as root drops to "nobody" and then writes its PID
	// file, so the directory must be writable by anyone.
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o777); err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(run, 0o777); err != nil {
		b.Fatal(err)
	}
	include := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(include, 0o755); err != nil {
		b.Fatal(err)
	}
	port := freePort(b)
	conf := filepath.Join(dir, "ngircd.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, ngircdConf, port, benchPass, filepath.Join(run, "ngircd.pid"), include), 0o644); err != nil {
		b.Fatal(err)
	}
	p := &ngircdProc{addr: fmt.Sprintf("127.0.0.1:%d", port), log: filepath.Join(dir, "ngircd.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	// --nodaemon keeps it in the foreground, so the PID is the server's.
	p.cmd = exec.Command(ngircdBin, "--nodaemon", "--config", conf)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", p.addr); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			p.stop()
			b.Fatalf("ngircd did not start:\n%s", p.logTail())
		}
	}
}

func (p *ngircdProc) pid() int { return p.cmd.Process.Pid }

func (p *ngircdProc) logTail() string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func (p *ngircdProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
