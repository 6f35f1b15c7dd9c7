package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// Helpers for the bouncer tests (e2e_bouncer_test.go, e2e_restart_test.go).

// bouncerConfig is the configuration the bouncer tests run the gateway
// with: testGateway's, with the [bouncer] defaults spelled out so that the
// tests do not change meaning if the defaults do, then mutate (if not nil).
// The store is a fresh one of driver; restarts keep using it.
func bouncerConfig(t *testing.T, hs *testenv.Homeserver, driver string, mutate func(*Config)) Config {
	t.Helper()
	return gatewayConfig(t, hs, driver, func(c *Config) {
		c.Bouncer.AlwaysOn = true
		c.Bouncer.AwayWhenDetached = true
		c.Bouncer.ReplayLimit = 100
		c.Bouncer.HistoryPerRoom = 5000
		if mutate != nil {
			mutate(c)
		}
	})
}

// bouncer is an in-process gateway that a test can stop and start again on
// the same configuration, store included, as an operator restarting mxircd
// would (gracefully; e2e_restart_test.go kills the binary instead). g is
// the running gateway; its IRC address changes with every start.
type bouncer struct {
	cfg     Config
	g       *gateway
	running bool
	starts  int
}

// startBouncer starts a gateway on cfg; it is shut down when the test ends
// if it is still running then.
func startBouncer(t *testing.T, cfg Config) *bouncer {
	t.Helper()
	b := &bouncer{cfg: cfg}
	b.start(t)
	t.Cleanup(func() { b.stop(t) })
	return b
}

// testGatewayWith is testGateway with bouncerConfig's settings and mutate.
func testGatewayWith(t *testing.T, hs *testenv.Homeserver, driver string, mutate func(*Config)) *gateway {
	t.Helper()
	return startBouncer(t, bouncerConfig(t, hs, driver, mutate)).g
}

// forEachStoreWith is forEachStore with bouncerConfig's settings and mutate,
// handing f the restartable gateway.
func forEachStoreWith(t *testing.T, mutate func(*Config), f func(t *testing.T, hs *testenv.Homeserver, b *bouncer)) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			f(t, hs, startBouncer(t, bouncerConfig(t, hs, driver, mutate)))
		})
	}
}

func (b *bouncer) start(t *testing.T) {
	t.Helper()
	if b.running {
		t.Fatal("bouncer.start: the gateway is already running")
	}
	b.starts++
	var out io.Writer = io.Discard
	if testing.Verbose() || os.Getenv("MXIRCD_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "run", b.starts)
	g, err := startGateway(context.Background(), b.cfg, log)
	if err != nil {
		t.Fatalf("starting gateway (run %d): %v", b.starts, err)
	}
	b.g, b.running = g, true
}

// stop shuts the gateway down gracefully: clients get ERROR, sessions end
// and the store is closed. It does nothing if the gateway is not running.
func (b *bouncer) stop(t *testing.T) {
	t.Helper()
	if !b.running {
		return
	}
	b.running = false
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.g.shutdown(ctx); err != nil {
		t.Errorf("gateway shutdown (run %d): %v", b.starts, err)
	}
}

// restart stops the gateway and starts a new one on the same store.
func (b *bouncer) restart(t *testing.T) {
	t.Helper()
	b.stop(t)
	b.start(t)
}

func (b *bouncer) addr() string { return b.g.ircAddr() }

// clientAccount is the SASL authcid (or USER name) that logs acct in as
// the named client; "" is the unnamed client.
func clientAccount(acct *testenv.Account, client string) string {
	if client == "" {
		return acct.UserID.String()
	}
	return acct.UserID.String() + "@" + client
}

// dialClient logs acct in over SASL PLAIN as the named client ("" for
// none), requesting caps, and waits for the welcome.
func dialClient(t *testing.T, addr, nick string, acct *testenv.Account, client string, caps ...string) *testenv.IRCClient {
	t.Helper()
	c := testenv.DialIRC(t, addr)
	c.Send("CAP LS 302")
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :test", acct.Localpart)
	c.Send("CAP REQ :%s", strings.Join(append([]string{"sasl"}, caps...), " "))
	reply := c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "CAP" && (m.Param(1) == "ACK" || m.Param(1) == "NAK")
	}, "CAP ACK")
	if reply.Param(1) != "ACK" {
		t.Fatalf("CAP REQ %v refused: %s", caps, reply)
	}
	c.Send("AUTHENTICATE PLAIN")
	c.Expect(t, "AUTHENTICATE")
	c.Send("AUTHENTICATE %s", b64("\x00"+clientAccount(acct, client)+"\x00"+acct.Password))
	if m := c.ExpectMatch(t, isCmd2(irc.RPL_SASLSUCCESS, irc.ERR_SASLFAIL), "903"); m.Command != irc.RPL_SASLSUCCESS {
		t.Fatalf("SASL as %q refused: %s", clientAccount(acct, client), m)
	}
	c.Send("CAP END")
	c.Expect(t, irc.RPL_WELCOME)
	return c
}

