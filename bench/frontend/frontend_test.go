// Package frontend measures mxircd's IRC front end alone (package ircd with
// an in-memory backend, no Matrix) against ngircd from Debian, on the same
// machine, with the same load generator, in one run:
//
//	apt-get install -y ngircd   # once; the benchmark skips without it
//	go test -tags goolm -run '^$' -bench Frontend -benchtime 1x ./bench/frontend/
//
// Both servers run as separate processes and are measured from outside the
// same way: CPU from /proc/PID/stat (user+system, all threads), memory from
// /proc/PID/status (VmRSS). The mxircd process is this test binary started
// again with MXIRCD_FRONTEND_HELPER=1.
//
// Knobs, as environment variables: FRONTEND_CONNS (connections sending,
// default 50), FRONTEND_LINES (lines each sends, default 40000),
// FRONTEND_ROUNDS (default 3), FRONTEND_IDLE (idle connections, default
// 2000), FRONTEND_CPUPROFILE (a path: CPU profile of the mxircd helper
// during its first throughput round), FRONTEND_HEAPPROFILE (a path: heap
// profile of the mxircd helper holding the idle connections).
package frontend

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		runHelper()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkFrontend: lines parsed and dispatched per CPU-second, and
// resident memory per idle registered connection, for mxircd's front end
// and for ngircd, side by side.
func BenchmarkFrontend(b *testing.B) {
	if _, err := os.Stat(ngircdBin); err != nil {
		b.Skipf("ngircd is not installed (%v); install it with: apt-get install -y ngircd", err)
	}
	// Children get this process's soft file limit only when it was set
	// explicitly (Go raises its own quietly and restores it for children).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	conns := envInt("FRONTEND_CONNS", 50)
	linesPer := envInt("FRONTEND_LINES", 40000) / blockLines * blockLines
	rounds := envInt("FRONTEND_ROUNDS", 3)
	idleConns := envInt("FRONTEND_IDLE", 2000)
	profile := os.Getenv("FRONTEND_CPUPROFILE")
	heapProfile := os.Getenv("FRONTEND_HEAPPROFILE")

	for range b.N {
		var mx, ng []loadResult
		for r := range rounds {
			// Alternate which server goes first, so neither always gets
			// the warmer machine.
			runMx := func() {
				p := startMxircd(b)
				defer p.stop()
				if profile != "" && r == 0 {
					if got := p.ask(b, "profile "+profile); got != "ok <nil>" {
						b.Fatalf("starting the CPU profile: %s", got)
					}
				}
				mx = append(mx, throughput(b, p.addr, p.pid(), conns, linesPer))
				if profile != "" && r == 0 {
					p.ask(b, "stopprofile")
				}
			}
			runNg := func() {
				p := startNgircd(b)
				defer p.stop()
				ng = append(ng, throughput(b, p.addr, p.pid(), conns, linesPer))
			}
			if r%2 == 0 {
				runMx()
				runNg()
			} else {
				runNg()
				runMx()
			}
		}

		var mxIdle, ngIdle idleResult
		func() {
			p := startMxircd(b)
			defer p.stop()
			var whileOpen func()
			if heapProfile != "" {
				whileOpen = func() {
					if got := p.ask(b, "heapprofile "+heapProfile); got != "ok <nil>" {
						b.Fatalf("writing the heap profile: %s", got)
					}
				}
			}
			mxIdle = idle(b, p.addr, p.pid(), idleConns, func() goMem { return p.mem(b) }, whileOpen)
		}()
		func() {
			p := startNgircd(b)
			defer p.stop()
			ngIdle = idle(b, p.addr, p.pid(), idleConns, nil, nil)
		}()

		report(b, conns, linesPer, mx, ng, mxIdle, ngIdle)
	}
}

