package testenv

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestMain(m *testing.M) { Main(m) }

func skipIfShort(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Dendrite homeserver; skipped with -short")
	}
}

func TestSharedHomeserverRoomMessage(t *testing.T) {
	skipIfShort(t)
	hs := SharedHomeserver(t)
	ctx := context.Background()

	alice := hs.Register(t, "Alice")
	bob := hs.Register(t, "bob")
	if !strings.HasPrefix(alice.Localpart, "alice-") {
		t.Errorf("localpart %q: want the lowercased prefix and a suffix", alice.Localpart)
	}
	if want := id.NewUserID(alice.Localpart, hs.ServerName); alice.UserID != want {
		t.Errorf("UserID = %s, want %s", alice.UserID, want)
	}
	if n := len(alice.Password); n < 16 || n > 40 {
		t.Errorf("password of %d bytes", n)
	}

	aliasLocal := "room-" + randomHex(4)
	room, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:        "public_chat",
		RoomAliasName: aliasLocal,
		Topic:         "testenv",
	})
	if err != nil {
		t.Fatalf("createRoom: %v", err)
	}
	body := "hello from " + alice.Localpart
	if _, err := alice.Client.SendText(ctx, room.RoomID, body); err != nil {
		t.Fatalf("send: %v", err)
	}

	alias := fmt.Sprintf("#%s:%s", aliasLocal, hs.ServerName)
	joined, err := bob.Client.JoinRoom(ctx, alias, nil)
	if err != nil {
		t.Fatalf("join %s: %v", alias, err)
	}
	if joined.RoomID != room.RoomID {
		t.Fatalf("joined %s, created %s", joined.RoomID, room.RoomID)
	}

	evt := bob.WaitForEvent(t, ctx, room.RoomID, func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == alice.UserID
	})
	if got := evt.Content.AsMessage().Body; got != body {
		t.Errorf("body %q, want %q", got, body)
	}
	if evt.RoomID != room.RoomID {
		t.Errorf("event's RoomID %q, want %q", evt.RoomID, room.RoomID)
	}

	// SyncUntil continues from the last batch: the next match must be new.
	if _, err := alice.Client.SendText(ctx, room.RoomID, "second"); err != nil {
		t.Fatalf("send: %v", err)
	}
	bob.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
		for _, evt := range resp.Rooms.Join[room.RoomID].Timeline.Events {
			if evt.Type == event.EventMessage && strings.Contains(string(evt.Content.VeryRaw), body) {
				t.Fatalf("first message delivered again")
			}
			if evt.Type == event.EventMessage && strings.Contains(string(evt.Content.VeryRaw), "second") {
				return true
			}
		}
		return false
	})
}

func TestRestartKeepsAccounts(t *testing.T) {
	skipIfShort(t)
	hs := StartHomeserver(t)
	ctx := context.Background()
	acct := hs.Register(t, "carol")
	url := hs.URL

	hs.Restart(t)
	if hs.URL != url {
		t.Fatalf("URL changed from %s to %s", url, hs.URL)
	}

	// The old device's token must survive, and the password must still work.
	who, err := acct.Client.Whoami(ctx)
	if err != nil {
		t.Fatalf("whoami after restart: %v", err)
	}
	if who.UserID != acct.UserID {
		t.Errorf("whoami says %s, want %s", who.UserID, acct.UserID)
	}
	client, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	login, err := client.Login(ctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: acct.Localpart},
		Password:   acct.Password,
	})
	if err != nil {
		t.Fatalf("login after restart: %v", err)
	}
	if login.UserID != acct.UserID {
		t.Errorf("logged in as %s, want %s", login.UserID, acct.UserID)
	}

	hs.Stop()
	hs.Stop() // must be harmless
	if _, err := acct.Client.Whoami(ctx); err == nil {
		t.Errorf("homeserver still answers after Stop")
	}
}

// scriptedServer accepts one connection and hands it to script, which plays
// the server's side.
func scriptedServer(t *testing.T, script func(r *bufio.Reader, w net.Conn) error) (addr string, done <-chan error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() {
		defer l.Close()
		conn, err := l.Accept()
		if err != nil {
			ch <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		ch <- script(bufio.NewReader(conn), conn)
	}()
	return l.Addr().String(), ch
}

func expectLine(r *bufio.Reader, want string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading (want %q): %w", want, err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		return fmt.Errorf("line %q does not end in CRLF", line)
	}
	if got := strings.TrimSuffix(line, "\r\n"); got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}

