package ircd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/ircreply"
)

// Conn is one IRC client connection. Its reader goroutine (serve) owns the
// registration state; any goroutine may send lines through SendMessage and
// friends, which only enqueue and never block on the network.
type Conn struct {
	srv *Server
	nc  net.Conn
	// log names the client's address, and its account once it has logged
	// in (loggedIn); read it with logger. Any goroutine.
	log atomic.Pointer[slog.Logger]
	q   *sendQueue

	ctx    context.Context // canceled when the connection ends
	cancel context.CancelFunc

	lastRead  atomic.Int64 // unix nanoseconds of the last line read
	pingSent  atomic.Bool
	closeOnce sync.Once

	mu       sync.Mutex // guards the fields below, read by other goroutines
	nick     string     // the reader's until registration, then the session's (SetNick)
	user     string
	realname string
	caps     map[string]bool

	invisible atomic.Bool // user mode +i
	// counted says the connection is among the server's users (LUSERS),
	// gone that it is closing and counted nowhere; under srv.mu.
	counted, gone bool

	registered atomic.Bool
	// settled counts the commands passed to the handler (forward) that
	// the session has answered, with all they started (Settle).
	settled atomic.Uint64
	// pending says the connection is registered without a login yet (see
	// pending.go); it has no handler while it is, unless it lurks.
	pending atomic.Bool
	// lurking says a pending connection reads as a guest (lurk.go).
	lurking    atomic.Bool
	lastActive atomic.Int64 // unix nanoseconds of the last line a lurker sent, PING and PONG aside

	// dispatchMu is held by the reader goroutine while it handles a line,
	// and by a browser login (browserlogin.go) handing its result to the
	// connection, so that the fields below, and the Handler's methods,
	// are used by one of them at a time. "Reader goroutine only" below
	// means: with dispatchMu held.
	dispatchMu sync.Mutex
	// closed says the reader has finished: a login that ends later must
	// detach its Handler itself. Under dispatchMu.
	closed bool
	// browser is the browser login waiting for this connection, if any.
	browser *browserWait

	// Reader goroutine only.
	reg           registration
	handler       Handler
	batch         *clientBatch       // an open draft/multiline batch
	resp          *ircreply.Response // replies of the labeled command being dispatched
	forwarded     bool               // that command went to the session
	posted        uint64             // commands passed to the handler so far
	limiter       *rate.Limiter
	floodSince    time.Time     // start of the current run of throttled lines
	pendingTimer  *time.Timer   // ends a login-pending connection
	lurk          LurkHandler   // while lurking; also the handler then
	lurkTimer     *time.Timer   // drops an idle lurker
	guestNick     string        // the guest nick this connection holds in the server's set
	anonNick      string        // the casefolded nick it holds without a login (autoreg.go); under srv.mu
	registerLimit *rate.Limiter // REGISTER attempts (accountreg.go), made at the first
	pendingUntil  time.Time     // when pendingTimer fires
}

func newConn(srv *Server, nc net.Conn) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		srv:     srv,
		nc:      nc,
		q:       newSendQueue(srv.cfg.MaxSendQ),
		ctx:     ctx,
		cancel:  cancel,
		nick:    "*",
		caps:    map[string]bool{},
		limiter: rate.NewLimiter(rate.Limit(srv.cfg.FloodRate), srv.cfg.FloodBurst),
	}
	c.log.Store(srv.log.With("remote", nc.RemoteAddr().String()))
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// logger is the connection's logger. Any goroutine.
func (c *Conn) logger() *slog.Logger { return c.log.Load() }

// loggedIn binds the connection to the session of the account it logged
// in as, and names the account in what it logs from now on. Reader
// goroutine.
func (c *Conn) loggedIn(h Handler) {
	c.handler = h
	c.log.Store(c.logger().With("account", h.Account()))
}

// Nick is the client's current nickname ("*" before NICK). Any goroutine.
func (c *Conn) Nick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nick
}

