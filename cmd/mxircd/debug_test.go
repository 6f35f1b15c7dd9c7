package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
)

// The debug listener serves the gateway's counters and Go's memory
// statistics, and only on loopback.
func TestDebugEndpoint(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	cfg := defaultConfig()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.Matrix.Homeserver = hs.URL
	cfg.Matrix.ServerName = hs.ServerName
	cfg.Store.Path = t.TempDir() + "/mxircd.db"
	cfg.Debug.Listen = "127.0.0.1:0"
	g := startTestGateway(t, cfg)
	alice := hs.Register(t, "alice")
	c := connect(t, g, "alice", alice)
	defer c.Close()

	httpc := &http.Client{Timeout: 10 * time.Second}
	resp, err := httpc.Get("http://" + g.debugLn.Addr().String() + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var vars struct {
		Mxircd   map[string]int `json:"mxircd"`
		Memstats struct {
			HeapAlloc uint64
		} `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		t.Fatal(err)
	}
	if vars.Mxircd["sessions"] != 1 || vars.Mxircd["connections"] != 1 || vars.Memstats.HeapAlloc == 0 {
		t.Fatalf("debug vars = %+v", vars)
	}

	cfg.Debug.Listen = "0.0.0.0:6060"
	if err := cfg.validate(); err == nil {
		t.Fatal("a debug listener on all interfaces was accepted")
	}
}
