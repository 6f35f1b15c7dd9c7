package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// limitedGateway is a test gateway whose connection caps apply to the
// loopback addresses tests connect from.
func limitedGateway(t *testing.T, hs *testenv.Homeserver, driver string) *gateway {
	t.Helper()
	return startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
		cfg.HTTP.Listen = "127.0.0.1:0"
		cfg.IRC.MaxConnectionsPerAddress = 2
		cfg.IRC.LimitExempt = nil
		cfg.HTTP.MaxConnectionsPerAddress = 2
		cfg.HTTP.LimitExempt = nil
		cfg.HTTP.IdleTimeout = Duration{time.Second}
	}))
}

// Issue 15 (4): no address can hold the listeners' file descriptors, and
// the HTTP listener closes idle keep-alive connections.
func TestConnectionCaps(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := limitedGateway(t, hs, driver)

			t.Run("irc", func(t *testing.T) {
				acct := hs.Register(t, "capped")
				first := connect(t, g, "capped", acct)
				held, err := net.Dial("tcp", g.ircAddr())
				if err != nil {
					t.Fatal(err)
				}
				defer held.Close()
				// The third connection from this address is told why,
				// then closed; the two it has keep working.
				third, err := net.Dial("tcp", g.ircAddr())
				if err != nil {
					t.Fatal(err)
				}
				defer third.Close()
				third.SetReadDeadline(time.Now().Add(20 * time.Second))
				all, _ := io.ReadAll(third)
				if !strings.HasPrefix(string(all), "ERROR :Closing link: too many connections from your address") {
					t.Fatalf("third connection got %q", all)
				}
				first.Send("PING :still-here")
				first.Expect(t, "PONG")

				// A closed connection gives its place back (once the
				// server has seen the close).
				held.Close()
				for deadline := time.Now().Add(20 * time.Second); ; {
					c, err := net.Dial("tcp", g.ircAddr())
					if err != nil {
						t.Fatal(err)
					}
					c.Write([]byte("PING :x\r\n"))
					c.SetReadDeadline(time.Now().Add(20 * time.Second))
					line, _ := bufio.NewReader(c).ReadString('\n')
					c.Close()
					if !strings.Contains(line, "too many connections") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the closed connection's place was not given back: %q", line)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})

			t.Run("http", func(t *testing.T) {
				addr := g.mediaLn.Addr().String()
				// Two keep-alive connections with one request each.
				var idle []*bufio.Reader
				var conns []net.Conn
				for range 2 {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					c.Write([]byte("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"))
					r := bufio.NewReader(c)
					resp, err := http.ReadResponse(r, nil)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					idle, conns = append(idle, r), append(conns, c)
				}
				// A third is refused with a 503 while they are open.
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write([]byte("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"))
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("third connection: %v", err)
				}
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("third connection: %s, want 503", resp.Status)
				}
				// The idle ones are closed by the server (idle_timeout 1s;
				// without it they would stay open as long as we wait).
				for i, r := range idle {
					conns[i].SetReadDeadline(time.Now().Add(30 * time.Second))
					if _, err := r.ReadByte(); err != io.EOF {
						t.Fatalf("idle connection %d: read %v, want EOF from the server", i, err)
					}
				}
			})
		})
	}
}

// Issue 15: one JOIN line of new channels created a room for each (19
// lines made 257 rooms). Beyond matrix.room_create_burst the rest are
// refused, each with a line that says why, and nothing is created.
func TestRoomCreationLimit(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.Matrix.RoomCreateBurst = 2
				cfg.Matrix.RoomCreateInterval = Duration{time.Hour}
			}))
			acct := hs.Register(t, "creator")
			c := connectWithCaps(t, g, "creator", acct, "standard-replies")
			var names []string
			for i := range 5 {
				names = append(names, fmt.Sprintf("#%s-new%d:%s", acct.Localpart, i, hs.ServerName))
			}
			c.Send("JOIN %s", strings.Join(names, ","))
			joined, refused := 0, 0
			for joined+refused < len(names) {
				m := c.ExpectMatch(t, func(m *irc.Message) bool {
					return (m.Command == "JOIN" && m.Prefix != nil && m.Prefix.Name == "creator") ||
						(m.Command == "FAIL" && m.Param(0) == "JOIN")
				}, "a JOIN or a FAIL JOIN")
				if m.Command == "JOIN" {
					joined++
					continue
				}
				if m.Param(1) != "LIMIT_EXCEEDED" || !strings.Contains(m.Trailing(), "too many rooms") {
					t.Fatalf("refusal %q", m.String())
				}
				refused++
			}
			if joined != 2 || refused != 3 {
				t.Fatalf("%d joined and %d refused, want 2 and 3", joined, refused)
			}
			rooms, err := acct.Client.JoinedRooms(ctxFor(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(rooms.JoinedRooms) != 2 {
				t.Fatalf("the account is in %d rooms, want the 2 created", len(rooms.JoinedRooms))
			}
		})
	}
}