// dialPass logs in with PASS and the account (and client name) in USER.
func dialPass(t *testing.T, addr, nick, user, password string) *testenv.IRCClient {
	t.Helper()
	c := testenv.DialIRC(t, addr)
	c.Send("PASS :%s", password)
	c.Send("NICK %s", nick)
	c.Send("USER %s 0 * :test", user)
	c.Expect(t, irc.RPL_WELCOME)
	return c
}

func isCmd2(a, b string) func(*irc.Message) bool {
	return func(m *irc.Message) bool { return m.Command == a || m.Command == b }
}

// quit ends a client's connection and waits until the server has closed it.
func quit(t *testing.T, c *testenv.IRCClient) {
	t.Helper()
	c.Send("QUIT :bye")
	c.ExpectClosed(t)
}

// awaitBurst consumes lines until the end of NAMES (366) of every channel
// and returns them.
func awaitBurst(t *testing.T, c *testenv.IRCClient, channels ...string) []*irc.Message {
	t.Helper()
	left := map[string]bool{}
	for _, ch := range channels {
		left[ch] = true
	}
	var lines []*irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		lines = append(lines, m)
		if m.Command == irc.RPL_ENDOFNAMES {
			delete(left, m.Param(1))
		}
		return len(left) == 0
	}, fmt.Sprintf("connect burst of %v", channels))
	return lines
}

// isupport gathers the 005 tokens among lines.
func isupport(lines []*irc.Message) map[string]string {
	out := map[string]string{}
	for _, m := range lines {
		if m.Command != irc.RPL_ISUPPORT || len(m.Params) < 3 {
			continue
		}
		for _, tok := range m.Params[1 : len(m.Params)-1] {
			name, value, _ := strings.Cut(tok, "=")
			out[name] = value
		}
	}
	return out
}

var sentinelSeq atomic.Int64

// said is a message a test sent from Matrix.
type said struct {
	text string
	id   id.EventID
}

// sentinel has from say something unique in room. A client attached
// before it is sent gets everything it is owed (its replay) before it, so
// reading up to it is how tests know that nothing more is coming.
func sentinel(t *testing.T, from *testenv.Account, room id.RoomID) said {
	t.Helper()
	text := fmt.Sprintf("sentinel %d-%d", time.Now().UnixNano(), sentinelSeq.Add(1))
	return said{text, say(t, from, room, text)}
}

// seeLive has from say a sentinel in room and waits until c is shown it,
// so that c has been shown something live before the test goes on (and
// leaves, say).
func seeLive(t *testing.T, c *testenv.IRCClient, from *testenv.Account, room id.RoomID) said {
	t.Helper()
	s := sentinel(t, from, room)
	untilText(t, c, s.text)
	return s
}

// untilText consumes lines until a PRIVMSG whose text is text and returns
// the lines before it and that PRIVMSG.
func untilText(t *testing.T, c *testenv.IRCClient, text string) ([]*irc.Message, *irc.Message) {
	t.Helper()
	var before []*irc.Message
	m := c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "PRIVMSG" && m.Trailing() == text {
			return true
		}
		before = append(before, m)
		return false
	}, "PRIVMSG "+text)
	return before, m
}

// channelMessages keeps the PRIVMSG and NOTICE lines addressed to one of
// channels.
func channelMessages(lines []*irc.Message, channels ...string) []*irc.Message {
	var out []*irc.Message
	for _, m := range lines {
		if (m.Command == "PRIVMSG" || m.Command == "NOTICE") && slices.Contains(channels, m.Param(0)) {
			out = append(out, m)
		}
	}
	return out
}

