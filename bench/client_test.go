package bench

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
)

// ircClient is a minimal IRC client for measuring: no helpers that wait
// or log between lines.
type ircClient struct {
	conn    net.Conn
	r       *bufio.Reader
	channel string
}

// dial logs acct in with SASL and waits for its connect burst; channel is
// the first channel of the burst.
func dial(b *testing.B, addr, nick string, acct *testenv.Account) *ircClient {
	c := login(b, addr, nick, acct)
	c.waitFor(b, func(m *irc.Message) bool {
		if m.Command == irc.RPL_ENDOFNAMES && c.channel == "" {
			c.channel = m.Param(1)
		}
		return c.channel != ""
	})
	return c
}

// login connects and logs acct in with SASL, and returns without waiting
// for anything, for accounts that have no channel to wait for yet.
func login(b *testing.B, addr, nick string, acct *testenv.Account) *ircClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &ircClient{conn: conn, r: newReader(conn)}
	c.send("CAP REQ :sasl")
	c.send("NICK %s", nick)
	c.send("USER %s 0 * :bench", nick)
	c.send("AUTHENTICATE PLAIN")
	c.send("AUTHENTICATE %s", plain(acct))
	c.send("CAP END")
	return c
}

func (c *ircClient) send(format string, args ...any) {
	fmt.Fprintf(c.conn, format+"\r\n", args...)
}

func (c *ircClient) waitFor(b *testing.B, pred func(*irc.Message) bool) {
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			b.Fatalf("reading IRC: %v", err)
		}
		m, err := irc.ParseMessage(line)
		if err != nil {
			continue
		}
		if m.Command == "PING" {
			c.send("PONG :%s", m.Trailing())
		}
		if pred(m) {
			return
		}
	}
}

func newReader(conn net.Conn) *bufio.Reader { return bufio.NewReaderSize(conn, 64<<10) }

// plain is the SASL PLAIN payload for acct.
func plain(acct *testenv.Account) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + acct.UserID.String() + "\x00" + acct.Password))
}