func TestIRCClientScripted(t *testing.T) {
	const account, nick = "dave", "Dave"
	// 300 bytes of PLAIN payload encode to exactly 400 base64 bytes, which
	// must be followed by "AUTHENTICATE +".
	password := strings.Repeat("p", 300-len("\x00"+account+"\x00"))
	payload := base64.StdEncoding.EncodeToString([]byte("\x00" + account + "\x00" + password))

	addr, done := scriptedServer(t, func(r *bufio.Reader, w net.Conn) error {
		steps := []struct{ want, reply string }{
			{"CAP LS 302", ""},
			{"NICK " + nick, ""},
			{"USER " + account + " 0 * :mxircd testenv", ":srv CAP * LS * :multi-prefix\r\n:srv CAP * LS :sasl=EXTERNAL,PLAIN server-time\r\n"},
			{"CAP REQ :sasl", ":srv CAP * ACK :sasl\r\n"},
			{"AUTHENTICATE PLAIN", ":srv NOTICE * :noise\r\nAUTHENTICATE +\r\n"},
			{"AUTHENTICATE " + payload, ""},
			{"AUTHENTICATE +", ":srv 900 Dave Dave!dave@h dave :You are now logged in\r\n:srv 903 Dave :SASL authentication successful\r\n"},
			{"CAP END", ":srv 001 Dave :Welcome\r\n:srv 005 Dave CHANTYPES=# :are supported\n"},
			{"PING :drain-1", ":srv 375 Dave :motd\r\n:srv PONG srv :drain-1\r\n"},
			{"PRIVMSG #c :100% done", "@time=2020-01-01T00:00:00.000Z :x!y@z PRIVMSG Dave :hi\r\nERROR :Closing link\r\n"},
		}
		for _, s := range steps {
			if err := expectLine(r, s.want); err != nil {
				return err
			}
			if _, err := w.Write([]byte(s.reply)); err != nil {
				return err
			}
		}
		return nil
	})

	c := DialIRC(t, addr)
	c.Register(t, nick, account, password)
	drained := c.Drain(t)
	if len(drained) != 2 || drained[0].Command != "005" || drained[1].Command != irc.RPL_MOTDSTART {
		t.Errorf("Drain returned %v, want 005 and 375", drained)
	}
	c.Send("PRIVMSG #c :100%% done")
	msg := c.Expect(t, "privmsg")
	if msg.Trailing() != "hi" || msg.Tags["time"] != "2020-01-01T00:00:00.000Z" || msg.Name != "x" {
		t.Errorf("PRIVMSG parsed as %#v", msg)
	}
	rest := c.ExpectClosed(t)
	if len(rest) != 1 || rest[0].Command != "ERROR" {
		t.Errorf("before EOF: %v", rest)
	}
	if err := <-done; err != nil {
		t.Fatalf("server side: %v", err)
	}
	if lines := c.Lines(); len(lines) != 13 || lines[0] != ":srv CAP * LS * :multi-prefix" {
		t.Errorf("Lines() = %q", lines)
	}
}

