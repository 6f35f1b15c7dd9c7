package session

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// Client is an attached IRC connection as the session sees it (ircd.Conn).
// Every method must be safe to call from any goroutine and must not block.
type Client interface {
	Nick() string
	SetNick(nick string)
	SendMessage(m *irc.Message)
	SendNumeric(code string, params ...string)
	SendNotice(text string)
	ServerName() string
	HasCap(name string) bool
	Close(reason string)
	// Checkpoint has the client's writer run commit before it writes any
	// line sent after it, and undo if that write fails; neither if the
	// connection ends first. Checkpoints with one non-empty key that the
	// writer has not taken yet fold: the last commit and the first undo
	// stand for them all.
	Checkpoint(key string, commit, undo func())
}

// Session is one Matrix account's live connection to its homeserver and the
// IRC clients attached to it.
type Session struct {
	// newRooms limits the rooms JOIN and new DMs create (issue 15: one
	// JOIN line of new channels created 257 rooms). Request worker
	// (JOIN) and owner (DMs); a rate.Limiter is safe for both.
	newRooms *rate.Limiter

	mgr  *Manager
	user id.UserID
	cli  *mautrix.Client
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	events chan any // to the owner goroutine
	// fromOthers is what other sessions tell this one (postFromOther), in
	// the order they told it.
	fromOthers orderedPosts
	jobs       jobQueue      // to the request workers, in order per room
	side       jobQueue      // to the side worker: what must not wait behind a send (sideRequest)
	saves      outboxWriter  // accepted messages on their way to the outbox
	done       chan struct{} // closed when the owner goroutine has ended

	gapsFilled    atomic.Int64 // limited timelines filled, for tests
	outboxCommits atomic.Int64 // commits of accepted messages, for tests
	live          atomic.Bool  // the first sync has been applied (Manager.SessionStates)

	// grant stores the renewals of the account's OAuth grant; active
	// once the account renews its access token through one
	// (session/oauth.go). Set before the session starts.
	grant *grantRotator
	// noCrypto keeps the session without end-to-end encryption: the
	// lurkers' guest account (lurk.go). Set before the session starts.
	noCrypto bool
	// guest says this is the shared session of the lurkers (lurk.go),
	// which publishes nothing about itself (here.go).
	guest bool

	// olm is the account's end-to-end encryption, nil while it has none:
	// set by the sync loop before its first sync, used by the sync loop,
	// request workers and history helpers, never by the owner.
	olm atomic.Pointer[crypto.OlmMachine]
	// verifier is the account's interactive (emoji) verification, set
	// with olm; see verify.go.
	verifier atomic.Pointer[verifier]
	// backupDue says room keys may be waiting for the key backup: a key
	// came or was made, or the backup was just trusted (keybackup.go).
	backupDue atomic.Bool
	// joinedEncrypted is the encrypted rooms the account is in, kept by
	// the sync loop for the OlmMachine.
	joinedEncrypted roomSet
	// waiting is the encrypted events whose keys have not come yet.
	waiting waitingKeys

	// setPresence is what each /sync tells the homeserver about the
	// account (the default would reset AWAY to online every time).
	setPresence atomic.Pointer[event.Presence]

	stopOnce sync.Once

	// alwaysOn keeps the session running with no client attached.
	alwaysOn atomic.Bool
	// syncer is the sync loop (syncer.go): set before run, then only the
	// sync goroutine touches it.
	syncer *syncer
	// detachedAway says the account shows as away because no client is
	// attached (bouncer.away_when_detached). Read by the sync loop.
	detachedAway atomic.Bool

	// Owned by the run goroutine.
	clients  map[*Attachment]bool // value: has had its connect burst
	synced   bool                 // the initial sync has been applied
	rooms    map[id.RoomID]*room
	channels map[string]id.RoomID        // folded channel name → room
	nicks    map[id.UserID]string        // nicks given to other Matrix users
	byNick   map[string]id.UserID        // folded nick → user
	sentTxns map[string]*Attachment      // our own sends by transaction ID → the client that typed them
	sentResp map[string]*labeledResponse // labeled messages waiting for their echo
	early    earlyLine                   // the early line being run (runEarly)
	// PINGs waiting (barrier.go) for a message's echo, or a joined room.
	echoHolds map[string]func()
	roomHolds map[id.RoomID][]roomHold
	partHolds map[id.RoomID][]func() // PARTs waiting for their room to close
	// ownNick is accountNick's last answer, for connections registering
	// (Attachment.OwnNick). Written by the owner, read by readers.
	ownNick  atomic.Pointer[string]
	txnSeq   uint64
	batchSeq uint64         // names of batches sent to clients
	started  int64          // unix nanoseconds; makes transaction IDs unique across sessions
	pending  []commandEvent // commands that came before the first sync
	// undelivered says which messages from an earlier run could not be
	// sent, for the next client to attach when none was attached.
	undelivered []string
	unsent      []store.OutboxEntry // messages an earlier run left unsent, resent after the first sync
	syncBroken  bool                // the last /sync failed and clients were told
	lastError   string              // the last failed /sync's error, for STATUS
	lastErrorAt time.Time
	loggingOut  bool // LOGOUT is under way: the sync loop's refused token is expected

	// polls are the polls seen start in the account's rooms, with the
	// responses seen since, newest last (polls.go).
	polls     map[id.EventID]*pollState
	pollOrder []id.EventID

	// The account's event stream (see bouncer.go): head is the position of
	// the newest stored event applied.
	head int64

	// A room the account joins can show up in /sync before the JOIN request
	// that caused it has returned, and before its alias state has. Such a
	// room waits in deferred until the requests in flight have come back,
	// so that it is announced once, under the name the client asked for.
	joinsInFlight int
	leaving       map[id.RoomID]int // PARTs of rooms not yet shown as left
	// partReasons is the reason of the last PART of a room whose leave
	// succeeded, for the PART line when sync shows the room left: some
	// homeservers (Dendrite) drop /leave's reason from the event.
	partReasons map[id.RoomID]string
	// renameReasons is the reason of a RENAME of a room, until sync shows
	// its new name (rename.go).
	renameReasons map[id.RoomID]string
	deferred      map[id.RoomID]*room
	joinNames     map[id.RoomID]string    // the alias or room ID clients joined rooms by
	savedNames    map[id.RoomID]string    // made-up channel names, as stored
	unsavedNames  map[id.RoomID]string    // made-up names to store, by room ID
	invites       map[id.RoomID]*invite   // pending invites of the account
	direct        map[id.RoomID]id.UserID // m.direct: DM rooms and their peer
	dmFutures     map[id.UserID]*dmFuture // DM rooms being created
	presence      map[id.UserID]presence  // last known presence of users
	// hereNames are the display names of MONITORed accounts on this
	// gateway as last seen, for extended-monitor's SETNAME (here.go).
	hereNames map[id.UserID]string
	// ownName is the account's display name as last set or seen, for the
	// gateway's other sessions (here.go).
	ownName string
	// toldName is the display name the account's clients were last told
	// by SETNAME, so that one change is told once (presence.go, sync.go).
	toldName    string
	ignored     map[id.UserID]bool // m.ignored_user_list (ignore.go)
	dir         directoryState     // rooms' directory visibility (directory.go)
	inviteFlood map[id.UserID]int  // invitations held back in this sync, by sender (invites.go)
	upgrades    upgradeState       // replaced rooms (upgrades.go)

	// Lurkers (lurk.go): read-only clients, not in clients, each reading
	// the channels it joined. Made with the first lurker.
	lurkAll     map[*Attachment]bool
	lurkers     map[id.RoomID]map[*Attachment]bool // by room: the lurkers reading it
	lurkWaiting map[id.RoomID][]*Attachment        // lurkers whose JOIN returned before the room came through sync

	// urgent is closed when a client attaches: a session still waiting
	// for a start slot then starts at once. hurried says it is closed.
	urgent   chan struct{}
	hurried  bool
	resuming map[id.RoomID]*room // rooms loaded from the store, until the first sync is applied

	// Helpers off the owner, one of each kind at a time (lane.go).
	listings   helperLane  // directory LISTs
	markers    helperLane  // resolving read markers
	markerRefs []markerRef // read markers waiting for the next helper

	// readMarks are the read markers IRC clients set, unix ms by target
	// (readmarker.go), as stored. Owner goroutine.
	readMarks map[string]int64
}

