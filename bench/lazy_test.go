package bench

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/store/storetest"
)

const (
	lazyRooms   = 30
	lazyMembers = 5000
	lazyTries   = 3
)

// BenchmarkLazyMembers: the connect burst of an account in 30 rooms of
// 5,000 members on the synthetic homeserver, with matrix.lazy_members on
// against off, in one run. Sessions end with their client (always_on =
// false), so each connect starts one: "first connect" is a new account's
// (login, initial sync), "reconnect" an account's that connected before
// (its session resumes from the stored sync token and room state). Two
// times per connect: to the 30th JOIN (what a client with
// draft/no-implicit-names waits for) and to the 30th 366 (every NAMES;
// with lazy members each room's list is fetched from /members then).
func BenchmarkLazyMembers(b *testing.B) {
	bin := buildGateway(b)
	hs := newSyntheticHS(b, lazyMembers, lazyRooms, lazyMembers, false)
	type times struct{ joins, names []time.Duration }
	type result struct {
		first, again times
		fetches      int64
	}
	results := map[bool]*result{}
	for _, lazy := range []bool{false, true} {
		dir := b.TempDir()
		sc := storetest.Config(b, "sqlite")
		ircAddr := freePort(b)
		config := fmt.Sprintf("[irc]\nlisten = [%q]\nmax_sendq = 67108864\n[matrix]\nhomeserver = %q\nserver_name = %q\nlazy_members = %t\n[bouncer]\nalways_on = false\n[store]\ndriver = %q\npath = %q\n[encryption]\nenabled = false\npickle_key_file = %q\n[log]\nlevel = \"error\"\n",
			ircAddr, hs.srv.URL, syntheticServer, lazy, sc.Driver, sc.Path, filepath.Join(dir, "pickle.key"))
		cmd := runGateway(b, bin, dir, config, ircAddr)
		res := &result{}
		connectLazy(b, ircAddr, 0) // so user 0 has connected before
		before := hs.memberFetches.Load()
		for try := range lazyTries {
			time.Sleep(time.Second) // let the previous session end
			j, n := connectLazy(b, ircAddr, 1+try)
			res.first.joins, res.first.names = append(res.first.joins, j), append(res.first.names, n)
			time.Sleep(time.Second)
			j, n = connectLazy(b, ircAddr, 0)
			res.again.joins, res.again.names = append(res.again.joins, j), append(res.again.names, n)
		}
		res.fetches = hs.memberFetches.Load() - before
		cmd.Process.Kill()
		cmd.Wait()
		results[lazy] = res
	}
	med := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	fmt.Printf("\nconnect burst, account in %d rooms of %d members (synthetic homeserver, HTTP/1.1, SQLite), median of %d\n", lazyRooms, lazyMembers, lazyTries)
	fmt.Printf("%-34s %14s %14s\n", "", "to last JOIN", "to last 366")
	for _, row := range []struct {
		what string
		pick func(*result) times
	}{{"first connect", func(r *result) times { return r.first }}, {"reconnect (resume)", func(r *result) times { return r.again }}} {
		off, on := row.pick(results[false]), row.pick(results[true])
		oj, onj, onn, offn := med(off.joins), med(on.joins), med(on.names), med(off.names)
		fmt.Printf("%-34s %14s %14s\n", row.what+", lazy_members off", oj.Round(time.Millisecond), offn.Round(time.Millisecond))
		fmt.Printf("%-34s %14s %14s\n", row.what+", lazy_members on", onj.Round(time.Millisecond), onn.Round(time.Millisecond))
		fmt.Printf("%-34s %13.2fx %13.2fx\n", row.what+", on / off", float64(onj)/float64(oj), float64(onn)/float64(offn))
	}
	fmt.Printf("/members requests over the %d connects: %d with lazy_members off, %d on\n", 2*lazyTries, results[false].fetches, results[true].fetches)
	b.ReportMetric(float64(med(results[true].first.joins))/float64(med(results[false].first.joins)), "first-joins-on/off")
	b.ReportMetric(float64(med(results[true].first.names))/float64(med(results[false].first.names)), "first-names-on/off")
}

// connectLazy logs in as user i and returns the times from TCP connect to
// the last JOIN and to the last 366 of the burst, then quits.
func connectLazy(b *testing.B, addr string, i int) (joins, names time.Duration) {
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := &ircClient{conn: conn, r: newReader(conn)}
	c.send("PASS pw")
	c.send("NICK u%d", i)
	c.send("USER %s 0 * :bench", syntheticUser(i))
	nj, nn := 0, 0
	c.waitFor(b, func(m *irc.Message) bool {
		switch m.Command {
		case "JOIN":
			if nj++; nj == lazyRooms {
				joins = time.Since(start)
			}
		case irc.RPL_ENDOFNAMES:
			nn++
		}
		return nn == lazyRooms
	})
	names = time.Since(start)
	c.send("QUIT")
	return joins, names
}