// SetNick records a nickname change that the session has already
// announced to the client. The nick has one writer at a time: the reader
// goroutine until registration (NICK), the session from then on; the
// reader hands it over by setting registered before Attach, so a call
// before that is ignored. Session owner goroutine.
func (c *Conn) SetNick(nick string) {
	if !c.registered.Load() {
		c.logger().Warn("nick change before registration ignored", "nick", nick)
		return
	}
	c.storeNick(nick)
	c.srv.moveAnonNick(c, nick)
}

func (c *Conn) storeNick(nick string) {
	c.mu.Lock()
	c.nick = nick
	c.mu.Unlock()
}

// Username is the USER name the client sent. Any goroutine.
func (c *Conn) Username() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// Settle says the session has answered the first n commands passed to it
// (HandleCommand) and everything they started, so a PING may be answered
// at once again. Session owner goroutine.
func (c *Conn) Settle(n uint64) { c.settled.Store(n) }

// HasCap reports whether the client enabled an IRCv3 capability. Any goroutine.
func (c *Conn) HasCap(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caps[name]
}

// ServerName is the name this server uses as the source of its own lines.
func (c *Conn) ServerName() string { return c.srv.cfg.ServerName }

// RemoteAddr is the client's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SendMessage queues one line for the client. Tags the client has not
// negotiated are removed here, in one place, so no producer can leak them.
// Any goroutine; never blocks.
func (c *Conn) SendMessage(m *irc.Message) {
	if len(m.Tags) > 0 {
		m = c.filterTags(m)
	}
	line := encodeLine(m)
	if !c.q.push(line, errorLine("SendQ exceeded")) && c.q.overflowed() {
		c.closeOnce.Do(func() {
			c.logger().Warn("send queue overflow, closing connection")
			c.srv.stats.sendQDrops.Add(1)
			c.srv.uncount(c)
			c.cancel()
		})
	}
}

// SendNumeric queues a numeric reply: the server is the source and the
// client's nick the first parameter. Any goroutine.
func (c *Conn) SendNumeric(code string, params ...string) {
	c.SendMessage(&irc.Message{
		Prefix:  &irc.Prefix{Name: c.srv.cfg.ServerName},
		Command: code,
		Params:  append([]string{c.Nick()}, params...),
	})
}

// SendNotice queues a server NOTICE to the client. Any goroutine.
func (c *Conn) SendNotice(text string) {
	c.SendMessage(&irc.Message{
		Prefix:  &irc.Prefix{Name: c.srv.cfg.ServerName},
		Command: "NOTICE",
		Params:  []string{c.Nick(), text},
	})
}

// Checkpoint queues a checkpoint: the writer runs commit before it writes
// any line sent after it (commit may block briefly, e.g. to make a
// delivery record durable before the delivery), and undo (if not nil) if
// the write of those lines fails. If the connection ends or overflows
// first, neither runs. Checkpoints with the same non-empty key fold while
// the writer has not taken them: only the last commit runs, and the first
// undo, so a key is for records where a later commit includes the earlier
// ones (a position that only moves forward): a burst of N checkpoints is
// one commit, not N. Any goroutine; never blocks.
func (c *Conn) Checkpoint(key string, commit, undo func()) {
	c.q.mark(checkpoint{key: key, commit: commit, undo: undo})
}

// Close sends "ERROR :reason" and closes the connection once the queue has
// been written. Any goroutine; idempotent.
func (c *Conn) Close(reason string) {
	c.closeOnce.Do(func() {
		// Uncounted before the writer can send ERROR: a client that saw
		// it end sees it gone from LUSERS.
		c.srv.uncount(c)
		c.q.close(errorLine(reason))
		c.cancel()
	})
}

func errorLine(reason string) []byte {
	return encodeLine(&irc.Message{Command: "ERROR", Params: []string{reason}})
}

// tagCaps says which capability allows a tag to be sent; message-tags
// allows all of them.
var tagCaps = map[string]string{
	"time":    "server-time",
	"account": "account-tag",
	"batch":   "batch",
	// labeled-response asks for labels without needing message-tags.
	"label":   "labeled-response",
	concatTag: multilineCap,
}