// Events the owner goroutine handles.
type (
	attachEvent  struct{ a *Attachment }
	detachEvent  struct{ a *Attachment }
	commandEvent struct {
		a   *Attachment
		msg *irc.Message
		// line is the outbox row of a message line that came before
		// the first sync (acceptEarly); nil for other commands.
		line *pendingSend
	}
	syncEvent struct {
		resp    *mautrix.RespSync
		initial bool
		// seqs is the stream position of each timeline event the account
		// had not seen; an event missing here is not shown.
		seqs map[id.EventID]int64
		// resumed is what the session loaded from the store to resume
		// from, with its first (incremental) sync; nil otherwise.
		resumed *resumeState
	}
	// resultEvent carries the owner-side continuation of a finished request.
	resultEvent struct{ apply func() }
	// loggedOutEvent says the homeserver no longer accepts the token;
	// revoked, that the account's OAuth grant is over too.
	loggedOutEvent struct {
		err     error
		revoked bool
	}
	// stopEvent asks the session to finish its queued requests and end.
	stopEvent struct{}
	// crashedEvent says the sync loop or the request worker died.
	crashedEvent struct{}
	// syncFailedEvent reports a failed /sync that will be retried.
	syncFailedEvent struct{ err error }
)

// job is one homeserver request, run on the worker goroutine; the function
// it returns (if any) is applied on the owner goroutine.
type job func(ctx context.Context) func()

