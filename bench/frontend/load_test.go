package frontend

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The load generator is the same code for both servers: plain TCP, lines
// written in large batches (as fast as the server's socket takes them) by
// one goroutine per connection, replies read and counted by another.

// client is one registered connection.
type client struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRegistered connects, registers with PASS/NICK/USER and, when channel
// is set, joins it; then it sends "PING :reg" and returns once the PONG
// came back, so that everything the server sent on registering (welcome,
// MOTD, JOIN, NAMES) has been read.
func dialRegistered(addr, nick, channel string) (*client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	reg := fmt.Sprintf("PASS %s\r\nNICK %s\r\nUSER %s 0 * :bench\r\n", benchPass, nick, nick)
	if channel != "" {
		reg += "JOIN " + channel + "\r\n"
	}
	reg += "PING :reg\r\n"
	joined := channel == ""
	done := func(line []byte) bool {
		cmd := command(line)
		joined = joined || cmd == "JOIN"
		return cmd == "PONG" && bytes.HasSuffix(line, []byte("reg\r\n"))
	}
	if _, err := conn.Write([]byte(reg)); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s registering: %w", nick, err)
		}
		if cmd := command(line); cmd == "ERROR" || cmd == "464" {
			conn.Close()
			return nil, fmt.Errorf("%s registering: %s", nick, bytes.TrimSpace(line))
		}
		if done(line) {
			if !joined {
				conn.Close()
				return nil, fmt.Errorf("%s: no JOIN for %s", nick, channel)
			}
			return c, nil
		}
	}
}

// command is the command (or numeric) of a line.
func command(line []byte) string {
	fields := bytes.Fields(line)
	if len(fields) > 0 && fields[0][0] == ':' {
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return ""
	}
	return string(fields[0])
}

// dialMany registers n clients, a few at a time.
func dialMany(b *testing.B, addr, prefix string, n int, join bool) []*client {
	clients := make([]*client, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			nick, channel := fmt.Sprintf("%s%d", prefix, i), ""
			if join {
				channel = "#" + nick
			}
			c, err := dialRegistered(addr, nick, channel)
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	if failed != nil {
		closeAll(clients)
		b.Fatal(failed)
	}
	return clients
}

func closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil {
			c.conn.Close()
		}
	}
}

// The lines each connection sends, in blocks of 100: nine PRIVMSGs to its
// own channel (it is the only member, so the server sends nothing on)
// for every PING (which the server answers with a PONG).
const (
	blockLines = 100
	pingEvery  = 10
	benchText  = "the quick brown fox jumps over the lazy dog, 0123456789"
)

func block(channel string) []byte {
	var buf bytes.Buffer
	for i := range blockLines {
		if i%pingEvery == pingEvery-1 {
			fmt.Fprintf(&buf, "PING :%d\r\n", i)
		} else {
			fmt.Fprintf(&buf, "PRIVMSG %s :%s\r\n", channel, benchText)
		}
	}
	return buf.Bytes()
}

// loadResult is one throughput run against one server.
type loadResult struct {
	lines   int           // lines sent after registration, final PINGs included
	wall    time.Duration // from the first line written to the last final PONG read
	cpu     time.Duration // server process user+system CPU over that time
	sys     time.Duration // the system part of cpu
	loadCPU time.Duration // load generator (this process) CPU over that time
}

func (r loadResult) perCPUSecond() float64 { return float64(r.lines) / r.cpu.Seconds() }
func (r loadResult) perSecond() float64    { return float64(r.lines) / r.wall.Seconds() }

// throughput registers conns clients, each in its own channel, then has
// each send linesPer lines and a final "PING :done", and waits for every
// final PONG. It checks that every PING was answered and that nothing but
// PONGs came back, so both servers provably handled every line the same way.
func throughput(b *testing.B, addr string, pid, conns, linesPer int) loadResult {
	clients := dialMany(b, addr, "f", conns, true)
	defer closeAll(clients)
	blocks := make([][]byte, conns)
	for i := range clients {
		blocks[i] = block(fmt.Sprintf("#f%d", i))
	}

	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	cpu0, load0 := procCPU(b, pid), selfCPU(b)
	sys0 := procSys(b, pid)
	start := time.Now()
	for i, c := range clients {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range linesPer / blockLines {
				if _, err := c.conn.Write(blocks[i]); err != nil {
					errs <- err
					return
				}
			}
			if _, err := c.conn.Write([]byte("PING :done\r\n")); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
			pongs, others := 0, 0
			var other string
			for {
				line, err := c.r.ReadSlice('\n')
				if err != nil {
					errs <- fmt.Errorf("reading replies: %w", err)
					return
				}
				if !bytes.Contains(line, []byte(" PONG ")) {
					others++
					other = string(bytes.TrimSpace(line))
					continue
				}
				pongs++
				if bytes.HasSuffix(line, []byte("done\r\n")) {
					break
				}
			}
			if want := linesPer/pingEvery + 1; pongs != want || others != 0 {
				errs <- fmt.Errorf("got %d PONGs (want %d) and %d other lines, the last %q", pongs, want, others, other)
			}
		}()
	}
	wg.Wait()
	r := loadResult{
		lines:   conns * (linesPer/blockLines*blockLines + 1),
		wall:    time.Since(start),
		cpu:     procCPU(b, pid) - cpu0,
		sys:     procSys(b, pid) - sys0,
		loadCPU: selfCPU(b) - load0,
	}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return r
}

// idleResult is the memory cost of idle registered connections.
type idleResult struct {
	conns             int
	rssBefore         int64 // bytes
	rssAfter          int64
	goBefore, goAfter *goMem // mxircd only: heap and stacks in use after a GC
}

func (r idleResult) rssPerConn() float64 {
	return float64(r.rssAfter-r.rssBefore) / float64(r.conns)
}

// idle opens n registered connections that then send nothing, and measures
// the server's resident memory before and after. mem, if set, is asked
// for the Go runtime's figures just before each RSS reading (it runs a GC,
// so both readings are taken right after one); then, if set, whileOpen
// runs with the connections still open.
func idle(b *testing.B, addr string, pid, n int, mem func() goMem, whileOpen func()) idleResult {
	r := idleResult{conns: n}
	time.Sleep(200 * time.Millisecond)
	if mem != nil {
		m := mem()
		r.goBefore = &m
	}
	r.rssBefore = procRSS(b, pid)
	clients := dialMany(b, addr, "i", n, false)
	defer closeAll(clients)
	time.Sleep(time.Second)
	if mem != nil {
		m := mem()
		r.goAfter = &m
	}
	r.rssAfter = procRSS(b, pid)
	if whileOpen != nil {
		whileOpen()
	}
	return r
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU is the user+system CPU time of every thread of process pid.
func procCPU(b *testing.B, pid int) time.Duration {
	user, sys := procTimes(b, pid)
	return user + sys
}

// procSys is the system part of procCPU.
func procSys(b *testing.B, pid int) time.Duration {
	_, sys := procTimes(b, pid)
	return sys
}

func procTimes(b *testing.B, pid int) (user, sys time.Duration) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces; the fields after
	// it start with the state (field 3), so utime (14) and stime (15) are
	// the 12th and 13th.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parsing /proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime) * clockTick, time.Duration(stime) * clockTick
}

func selfCPU(b *testing.B) time.Duration { return procCPU(b, os.Getpid()) }

// procRSS is the resident set size of process pid, in bytes.
func procRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("parsing VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