// attachAndReplay waits for a freshly connected client's burst of
// channels, has bob say a sentinel in room, and returns the messages to
// channels the client got between its burst and the sentinel: its replay.
// It fails the test if a message to one of the channels came before the
// end of the burst. The sentinel is returned too: it is in the room's
// history, and in the replay of clients detached when it was sent.
func attachAndReplay(t *testing.T, c *testenv.IRCClient, bob *testenv.Account, room id.RoomID, channels ...string) ([]*irc.Message, said) {
	t.Helper()
	burst := awaitBurst(t, c, channels...)
	if early := channelMessages(burst, channels...); len(early) > 0 {
		t.Errorf("messages before the end of the connect burst: %s", formatMsgs(early))
	}
	s := sentinel(t, bob, room)
	before, _ := untilText(t, c, s.text)
	return channelMessages(before, channels...), s
}

// wantMsg is one message a test expects on IRC.
type wantMsg struct {
	cmd  string // PRIVMSG or NOTICE
	from string // the prefix's nick
	text string
	id   id.EventID // the msgid tag; "" when the client has no message-tags
	ts   int64      // the time tag, Unix ms; 0 when the client has no server-time, anyTime for any
}

// anyTime in wantMsg.ts asks for a time tag without checking its value.
const anyTime = -1

func (w wantMsg) String() string {
	return fmt.Sprintf("%s from %s %q msgid=%s time=%s", w.cmd, w.from, w.text, w.id, fmtMS(w.ts))
}

func fmtMS(ms int64) string {
	if ms == 0 {
		return "-"
	}
	if ms == anyTime {
		return "(any)"
	}
	return mapping.FormatTime(ms)
}

// checkMessages compares got with want, line by line: command, nick, text,
// and the msgid and time tags (which must be absent when want has none).
func checkMessages(t *testing.T, what string, got []*irc.Message, want []wantMsg) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = matchMsg(got[i], want[i]) == ""
	}
	if ok {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: got %d messages, want %d", what, len(got), len(want))
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w, why string = "(none)", "(none)", ""
		if i < len(got) {
			g = got[i].String()
		}
		if i < len(want) {
			w = want[i].String()
		}
		if i < len(got) && i < len(want) {
			why = matchMsg(got[i], want[i])
		}
		fmt.Fprintf(&b, "\n  [%d] got  %s\n      want %s %s", i, g, w, why)
	}
	t.Error(b.String())
}

// matchMsg says why m is not w, or "" if it is.
func matchMsg(m *irc.Message, w wantMsg) string {
	switch {
	case m.Command != w.cmd:
		return "(command)"
	case m.Prefix == nil || m.Prefix.Name != w.from:
		return "(sender)"
	case m.Trailing() != w.text:
		return "(text)"
	case m.Tags["msgid"] != w.id.String():
		return "(msgid)"
	}
	tm, has := m.Tags["time"]
	if w.ts == 0 {
		if has {
			return "(time tag without server-time)"
		}
		return ""
	}
	if ms, ok := mapping.ParseTime(tm); !ok || ms != w.ts && w.ts != anyTime {
		return "(time)"
	}
	return ""
}

func formatMsgs(ms []*irc.Message) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString("\n  ")
		b.WriteString(m.String())
	}
	return b.String()
}