// needsOwnCap lists tags that refer to a BATCH, which a client without
// the batch capabilities would not understand.
var needsOwnCap = map[string]bool{"batch": true, concatTag: true}

func (c *Conn) filterTags(m *irc.Message) *irc.Message {
	c.mu.Lock()
	all := c.caps["message-tags"]
	var keep irc.Tags
	for k, v := range m.Tags {
		// message-tags takes every tag, except those that only mean
		// something with their own capability (batch references); a tag
		// with a capability of its own also comes with that one.
		capName, ok := tagCaps[k]
		if (ok && c.caps[capName]) || (all && !needsOwnCap[k]) {
			if keep == nil {
				keep = irc.Tags{}
			}
			keep[k] = v
		}
	}
	c.mu.Unlock()
	if len(keep) == len(m.Tags) {
		return m
	}
	cp := *m
	cp.Tags = keep
	return &cp
}

// encodeLine is the one place lines are written, so it also keeps every
// line well-formed whatever a producer put in it: a middle parameter that
// is empty, holds a space or starts with ':' (often echoed client input)
// would shift the parameters, and the message part never exceeds 512 bytes.
func encodeLine(m *irc.Message) []byte {
	for i, p := range m.Params {
		// Matrix text (display names, reasons) may hold line breaks, which
		// would end the line early and inject what follows.
		if strings.ContainsAny(p, "\r\n\x00") {
			m = copyParams(m)
			m.Params[i] = strings.Map(func(r rune) rune {
				if r == '\r' || r == '\n' || r == 0 {
					return ' '
				}
				return r
			}, p)
		}
	}
	if len(m.Tags) > 0 && tagsMayExceed(m.Tags) && len(m.Tags.String()) > MaxTagBytes-2 {
		m = trimTags(m)
	}
	for i := 0; i+1 < len(m.Params); i++ {
		if p := m.Params[i]; p == "" || p[0] == ':' || strings.ContainsRune(p, ' ') {
			if p = strings.ReplaceAll(strings.TrimLeft(p, ":"), " ", "_"); p == "" {
				p = "*"
			}
			m = copyParams(m)
			m.Params[i] = p
		}
	}
	s := formatLine(m)
	if msgStart := strings.IndexByte(s, ' ') + 1; len(m.Tags) > 0 && len(s)-msgStart > MaxLineBytes-2 {
		s = truncateUTF8(s, msgStart+MaxLineBytes-2)
	} else if len(m.Tags) == 0 && len(s) > MaxLineBytes-2 {
		s = truncateUTF8(s, MaxLineBytes-2)
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// tagsMayExceed is a cheap bound: escaping at most doubles a value, so
// tags whose raw size is under half the limit need no exact check.
func tagsMayExceed(tags irc.Tags) bool {
	n := 0
	for k, v := range tags {
		n += len(k) + 2*len(v) + 2
	}
	return n > MaxTagBytes-2
}

// trimTags keeps a line's tags within the limit: client-only tags go
// first, then the rest.
func trimTags(m *irc.Message) *irc.Message {
	cp := *m
	cp.Tags = irc.Tags{}
	for k, v := range m.Tags {
		if !strings.HasPrefix(k, "+") {
			cp.Tags[k] = v
		}
	}
	if len(cp.Tags.String()) > MaxTagBytes-2 {
		cp.Tags = nil
	}
	return &cp
}

func copyParams(m *irc.Message) *irc.Message {
	cp := *m
	cp.Params = append([]string(nil), m.Params...)
	return &cp
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// serve runs the connection until it ends. It is the reader goroutine.
func (c *Conn) serve() {
	defer c.srv.connDone(c)

	// The writer closes the socket once the queue is closed and written (or
	// a write times out), which is also what ends a blocked read.
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()

	stopTimer := c.startIdleTimer()
	c.readLoop()
	stopTimer()
	c.dispatchMu.Lock()
	c.closed = true
	if c.pendingTimer != nil {
		c.pendingTimer.Stop()
	}
	c.stopLurking()
	c.srv.releaseGuestNick(c)
	c.srv.releaseAnonNick(c)
	c.stopBrowserLogin()
	if c.handler != nil {
		c.detachHandler()
	}
	c.dispatchMu.Unlock()
	c.Close("Connection closed")
	<-writerDone
}

func (c *Conn) readLoop() {
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("panic in connection", "panic", r, "stack", string(debug.Stack()))
			c.Close("Internal error")
		}
	}()
	lr := NewLineReader(c.nc)
	for {
		line, err := lr.ReadLine()
		if errors.Is(err, ErrLineTooLong) {
			// Counted like any line, or oversized lines would get replies
			// without limit.
			if !c.throttle() {
				c.Close("Excess Flood")
				return
			}
			c.SendNumeric(errInputTooLong, "Input line was too long")
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.logger().Debug("read failed", "err", err)
			}
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.pingSent.Store(false)
		if !c.throttle() {
			c.Close("Excess Flood")
			return
		}
		c.handleLineLocked(line)
	}
}

// handleLineLocked handles a line holding dispatchMu, which a panic in
// the handler must not leave held. Reader goroutine.
func (c *Conn) handleLineLocked(line []byte) {
	c.dispatchMu.Lock()
	defer c.dispatchMu.Unlock()
	c.handleLine(line)
}

func (c *Conn) detachHandler() {
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("panic in detach", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	h := c.handler
	c.handler = nil
	h.Detach()
}

// throttle slows a client that sends faster than the flood rate, and reports
// false once it has done so without a pause for FloodDisconnect.
func (c *Conn) throttle() bool {
	r := c.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		c.floodSince = time.Time{}
		return true
	}
	now := time.Now()
	if c.floodSince.IsZero() {
		c.floodSince = now
	} else if now.Sub(c.floodSince) > c.srv.cfg.FloodDisconnect {
		r.Cancel()
		return false
	}
	select {
	case <-time.After(d):
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *Conn) handleLine(line []byte) {
	// The reader strips only the line ending; a CR elsewhere would split
	// the line for whoever it is echoed to.
	if bytes.ContainsAny(line, "\x00\r") {
		c.fail("*", "INVALID_MESSAGE", "Lines must not contain NUL or CR bytes")
		return
	}
	msg, err := parseMessage(line)
	if err != nil {
		// Only a line of tags or a prefix with no command gets here.
		c.fail("*", "INVALID_MESSAGE", "Malformed line: "+err.Error())
		return
	}
	if !utf8.Valid(line) {
		// UTF8ONLY promises FAIL INVALID_UTF8 to every client, not a
		// NOTICE to those without standard-replies (and a dropped NICK or
		// USER would leave registration waiting with nothing said).
		c.reply(&irc.Message{Prefix: &irc.Prefix{Name: c.srv.cfg.ServerName}, Command: "FAIL",
			Params: []string{utf8Safe(msg.Command), "INVALID_UTF8", "Message rejected: this network only accepts UTF-8"}})
		return
	}
	c.dispatch(msg)
}

// parseMessage guards irc.ParseMessage, which indexes past the end of a
// line that is only tags and a space ("@a "), panicking the reader.
func parseMessage(line []byte) (*irc.Message, error) {
	if len(line) > 0 && line[0] == '@' && bytes.IndexByte(line, ' ') == len(line)-1 {
		return nil, irc.ErrMissingDataAfterTags
	}
	return irc.ParseMessage(string(line))
}

// fail reports an error that has no numeric (ircreply's rule: FAIL or a
// NOTICE). Any goroutine.
func (c *Conn) fail(command, code, text string) {
	ircreply.StandardReply(c, c, "FAIL", command, code, nil, text)
}

// utf8Safe keeps a bad command name from making the error line itself invalid.
func utf8Safe(s string) string {
	if utf8.ValidString(s) && len(s) <= 32 {
		return s
	}
	return "*"
}

func (c *Conn) writeLoop() {
	defer c.nc.Close()
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("panic in writer", "panic", r, "stack", string(debug.Stack()))
			c.Close("Internal error")
		}
	}()
	var buf [][]byte
	var out []byte
	var undo []func() // of checkpoints committed since the last good write
	for {
		lines, marks, done := c.q.take(buf)
		// Delivery is recorded before the lines go out: a crash after the
		// write then cannot show them again, and a failed write undoes it.
		for _, cp := range marks {
			cp.commit()
			if cp.undo != nil {
				undo = append(undo, cp.undo)
			}
		}
		if len(lines) > 0 {
			out = out[:0]
			for _, l := range lines {
				out = append(out, l...)
			}
			c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
			if _, err := c.nc.Write(out); err != nil {
				c.logger().Debug("write failed", "err", err)
				for i := len(undo) - 1; i >= 0; i-- {
					undo[i]()
				}
				c.Close("Write error")
				return
			}
			if cap(out) > 64<<10 {
				out = nil // don't keep a burst-sized buffer for an idle client
			}
			clear(undo)
			undo = undo[:0]
		}
		// Drop the written lines: an idle client should not keep its
		// welcome burst alive through the reused slice.
		clear(lines)
		buf = lines[:0]
		if done {
			return
		}
		// Every path that cancels ctx closes the queue first, so the next
		// take after ctx.Done reports done.
		select {
		case <-c.q.wake:
		case <-c.ctx.Done():
		}
	}
}

