package main

import (
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// startDebug serves Go's profiles, the gateway's counters and its
// Prometheus metrics on the loopback address of [debug] listen, for
// operators (and the benchmarks, which read memory and session counts from
// /debug/vars).
func (g *gateway) startDebug() error {
	if g.cfg.Debug.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.Debug.Listen)
	if err != nil {
		return fmt.Errorf("debug.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	mux.Handle("/metrics", g.metrics.Handler(g.log))
	publishCounters(g)
	g.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	g.debugLn = ln
	g.log.Info("serving debug endpoints", "addr", ln.Addr().String())
	g.serve("debug listener", func() error { return g.debug.Serve(ln) })
	return nil
}

// expvar names are global to the process; tests start several gateways,
// so the counters follow the newest one.
var (
	countersOnce sync.Once
	countersOf   atomic.Pointer[gateway]
)

func publishCounters(g *gateway) {
	countersOf.Store(g)
	countersOnce.Do(func() {
		expvar.Publish("mxircd", expvar.Func(counters))
	})
}

func counters() any {
	g := countersOf.Load()
	return map[string]int64{
		"sessions":       int64(g.sessions.SessionCount()),
		"connections":    int64(g.irc.ConnCount()),
		"busy_sessions":  int64(g.sessions.BusySessions()),
		"cursor_commits": g.sessions.CursorCommits(),
	}
}