// say sends a text message as acct and returns its event ID. It then lets
// a few milliseconds pass so that the next event gets a later
// origin_server_ts: the timestamp anchors of CHATHISTORY and MARKREAD need
// events with distinct times. This is spacing, not synchronisation.
func say(t *testing.T, acct *testenv.Account, room id.RoomID, text string) id.EventID {
	t.Helper()
	return sendContent(t, acct, room, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
}

func sendContent(t *testing.T, acct *testenv.Account, room id.RoomID, content *event.MessageEventContent) id.EventID {
	t.Helper()
	resp, err := acct.Client.SendMessageEvent(ctxFor(t), room, event.EventMessage, content)
	if err != nil {
		t.Fatalf("%s sends %q: %v", acct.UserID, content.Body, err)
	}
	time.Sleep(3 * time.Millisecond)
	return resp.EventID
}

// eventTimes returns the origin_server_ts of each event, as the homeserver
// has it, and fails the test unless they are at least 2 ms apart in
// increasing order (so that a timestamp 1 ms after one event is before the
// next).
func eventTimes(t *testing.T, acct *testenv.Account, room id.RoomID, ids ...id.EventID) []int64 {
	t.Helper()
	out := make([]int64, len(ids))
	for i, evID := range ids {
		out[i] = eventTime(t, acct, room, evID)
		if i > 0 && out[i] < out[i-1]+2 {
			t.Fatalf("events %s and %s are %d ms apart; the test needs them apart", ids[i-1], evID, out[i]-out[i-1])
		}
	}
	return out
}

// eventTime is an event's origin_server_ts.
func eventTime(t *testing.T, acct *testenv.Account, room id.RoomID, evID id.EventID) int64 {
	t.Helper()
	ev, err := acct.Client.GetEvent(ctxFor(t), room, evID)
	if err != nil {
		t.Fatalf("get event %s: %v", evID, err)
	}
	return ev.Timestamp
}

// tsRef is a CHATHISTORY or MARKREAD timestamp reference.
func tsRef(ms int64) string { return "timestamp=" + mapping.FormatTime(ms) }

// waitStored waits until the gateway has stored ev in user's event stream,
// which is how tests know that a detached always-on session received it.
func waitStored(t *testing.T, g *gateway, user id.UserID, ev id.EventID) {
	t.Helper()
	waitStoredIn(t, g.store, user, ev)
}

func waitStoredIn(t *testing.T, st store.Store, user id.UserID, ev id.EventID) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, head, err := st.SyncState(ctxFor(t), user)
		if err == nil && head > 0 {
			var evs []store.StoredEvent
			evs, _, err = st.StreamRange(ctxFor(t), user, 0, head, 1<<20)
			for _, e := range evs {
				if e.EventID == ev {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s never reached %s's stored stream (last error %v)", ev, user, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSessions waits until exactly n sessions run.
func waitSessions(t *testing.T, g *gateway, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := g.sessions.SessionCount()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions running, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// historyBatch sends a CHATHISTORY command and returns the batch it is
// answered with: its type, its parameters after the type, and the lines in
// it. A FAIL instead of a batch fails the test.
func historyBatch(t *testing.T, c *testenv.IRCClient, line string) (string, []string, []*irc.Message) {
	t.Helper()
	c.Send("%s", line)
	open := c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "FAIL" || m.Command == "BATCH" && strings.HasPrefix(m.Param(0), "+")
	}, "BATCH + answering "+line)
	if open.Command == "FAIL" {
		t.Fatalf("%s: %s", line, open)
	}
	ref := open.Param(0)[1:]
	var lines []*irc.Message
	c.ExpectMatch(t, func(m *irc.Message) bool {
		if m.Command == "BATCH" && m.Param(0) == "-"+ref {
			return true
		}
		if m.Tags["batch"] == ref {
			lines = append(lines, m)
		}
		return false
	}, "BATCH -"+ref+" answering "+line)
	return open.Param(1), open.Params[2:], lines
}

// chathistory runs a CHATHISTORY query on target and returns the lines of
// the chathistory batch, each checked to be tagged with it.
func chathistory(t *testing.T, c *testenv.IRCClient, target, format string, args ...any) []*irc.Message {
	t.Helper()
	line := "CHATHISTORY " + fmt.Sprintf(format, args...)
	typ, params, lines := historyBatch(t, c, line)
	if typ != "chathistory" || len(params) != 1 || params[0] != target {
		t.Errorf("%s: batch type %q params %v, want chathistory %s", line, typ, params, target)
	}
	return lines
}

// historyTarget is one line of a CHATHISTORY TARGETS reply.
type historyTarget struct {
	target string
	ts     int64
}

// chathistoryTargets runs CHATHISTORY TARGETS and returns its lines.
func chathistoryTargets(t *testing.T, c *testenv.IRCClient, from, to int64, limit int) []historyTarget {
	t.Helper()
	line := fmt.Sprintf("CHATHISTORY TARGETS %s %s %d", tsRef(from), tsRef(to), limit)
	typ, _, lines := historyBatch(t, c, line)
	if typ != "draft/chathistory-targets" {
		t.Errorf("%s: batch type %q, want draft/chathistory-targets", line, typ)
	}
	var out []historyTarget
	for _, m := range lines {
		ms, ok := mapping.ParseTime(strings.TrimPrefix(m.Param(2), "timestamp="))
		if m.Command != "CHATHISTORY" || m.Param(0) != "TARGETS" || !ok {
			t.Errorf("%s: line %s, want CHATHISTORY TARGETS <target> <time>", line, m)
			continue
		}
		out = append(out, historyTarget{m.Param(1), ms})
	}
	return out
}

// historyFail sends a CHATHISTORY command that must fail and returns the
// FAIL, checking its code is one of codes.
func historyFail(t *testing.T, c *testenv.IRCClient, line string, codes ...string) *irc.Message {
	t.Helper()
	c.Send("%s", line)
	m := c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "FAIL" || m.Command == "BATCH" && strings.HasPrefix(m.Param(0), "+")
	}, "FAIL answering "+line)
	if m.Command != "FAIL" || m.Param(0) != "CHATHISTORY" || !slices.Contains(codes, m.Param(1)) {
		t.Errorf("%s answered with %s, want FAIL CHATHISTORY %s", line, m, strings.Join(codes, "|"))
	}
	return m
}

// markread reads a MARKREAD line: its target and timestamp, or star for
// "*".
func markread(m *irc.Message) (target string, ms int64, star, ok bool) {
	if m.Command != "MARKREAD" {
		return "", 0, false, false
	}
	if m.Param(1) == "*" {
		return m.Param(0), 0, true, true
	}
	v, found := strings.CutPrefix(m.Param(1), "timestamp=")
	if !found {
		return m.Param(0), 0, false, false
	}
	ms, ok = mapping.ParseTime(v)
	return m.Param(0), ms, false, ok
}

// expectMarkread waits for MARKREAD target with one of the timestamps.
func expectMarkread(t *testing.T, c *testenv.IRCClient, target string, want ...int64) *irc.Message {
	t.Helper()
	return c.ExpectMatch(t, func(m *irc.Message) bool {
		tg, ms, star, ok := markread(m)
		return ok && !star && tg == target && slices.Contains(want, ms)
	}, fmt.Sprintf("MARKREAD %s timestamp in %v", target, want))
}

// waitPresence polls the presence of user, as watcher sees it, until it
// is want.
func waitPresence(t *testing.T, watcher *testenv.Account, user id.UserID, want event.Presence) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, err := watcher.Client.GetPresence(ctxFor(t), user)
		if err == nil && p.Presence == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s = %+v (%v), want %s", user, p, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var labelSeq atomic.Int64

// labeled sends line with a fresh label (labeled-response and batch
// negotiated) and returns the lines answering it: none for an ACK, one, or
// those of the labeled-response batch.
func labeled(t *testing.T, c *testenv.IRCClient, line string) []*irc.Message {
	t.Helper()
	label := fmt.Sprintf("l%d", labelSeq.Add(1))
	c.Send("@label=%s %s", label, line)
	first := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Tags["label"] == label }, "reply labeled "+label+" to "+line)
	switch {
	case first.Command == "ACK":
		return nil
	case first.Command == "BATCH" && strings.HasPrefix(first.Param(0), "+"):
		ref := first.Param(0)[1:]
		var lines []*irc.Message
		c.ExpectMatch(t, func(m *irc.Message) bool {
			if m.Command == "BATCH" && m.Param(0) == "-"+ref {
				return true
			}
			if m.Tags["batch"] == ref {
				lines = append(lines, m)
			}
			return false
		}, "end of labeled batch "+ref)
		return lines
	default:
		return []*irc.Message{first}
	}
}