func newSession(mgr *Manager, cli *mautrix.Client) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		mgr:           mgr,
		user:          cli.UserID,
		cli:           cli,
		log:           mgr.log.With("user", cli.UserID.String()),
		ctx:           ctx,
		cancel:        cancel,
		events:        make(chan any, 64),
		done:          make(chan struct{}),
		clients:       map[*Attachment]bool{},
		rooms:         map[id.RoomID]*room{},
		channels:      map[string]id.RoomID{},
		nicks:         map[id.UserID]string{},
		byNick:        map[string]id.UserID{},
		sentTxns:      map[string]*Attachment{},
		sentResp:      map[string]*labeledResponse{},
		echoHolds:     map[string]func(){},
		roomHolds:     map[id.RoomID][]roomHold{},
		leaving:       map[id.RoomID]int{},
		partReasons:   map[id.RoomID]string{},
		renameReasons: map[id.RoomID]string{},
		partHolds:     map[id.RoomID][]func(){},
		started:       time.Now().UnixNano(),
		urgent:        make(chan struct{}),
		deferred:      map[id.RoomID]*room{},
		joinNames:     map[id.RoomID]string{},
		savedNames:    map[id.RoomID]string{},
		invites:       map[id.RoomID]*invite{},
		direct:        map[id.RoomID]id.UserID{},
		dmFutures:     map[id.UserID]*dmFuture{},
		presence:      map[id.UserID]presence{},
		hereNames:     map[id.UserID]string{},
		newRooms:      rate.NewLimiter(rate.Every(mgr.cfg.RoomCreateInterval), mgr.cfg.RoomCreateBurst),
		listings:      helperLane{what: "directory listing", max: maxWaitingLists},
		markers:       helperLane{what: "read markers"},
	}
}

// post hands an event to the owner goroutine; it gives up when the session
// has stopped. Any goroutine but the owner.
func (s *Session) post(ev any) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// orderedPosts is a session's queue of events from other sessions' owners,
// which must not wait on this one (it may itself be posting to them) and
// must not overtake one another: a nick's change of case and then its
// release reach a MONITOR in that order, a +s and then a -s too.
type orderedPosts struct {
	mu       sync.Mutex
	queue    []any
	draining bool // a goroutine is posting the queue
}

// postFromOther queues ev for the owner without waiting: one goroutine at
// a time posts the queue, in order. Any goroutine.
func (s *Session) postFromOther(ev any) {
	q := &s.fromOthers
	q.mu.Lock()
	q.queue = append(q.queue, ev)
	if q.draining {
		q.mu.Unlock()
		return
	}
	q.draining = true
	q.mu.Unlock()
	go func() {
		for {
			q.mu.Lock()
			if len(q.queue) == 0 {
				q.draining = false
				q.mu.Unlock()
				return
			}
			ev := q.queue[0]
			q.queue = q.queue[1:]
			q.mu.Unlock()
			if !s.post(ev) {
				q.mu.Lock()
				q.queue, q.draining = nil, false // the session has stopped
				q.mu.Unlock()
				return
			}
		}
	}()
}