// startIdleTimer pings an idle client and closes one that neither answers
// nor registers in time. It needs no goroutine while the client is active.
func (c *Conn) startIdleTimer() (stop func()) {
	var t *time.Timer
	started := time.Now()
	check := func() {
		if c.ctx.Err() != nil {
			return
		}
		now := time.Now()
		if !c.isRegistered() && now.Sub(started) > c.srv.cfg.RegistrationTimeout {
			c.Close("Registration timed out")
			return
		}
		idle := now.Sub(time.Unix(0, c.lastRead.Load()))
		switch {
		case idle < c.srv.cfg.PingInterval:
			t.Reset(c.srv.cfg.PingInterval - idle)
		case !c.pingSent.Load():
			c.pingSent.Store(true)
			c.SendMessage(&irc.Message{Command: "PING", Params: []string{c.srv.cfg.ServerName}})
			t.Reset(c.srv.cfg.PingTimeout)
		default:
			c.Close("Ping timeout")
		}
	}
	first := min(c.srv.cfg.PingInterval, c.srv.cfg.RegistrationTimeout)
	// check reads t, so arm the timer only once t is set: Reset orders the
	// assignment before the callback, AfterFunc(first) alone would not.
	t = time.AfterFunc(math.MaxInt64, check)
	t.Reset(first)
	return func() { t.Stop() }
}