// roomBodies lists the bodies of the m.room.message events of room, oldest
// first, as acct reads them from the homeserver. (It pages backwards:
// Dendrite refuses a forward /messages without a from token.)
func roomBodies(t *testing.T, acct *testenv.Account, room id.RoomID) []string {
	t.Helper()
	var out []string
	from := ""
	for range 1000 {
		resp, err := acct.Client.Messages(ctxFor(t), room, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatalf("/messages of %s: %v", room, err)
		}
		for _, ev := range resp.Chunk {
			if ev.Type != event.EventMessage {
				continue
			}
			var c struct {
				Body string `json:"body"`
			}
			if err := json.Unmarshal(ev.Content.VeryRaw, &c); err == nil {
				out = append(out, c.Body)
			}
		}
		if len(resp.Chunk) == 0 || resp.End == "" || resp.End == from {
			slices.Reverse(out)
			return out
		}
		from = resp.End
	}
	t.Fatalf("/messages of %s never ended", room)
	return nil
}

// waitInRoom polls room's messages as acct reads them until one has body,
// and returns all their bodies.
func waitInRoom(t *testing.T, acct *testenv.Account, room id.RoomID, body string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		bodies := roomBodies(t, acct, room)
		if slices.Contains(bodies, body) {
			return bodies
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never reached the room; it has %q", body, bodies)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func count[T comparable](list []T, x T) int {
	n := 0
	for _, y := range list {
		if y == x {
			n++
		}
	}
	return n
}