// setToken swaps the access token after a new password login. Any goroutine.
func (s *Session) setToken(token string) {
	s.cli.OAuthSetTokens("", "", token, time.Time{})
	if v := s.verifier.Load(); v != nil {
		v.cli.OAuthSetTokens("", "", token, time.Time{})
	}
}

// stop ends the session once the request worker has run what is queued:
// a message typed just before QUIT is still sent. It goes through the
// owner, behind the commands already posted, so their requests are queued
// before the worker starts to drain. Any goroutine but the owner.
func (s *Session) stop() {
	if !s.post(stopEvent{}) {
		s.cancel()
	}
}

// run is the owner goroutine: it starts the sync loop, then applies events
// one at a time until the session stops. The request worker runs when
// there are requests (enqueue).
func (s *Session) run() {
	defer close(s.done)
	defer s.leaveHere()
	s.publishPresence(false)
	go s.guard("sync loop", s.syncer.run)
	for {
		select {
		case <-s.ctx.Done():
			s.log.Debug("session stopped")
			return
		case ev := <-s.events:
			s.handleEvent(ev)
		}
	}
}

// guard runs a long-lived goroutine's body, logging a panic instead of
// taking the process down; a crashed part ends this session only, through
// the owner, which alone may touch the clients.
func (s *Session) guard(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in session", "part", what, "panic", r, "stack", string(debug.Stack()))
			if !s.post(crashedEvent{}) {
				s.cancel()
			}
		}
	}()
	f()
}

// goSafe runs a short-lived helper goroutine whose panic is logged and
// otherwise ignored.
func (s *Session) goSafe(what string, f func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic in session helper", "part", what, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		f()
	}()
}