func (c *Conn) isRegistered() bool { return c.registered.Load() }

// formatLine writes m out. Tags go in the order of their names, so one
// event renders to the same bytes every time, and the text of a message
// (PRIVMSG #c :word, a topic, a reason) always follows a colon, as some
// scripts and bots misread a last parameter without one.
func formatLine(m *irc.Message) string {
	var b strings.Builder
	if len(m.Tags) > 0 {
		b.WriteByte('@')
		for i, k := range slices.Sorted(maps.Keys(m.Tags)) {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(k)
			if v := m.Tags[k]; v != "" {
				b.WriteByte('=')
				b.WriteString(irc.EncodeTagValue(v))
			}
		}
		b.WriteByte(' ')
	}
	if m.Prefix != nil && m.Prefix.Name != "" {
		b.WriteByte(':')
		b.WriteString(m.Prefix.String())
		b.WriteByte(' ')
	}
	b.WriteString(m.Command)
	for i, p := range m.Params {
		b.WriteByte(' ')
		if i == len(m.Params)-1 && (p == "" || p[0] == ':' || strings.ContainsRune(p, ' ') || lastIsText(m.Command, len(m.Params))) {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}

// lastIsText says whether the last of n parameters of command is free
// text rather than a name or a mode.
func lastIsText(command string, n int) bool {
	switch command {
	case "PRIVMSG", "NOTICE", "TOPIC", "QUIT", "ERROR", "AWAY", "SETNAME", "FAIL", "WARN", "NOTE":
		return true
	case "PART":
		return n >= 2
	case "KICK":
		return n >= 3
	}
	return false
}
