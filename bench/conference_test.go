package bench

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkConferenceDay takes the figures issue 16 asks of a conference
// day in one run, one piece after another on the same machine and binary
// (each piece starts its own gateway and homeserver, as in its own
// section of docs/benchmarks.md). The lurkers: memory per lurker
// connection, and the fan-out of one message to N lurkers against N
// clients attached to one logged-in account (section 7; N from
// MXIRCD_BENCH_CONFERENCE_LURKERS, 2,000). The connect burst of an account
// in 30 rooms of 5,000 members, lazy-loaded members on against off
// (section 9). The restart: from process start to all sessions live,
// resuming from stored state (section 8; sessions from
// MXIRCD_BENCH_CONFERENCE_SESSIONS, 8,000). It prints the date and the
// machine's load before and after each piece.
//
//	go test -tags goolm -run '^$' -bench ConferenceDay -benchtime 1x -timeout 1h ./bench/
func BenchmarkConferenceDay(b *testing.B) {
	lurkers := envOr("MXIRCD_BENCH_CONFERENCE_LURKERS", "2000")
	sessions := envOr("MXIRCD_BENCH_CONFERENCE_SESSIONS", "8000")
	load := func(what string) {
		raw, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("\n== conference day: %s, %s, load %s", what, time.Now().UTC().Format(time.RFC3339), raw)
	}
	load("start")
	b.Run("Lurkers", func(b *testing.B) {
		b.Setenv("MXIRCD_BENCH_LURKERS", lurkers)
		BenchmarkLurkers(b)
	})
	load("after the lurkers")
	b.Run("LazyMembers", BenchmarkLazyMembers)
	load("after the connect bursts")
	b.Run("Restart", func(b *testing.B) {
		b.Setenv("MXIRCD_BENCH_RESTART", "stored")
		b.Setenv("MXIRCD_BENCH_SESSIONS", sessions)
		BenchmarkRestart(b)
	})
	load("end")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