func (s *Session) handleEvent(ev any) {
	defer func() {
		if len(s.unsavedNames) > 0 {
			s.flushNames()
		}
		if r := recover(); r != nil {
			// One bad event must not end the session: log it and go on.
			s.log.Error("panic handling event", "event", fmt.Sprintf("%T", ev), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	switch ev := ev.(type) {
	case attachEvent:
		if !s.hurried {
			s.hurried = true
			close(s.urgent)
		}
		if ev.a.lurk != nil {
			s.lurkAttach(ev.a)
			return
		}
		s.clients[ev.a] = false
		s.clientsChanged()
		if s.synced {
			s.startAttach(ev.a)
		}
	case detachEvent:
		if ev.a.lurk != nil {
			s.lurkDetach(ev.a, "")
			return
		}
		delete(s.clients, ev.a)
		s.clearMonitor(ev.a)
		s.clientsChanged()
	case commandEvent:
		if _, ok := s.clients[ev.a]; ok || s.lurkAll[ev.a] {
			s.handleCommand(ev.a, ev.msg)
		}
	case syncEvent:
		if s.syncBroken {
			s.syncBroken = false
			s.noticeAll("The homeserver is reachable again.")
		}
		if ev.resumed != nil {
			s.resumeRooms(ev.resumed)
		}
		s.applySync(ev.resp, ev.initial, ev.seqs)
	case syncFailedEvent:
		s.lastError, s.lastErrorAt = matrixErrorText(ev.err), time.Now()
		if !s.syncBroken {
			// Tell clients once, not on every retry.
			s.syncBroken = true
			s.noticeAll(fmt.Sprintf("Cannot reach the homeserver (%s); retrying in the background.", matrixErrorText(ev.err)))
		}
	case lurkEndEvent:
		s.lurkDetach(ev.a, ev.reason)
		close(ev.done)
	case presenceChanged:
		if ev.nick != "" {
			s.recheckMonitors("", ev.nick)
		} else if p, ok := s.mgr.here.lookup(ev.user); ok {
			s.notePresence(ev.user, p)
			s.noteHereName(ev.user)
		}
	case resultEvent:
		if ev.apply != nil {
			ev.apply()
		}
	case stopEvent:
		s.stopOnce.Do(func() {
			idle := s.jobs.stop()
			if s.side.stop() && idle {
				s.cancel() // nothing queued to finish
			}
		})
	case crashedEvent:
		s.shutdownClients("Internal error in your session; please reconnect")
		s.mgr.forget(s)
		s.cancel()
	case loggedOutEvent:
		if s.loggingOut {
			return // LOGOUT ends the session when its request returns
		}
		s.log.Warn("homeserver refused the access token; ending the session", "err", ev.err, "oauth_revoked", ev.revoked)
		if err := s.forgetToken(); err != nil {
			s.log.Error("could not clear the stored token", "err", err)
		}
		if ev.revoked {
			s.shutdownClients("Your Matrix login was revoked or has expired; reconnect and log in again")
		} else {
			s.shutdownClients("Your Matrix session was logged out; reconnect to log in again")
		}
		s.mgr.forget(s)
		s.cancel()
	}
}

func (s *Session) noticeAll(text string) {
	for a := range s.clients {
		a.client.SendNotice(text)
	}
}

func (s *Session) shutdownClients(reason string) {
	for a := range s.clients {
		a.client.Close(reason)
	}
	for a := range s.lurkAll {
		a.client.Close(reason)
	}
}

func (s *Session) forgetToken() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	acct, err := s.mgr.store.Account(ctx, s.user)
	if err != nil {
		return err
	}
	acct.AccessToken = ""
	return s.mgr.store.PutAccount(ctx, acct)
}

// jobQueue holds the requests waiting for the workers. Each request has a
// lane: the room it acts in, or noLane. Requests of one room run one at a
// time, in the order queued, so a room's messages arrive in the order
// they were typed; requests of different rooms run side by side, at most
// maxLanes at once, so one room's slow request (a room key shared with
// 1,000 devices, a send retried for 45 s) holds up no other room. A
// request of no room (a JOIN, a DM being created and its first
// message, presence, the service's commands) keeps the order it always
// had with everything: it waits for every request queued before it and
// every request queued after it waits for it. Workers run only while
// there is work: an idle always-on session keeps no goroutine for them.
// Its lock is its own: everyone goes through its methods.
type jobQueue struct {
	mu      sync.Mutex
	q       []queuedJob
	running map[id.RoomID]bool // lanes with a request running (noLane while one of no room runs)
	workers int                // worker goroutines alive: running a request or about to take one
	stopAt  time.Time          // when the session was asked to stop; zero while it runs
}

// queuedJob is a request and the lane it keeps its order in.
type queuedJob struct {
	lane id.RoomID
	run  job
}

// noLane is the lane of requests that act in no one room: they run alone,
// in order with all others.
const noLane id.RoomID = ""

// maxJobs bounds the requests one session may have waiting.
const maxJobs = 256

// maxLanes bounds the rooms whose requests one session runs at once.
const maxLanes = 4

// push adds a request; ok is false when the queue is full. start is how
// many workers the caller must start for what can run now. Any goroutine.
func (q *jobQueue) push(lane id.RoomID, j job) (ok bool, start int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) >= maxJobs {
		return false, 0
	}
	q.q = append(q.q, queuedJob{lane: lane, run: j})
	return true, q.spawn()
}

// spawn says how many workers to start, and counts them: one for each
// request that may run now and that no worker between requests will take,
// up to maxLanes workers. Lock held.
func (q *jobQueue) spawn() int {
	runnable := 0
	for range q.runnable() {
		if runnable++; runnable == maxLanes {
			break
		}
	}
	n := min(runnable-(q.workers-len(q.running)), maxLanes-q.workers)
	if n <= 0 {
		return 0
	}
	q.workers += n
	return n
}

// runnable yields, in queue order, the index of each request that may
// start now: no request of no room runs, its lane is not running, and
// nothing queued before it is of its lane or of no lane. A request of no
// lane may start only when nothing runs and it is first. Lock held.
func (q *jobQueue) runnable() iter.Seq[int] {
	return func(yield func(int) bool) {
		if q.running[noLane] {
			return
		}
		for i, e := range q.q {
			if e.lane == noLane {
				if i == 0 && len(q.running) == 0 {
					yield(0)
				}
				return
			}
			if q.running[e.lane] || slices.ContainsFunc(q.q[:i], func(o queuedJob) bool { return o.lane == e.lane }) {
				continue
			}
			if !yield(i) {
				return
			}
		}
	}
}

// take hands a worker, whose last request (if any, in lane done) has
// finished, its next request, how long it may run, and how many more
// workers to start. When none may run now, or a stopping session has spent
// its patience (then what is left is dropped), the worker ends (ok false);
// with stopping, the last to end ends the session. Worker goroutine.
func (q *jobQueue) take(done *id.RoomID) (j queuedJob, timeout time.Duration, start int, ok, stopping bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if done != nil {
		delete(q.running, *done)
	}
	stopping = !q.stopAt.IsZero()
	if stopping && time.Since(q.stopAt) > drainTimeout {
		clear(q.q)
		q.q = q.q[:0]
	}
	i := -1
	for i = range q.runnable() {
		break
	}
	if i < 0 {
		q.workers--
		return queuedJob{}, 0, 0, false, stopping
	}
	j = q.q[i]
	q.q = slices.Delete(q.q, i, i+1)
	if q.running == nil {
		q.running = map[id.RoomID]bool{}
	}
	q.running[j.lane] = true
	timeout = 60 * time.Second
	if stopping {
		timeout = drainTimeout - time.Since(q.stopAt)
	}
	return j, timeout, q.spawn(), true, stopping
}

// stop starts the drain: from now the workers have drainTimeout for what
// is queued. idle says no worker runs, so nothing is left to finish. Any
// goroutine.
func (q *jobQueue) stop() (idle bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopAt.IsZero() {
		q.stopAt = time.Now()
	}
	return q.workers == 0
}

// busy says whether a worker is running. Any goroutine.
func (q *jobQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.workers > 0
}

// enqueue schedules a homeserver request that acts in no one room (see
// jobQueue). It never blocks the owner: when the queue is full the
// request is refused and the caller tells the client. Any goroutine.
func (s *Session) enqueue(j job) bool { return s.enqueueOn(&s.jobs, noLane, j) }

// enqueueIn schedules a request in room's lane: after the room's earlier
// requests, beside other rooms'. Any goroutine.
func (s *Session) enqueueIn(room id.RoomID, j job) bool { return s.enqueueOn(&s.jobs, room, j) }

// enqueueSide schedules work that must not wait behind message sends,
// which may retry for sendRetryWindow: reads and writes of the store
// (history, channel names, settings) and read markers. It runs on a
// worker of its own, in order with the other side work only. Any
// goroutine.
func (s *Session) enqueueSide(j job) bool { return s.enqueueOn(&s.side, noLane, j) }

func (s *Session) enqueueOn(q *jobQueue, lane id.RoomID, j job) bool {
	if s.ctx.Err() != nil {
		return false
	}
	ok, start := q.push(lane, j)
	for range start {
		go s.guard("request worker", func() { s.worker(q) })
	}
	return ok
}

// worker runs requests of q until none may run now. A room's requests run
// in the order the client gave them, so that messages arrive in Matrix in
// the order they were typed. Once the session is stopping it finishes
// what the clients asked for before they left, with a shorter patience,
// and the last worker to finish ends the session.
func (s *Session) worker(q *jobQueue) {
	var done *id.RoomID
	for {
		j, timeout, start, ok, stopping := q.take(done)
		if !ok {
			if stopping && !s.jobs.busy() && !s.side.busy() {
				s.cancel()
			}
			return
		}
		for range start {
			go s.guard("request worker", func() { s.worker(q) })
		}
		s.runJob(j.run, timeout)
		done = &j.lane
	}
}

// sideRequest is request for work that must not wait behind message
// sends (see enqueueSide).
func (s *Session) sideRequest(a *Attachment, out output, command string, j job) bool {
	return s.requestOn(s.enqueueSide, a, out, command, j)
}

// requestOn schedules j with enqueue for a client, or tells the client
// right away that too many are queued. A labeled response waits for the
// job's result. Owner goroutine.
func (s *Session) requestOn(enqueue func(job) bool, a *Attachment, out output, command string, j job) bool {
	resp := labeledOf(out)
	if resp != nil {
		// The result belongs to the labeled response too; it writes to
		// out, which the job's closure holds.
		resp.Hold()
	}
	// A PING after the command waits for the result (barrier.go).
	place, release := a.takeHold()
	inner := j
	j = func(ctx context.Context) func() {
		apply := inner(ctx)
		return func() {
			if apply != nil {
				// Holds the result takes keep the command's place.
				prev := a.applying
				a.applying = place
				apply()
				a.applying = prev
			}
			if resp != nil {
				resp.Done()
			}
			release()
		}
	}
	if !enqueue(j) {
		s.fail(a, out, command, "TEMPORARILY_UNAVAILABLE", "", "Too many requests are waiting for the homeserver; try again shortly")
		if resp != nil {
			resp.Done()
		}
		release()
		return false
	}
	return true
}

// drainTimeout bounds how long a stopping session spends on queued requests.
const drainTimeout = 15 * time.Second

func (s *Session) runJob(j job, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	apply := j(ctx)
	cancel()
	if apply != nil {
		s.post(resultEvent{apply: apply})
	}
}

// retryDelay doubles the wait after each failure up to a minute, and
// follows the homeserver's retry_after_ms when it rate-limits us.
func retryDelay(err error, prev time.Duration) time.Duration {
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.RespError != nil {
		if ms, ok := httpErr.RespError.ExtraData["retry_after_ms"].(float64); ok && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	return min(max(2*prev, time.Second), time.Minute)
}

// Attachment links one IRC client to a session. It implements ircd.Handler.
type Attachment struct {
	sess *Session
	// client is the connection, set once: any goroutine may use it.
	// Renderers and handlers write to the output they are given, which is
	// this client or a stand-in for it (a labeled response, a past event).
	client Client
	name   string // the client name ("laptop" of alice@laptop), "" if none
	// tagsOnly: replies and reactions go only as tags (TAGSONLY,
	// tagsonly.go). A pointer, as renderers work on copies (lurk.go).
	tagsOnly *atomic.Bool

	// Owner goroutine only.
	monitor    map[string]*monitorTarget // MONITOR targets, by folded name
	lurk       *lurkView                 // set (before Attach) for a lurker: what it reads
	cursor     int64                     // stream position given to the client
	catchingUp bool                      // missed events are being replayed
	burstHead  int64                     // the head when its connect burst was sent
	handled    uint64                    // commands of the client run so far (barrier.go)
	holdSeq    uint64                    // holds taken so far
	applying   uint64                    // the hold of the request whose result is being applied
	open       []uint64                  // holds not yet released, in order
	pongs      []waitingPong             // PONGs waiting for holds
	// joining is the hold of each JOIN in flight, by folded channel name,
	// and behindJoin the commands on such a channel waiting for it
	// (joinwait.go).
	joining    map[string]uint64
	behindJoin []behindJoin
	replaying  bool
	// burstMark is the last hold its connect burst took (the member
	// lists its NAMES wait for); afterBurst, the replay of what it
	// missed, waits for them, so that it comes after the burst.
	burstMark  uint64
	afterBurst func()
}

func newAttachment(s *Session, c Client, name string) *Attachment {
	// cursor -1: the first mark, even at position 0, saves the client's
	// cursor, so a client that was shown nothing still has a place.
	return &Attachment{sess: s, client: c, name: name, tagsOnly: new(atomic.Bool), monitor: map[string]*monitorTarget{}, cursor: -1}
}

// OwnNick is the nick the account was last seen under, for a client to
// register with (ircd); "" until the session has worked it out. Any
// goroutine.
func (a *Attachment) OwnNick() string {
	if n := a.sess.ownNick.Load(); n != nil {
		return *n
	}
	return ""
}

// Attach starts delivery to the client. Client's reader goroutine.
func (a *Attachment) Attach() { a.sess.post(attachEvent{a}) }

// HandleCommand passes an IRC command to the session. Client's reader
// goroutine; it blocks only while the session's event queue is full.
func (a *Attachment) HandleCommand(m *irc.Message) {
	if !a.sess.post(commandEvent{a: a, msg: m}) {
		a.client.Close("Your Matrix session has ended")
	}
}

// Detach ends the attachment. Client's reader goroutine.
func (a *Attachment) Detach() {
	if a.lurk != nil {
		a.sess.mgr.lurking.Add(-1)
	}
	a.sess.post(detachEvent{a})
	a.sess.mgr.release(a.sess)
}

// Account is the Matrix ID the client is logged in as. Any goroutine.
func (a *Attachment) Account() string { return a.sess.accountName(a.sess.user) }