func ngircdVersion() string {
	out, err := exec.Command(ngircdBin, "--version").Output()
	if err != nil {
		return "ngircd"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	name, _, _ := strings.Cut(first, "-")
	return name
}

func report(b *testing.B, conns, linesPer int, mx, ng []loadResult, mxIdle, ngIdle idleResult) {
	fmt.Printf("\nIRC front end: mxircd (ircd.Server, in-memory backend) against %s, same load generator\n", ngircdVersion())
	fmt.Printf("throughput: %d connections, each %d lines (9 PRIVMSG to its own channel : 1 PING) + a final PING\n\n", conns, linesPer)
	fmt.Printf("| round | server | lines | wall | lines/s | server CPU (of it system) | lines per CPU-second | load generator CPU |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|\n")
	row := func(round, name string, r loadResult) {
		fmt.Printf("| %s | %s | %d | %.2f s | %.0f | %.2f s (%.2f s) | %.0f | %.2f s |\n", round, name, r.lines,
			r.wall.Seconds(), r.perSecond(), r.cpu.Seconds(), r.sys.Seconds(), r.perCPUSecond(), r.loadCPU.Seconds())
	}
	for i := range mx {
		row(strconv.Itoa(i+1), "mxircd", mx[i])
		row(strconv.Itoa(i+1), "ngircd", ng[i])
	}
	med := func(rs []loadResult) loadResult {
		s := slices.SortedFunc(slices.Values(rs), func(a, b loadResult) int { return cmp.Compare(a.perCPUSecond(), b.perCPUSecond()) })
		return s[len(s)/2]
	}
	m, n := med(mx), med(ng)
	row("median", "mxircd", m)
	row("median", "ngircd", n)
	cpuRatio := n.perCPUSecond() / m.perCPUSecond()
	wallRatio := n.perSecond() / m.perSecond()
	fmt.Printf("\nCPU per line, mxircd ÷ ngircd (median rounds): %.2f×   wall-clock lines/s, mxircd ÷ ngircd: %.2f×\n", cpuRatio, 1/wallRatio)

	fmt.Printf("\nidle: %d registered connections that send nothing\n\n", mxIdle.conns)
	fmt.Printf("| server | RSS before | RSS after | RSS per connection | Go heap per connection | Go stacks per connection | goroutines |\n")
	fmt.Printf("|---|---|---|---|---|---|---|\n")
	kib := func(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }
	mib := func(v int64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
	heap, stacks, gor := "–", "–", "–"
	if a, z := mxIdle.goBefore, mxIdle.goAfter; a != nil && z != nil {
		heap = kib(float64(int64(z.heapInuse)-int64(a.heapInuse)) / float64(mxIdle.conns))
		stacks = kib(float64(int64(z.stackInuse)-int64(a.stackInuse)) / float64(mxIdle.conns))
		gor = fmt.Sprintf("%d → %d", a.goroutines, z.goroutines)
	}
	fmt.Printf("| mxircd | %s | %s | %s | %s | %s | %s |\n", mib(mxIdle.rssBefore), mib(mxIdle.rssAfter), kib(mxIdle.rssPerConn()), heap, stacks, gor)
	fmt.Printf("| ngircd | %s | %s | %s | – | – | – |\n", mib(ngIdle.rssBefore), mib(ngIdle.rssAfter), kib(ngIdle.rssPerConn()))
	memRatio := mxIdle.rssPerConn() / ngIdle.rssPerConn()
	fmt.Printf("\nRSS per idle connection, mxircd ÷ ngircd: %.2f×\n", memRatio)

	b.ReportMetric(m.perCPUSecond(), "mxircd-lines/cpu-s")
	b.ReportMetric(n.perCPUSecond(), "ngircd-lines/cpu-s")
	b.ReportMetric(cpuRatio, "cpu-per-line-ratio")
	b.ReportMetric(mxIdle.rssPerConn()/1024, "mxircd-idle-KiB/conn")
	b.ReportMetric(ngIdle.rssPerConn()/1024, "ngircd-idle-KiB/conn")
	b.ReportMetric(memRatio, "idle-mem-ratio")
}