// fakeTB records how a helper fails instead of failing the real test.
type fakeTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// failure runs fn as a test body would and returns its Fatalf message.
func (f *fakeTB) failure(fn func()) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestIRCClientFailures(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		addr, done := scriptedServer(t, func(r *bufio.Reader, w net.Conn) error {
			_, err := w.Write([]byte(":srv NOTICE * :bye\r\n"))
			return err
		})
		c := DialIRC(t, addr)
		f := &fakeTB{TB: t}
		msg := f.failure(func() { c.Expect(f, "001") })
		if !strings.Contains(msg, "connection closed") || !strings.Contains(msg, ":srv NOTICE * :bye") {
			t.Errorf("failure message %q should say the connection closed and list the lines", msg)
		}
		<-done
	})
	t.Run("sasl failure", func(t *testing.T) {
		addr, done := scriptedServer(t, func(r *bufio.Reader, w net.Conn) error {
			for range 3 {
				r.ReadString('\n')
			}
			w.Write([]byte(":srv CAP * LS :sasl\r\n"))
			r.ReadString('\n')
			w.Write([]byte(":srv CAP * ACK :sasl\r\n"))
			r.ReadString('\n')
			w.Write([]byte("AUTHENTICATE +\r\n"))
			r.ReadString('\n')
			_, err := w.Write([]byte(":srv 904 nick :SASL authentication failed\r\n"))
			r.ReadString('\n') // hold the connection until the client gives up
			return err
		})
		c := DialIRC(t, addr)
		f := &fakeTB{TB: t}
		msg := f.failure(func() { c.Register(f, "nick", "acct", "wrong-password") })
		if !strings.Contains(msg, "got 904") {
			t.Errorf("failure message %q should report the 904", msg)
		}
		c.Close()
		<-done
	})
	t.Run("timeout", func(t *testing.T) {
		addr, done := scriptedServer(t, func(r *bufio.Reader, w net.Conn) error {
			_, err := r.ReadString('\n')
			return err
		})
		c := DialIRC(t, addr)
		c.Timeout = 100 * time.Millisecond
		f := &fakeTB{TB: t}
		if msg := f.failure(func() { c.Expect(f, "001") }); !strings.Contains(msg, "no 001 within") {
			t.Errorf("failure message %q should report the timeout", msg)
		}
		c.Close()
		<-done
	})
}

func TestSASLChunks(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int // lengths; 1 is the "+"
	}{
		{0, []int{1}},
		{10, []int{10}},
		{400, []int{400, 1}},
		{401, []int{400, 1}},
		{800, []int{400, 400, 1}},
		{950, []int{400, 400, 150}},
	} {
		chunks := saslChunks(strings.Repeat("A", tc.n))
		var got []int
		for _, c := range chunks {
			got = append(got, len(c))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d bytes: chunk lengths %v, want %v", tc.n, got, tc.want)
		}
		if last := chunks[len(chunks)-1]; len(last) == 1 && tc.n%400 == 0 && last != "+" {
			t.Errorf("%d bytes: last chunk %q, want +", tc.n, last)
		}
	}
}

func TestYAMLScalar(t *testing.T) {
	doc := strings.Join([]string{
		"version: 2",
		"global:",
		"  server_name: localhost",
		"  database:",
		"    disable_federation: nested",
		"  list:",
		"  - disable_federation: inlist",
		"  # disable_federation: comment",
		"  disable_federation: false",
		"other:",
		"  disable_federation: other",
		"",
	}, "\n")
	out, err := setYAMLScalar(doc, "global.disable_federation", "true")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(doc, "  disable_federation: false", "  disable_federation: true", 1)
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	for path, want := range map[string]string{
		"global.database.disable_federation": "nested",
		"other.disable_federation":           "other",
		"version":                            "2",
	} {
		if got, _, _, err := findYAMLScalar(out, path); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{"global.missing", "global.database", "version.x", "database.connection_string"} {
		if _, _, _, err := findYAMLScalar(doc, path); err == nil {
			t.Errorf("%s: want an error", path)
		}
	}
}

// A lean homeserver (for load benchmarks), on PostgreSQL when the tests
// have one, serves accounts, rooms and messages, and logs no traces.
func TestLeanHomeserver(t *testing.T) {
	skipIfShort(t)
	opts := Options{Lean: true, Postgres: os.Getenv("MXIRCD_TEST_POSTGRES")}
	hs := StartHomeserverWith(t, opts)
	ctx := context.Background()
	alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
	room, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.SendText(ctx, room.RoomID, "lean"); err != nil {
		t.Fatal(err)
	}
	bob.WaitForEvent(t, ctx, room.RoomID, func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "lean"
	})
	log, err := os.ReadFile(hs.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "level=trace") || strings.Contains(string(log), "level=debug") {
		t.Errorf("a lean homeserver logs below warnings:\n%s", hs.logTail(5))
	}
	if opts.Postgres != "" {
		cfg, err := os.ReadFile(filepath.Join(hs.dir, "dendrite.yaml"))
		if err != nil || !strings.Contains(string(cfg), "mxircd_dendrite_") {
			t.Errorf("dendrite.yaml names no database of its own (%v)", err)
		}
	}
}
