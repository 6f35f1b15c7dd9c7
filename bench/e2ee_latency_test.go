package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/e2eepeer"
)

// e2eeRounds is how many messages each of the eight paths of
// BenchmarkEncryptedLatency sends after its first; one round sends one on
// each, e2eePace apart: about three and a half minutes. Alice's IRC
// client sends on three paths of eight, so its lines stay well inside the
// gateway's flood control (5 lines a second after a burst) at this pace.
const (
	e2eeRounds = 100
	e2eePace   = 200 * time.Millisecond
)

// e2eeDirection is who types a message and who reads it.
type e2eeDirection int

const (
	ircToSDK e2eeDirection = iota // IRC client → mxircd → … → Element's SDK
	sdkToIRC                      // Element's SDK → … → mxircd → IRC client
	sdkToSDK                      // Element's SDK → homeserver → Element's SDK: the native reference
	ircToIRC                      // IRC client → mxircd → homeserver → mxircd → IRC client: the gateway both ways
)

var e2eeDirections = []e2eeDirection{ircToSDK, sdkToIRC, sdkToSDK, ircToIRC}

func (d e2eeDirection) String() string {
	return [...]string{"IRC → SDK", "SDK → IRC", "SDK → SDK", "IRC → IRC"}[d]
}

func (d e2eeDirection) metric() string {
	return [...]string{"irc-sdk", "sdk-irc", "sdk-sdk", "irc-irc"}[d]
}

// e2eePath is one way a message goes: into one of the two rooms, in one
// direction.
type e2eePath struct {
	room      id.RoomID
	channel   string // alice's name for the room
	channel2  string // dave's
	encrypted bool
	dir       e2eeDirection
}

// e2eeParties are the four ends: alice on IRC through mxircd, bob on
// Element's SDK (the other end of the paths with an SDK), carol on
// Element's SDK too (the sender of the native reference), and dave on IRC
// through the same mxircd (the other end of IRC → IRC).
type e2eeParties struct {
	irc        *ircClient
	dave       *ircClient
	alice      id.UserID
	bob, carol *e2eepeer.Peer
	carolID    id.UserID
}

// BenchmarkEncryptedLatency: a message typed on IRC → mxircd → homeserver
// → Element's SDK (matrix-js-sdk with its Rust crypto, decrypting), in an
// end-to-end encrypted room against an unencrypted one, with the same
// gateway, accounts and receiver, so that only encryption differs; the
// other way, the SDK sending and the IRC client receiving PRIVMSG; and,
// as the reference of what encryption costs without the gateway, one SDK
// to another in the same two rooms; and, as what encryption costs with
// the gateway alone, IRC to IRC through two accounts' sessions on the same
// gateway (one encrypts, the other decrypts). The first message of each path is
// timed apart (in the encrypted room it carries the Megolm key sharing);
// then one message at a time, the eight paths interleaved in turn so that
// machine noise falls on all of them.
func BenchmarkEncryptedLatency(b *testing.B) {
	hs := testenv.SharedHomeserver(b)
	addr := startGateway(b, hs, "")
	alice, bobAcct, carolAcct, daveAcct := hs.Register(b, "alice"), hs.Register(b, "bob"), hs.Register(b, "carol"), hs.Register(b, "dave")
	a := login(b, addr, "alice", alice)
	defer a.conn.Close()
	a.waitFor(b, func(m *irc.Message) bool { return m.Command == irc.RPL_ENDOFMOTD || m.Command == irc.ERR_NOMOTD })
	d := login(b, addr, "dave", daveAcct)
	defer d.conn.Close()
	d.waitFor(b, func(m *irc.Message) bool { return m.Command == irc.RPL_ENDOFMOTD || m.Command == irc.ERR_NOMOTD })
	// The SDK encrypts to the devices it finds when it first sends, so
	// the gateway's devices must have published their keys by then.
	waitDeviceKeys(b, alice)
	waitDeviceKeys(b, daveAcct)
	who := e2eeParties{
		irc: a, dave: d, alice: alice.UserID,
		bob:     e2eepeer.Start(b, hs.URL, bobAcct.UserID.String(), bobAcct.Password),
		carol:   e2eepeer.Start(b, hs.URL, carolAcct.UserID.String(), carolAcct.Password),
		carolID: carolAcct.UserID,
	}

	var paths []e2eePath
	for _, encrypted := range []bool{true, false} {
		room := who.bob.CreateRoom(b, e2eepeer.RoomOptions{Name: fmt.Sprintf("bench encrypted=%v", encrypted), Encrypted: encrypted, Invite: []id.UserID{alice.UserID, carolAcct.UserID, daveAcct.UserID}})
		who.carol.Join(b, room.String())
		// ownJoin waits for c's own JOIN of the new room, the first JOIN
		// of a channel it is not in yet: the others joined before.
		ownJoin := func(c *ircClient, known func(e2eePath) string) string {
			var channel string
			c.waitFor(b, func(m *irc.Message) bool {
				if m.Command == "JOIN" && !slices.ContainsFunc(paths, func(p e2eePath) bool { return known(p) == m.Param(0) }) {
					channel = m.Param(0)
				}
				return channel != ""
			})
			return channel
		}
		if _, err := alice.Client.JoinRoom(context.Background(), room.String(), nil); err != nil {
			b.Fatal(err)
		}
		channel := ownJoin(a, func(p e2eePath) string { return p.channel })
		if _, err := daveAcct.Client.JoinRoom(context.Background(), room.String(), nil); err != nil {
			b.Fatal(err)
		}
		channel2 := ownJoin(d, func(p e2eePath) string { return p.channel2 })
		for _, dir := range e2eeDirections {
			paths = append(paths, e2eePath{room: room, channel: channel, channel2: channel2, encrypted: encrypted, dir: dir})
		}
	}

	for i := 0; i < b.N; i++ {
		first := make([]e2eeSample, len(paths))
		for j, p := range paths {
			time.Sleep(e2eePace)
			first[j] = sendOnce(b, who, p, fmt.Sprintf("first %d %d", i, j))
		}
		samples := make([][]e2eeSample, len(paths))
		for r := 0; r < e2eeRounds; r++ {
			for k := range paths {
				// Each round starts one path later, so that no path always
				// follows the same other one.
				j := (r + k) % len(paths)
				time.Sleep(e2eePace)
				samples[j] = append(samples[j], sendOnce(b, who, paths[j], fmt.Sprintf("round %d %d %d", i, r, j)))
			}
		}
		reportEncrypted(b, paths, first, samples)
	}
}

// e2eeSample is one message's times, from when the sender was asked to
// send it.
type e2eeSample struct {
	arrived time.Duration // until the receiver had it, decrypted
	// request is how long the SDK's send request took (encrypting, then
	// the homeserver's answer to the PUT); zero for the IRC client, whose
	// line has no answer. It tells the SDK's share of a path from the
	// gateway's.
	request time.Duration
}

// sendOnce sends text on p and times it until the other end has it: the
// IRC client's PRIVMSG line, or the SDK's message decrypted.
func sendOnce(b *testing.B, who e2eeParties, p e2eePath, text string) e2eeSample {
	ctx := context.Background()
	start := time.Now()
	var sent chan error
	var reply e2eepeer.Sent
	var request time.Duration
	switch p.dir {
	case ircToSDK, ircToIRC:
		who.irc.send("PRIVMSG %s :%s", p.channel, text)
	default:
		// The SDK's send request returns when the homeserver has answered,
		// which may be after the receiver has the message; it runs aside
		// so that the time is the receiver's alone.
		sender := who.bob
		if p.dir == sdkToSDK {
			sender = who.carol
		}
		sent = make(chan error, 1)
		go func() {
			err := sender.Call(ctx, "send", map[string]any{"room": p.room.String(), "msgtype": string(event.MsgText), "body": text}, &reply)
			request = time.Since(start)
			sent <- err
		}()
	}
	var elapsed time.Duration
	switch p.dir {
	case sdkToIRC:
		who.irc.waitFor(b, func(m *irc.Message) bool {
			return m.Command == "PRIVMSG" && m.Param(0) == p.channel && m.Trailing() == text
		})
		elapsed = time.Since(start)
	case ircToIRC:
		who.dave.waitFor(b, func(m *irc.Message) bool {
			return m.Command == "PRIVMSG" && m.Param(0) == p.channel2 && m.Trailing() == text
		})
		elapsed = time.Since(start)
	default:
		from := who.alice
		if p.dir == sdkToSDK {
			from = who.carolID
		}
		got := who.bob.WaitMessage(b, ctx, func(m e2eepeer.Message) bool {
			return m.RoomID == p.room && m.Sender == from && m.DecryptionError == "" && m.Body == text
		})
		elapsed = time.Since(start)
		if got.Encrypted != p.encrypted {
			b.Fatalf("the SDK got %+v, want encrypted=%v", got, p.encrypted)
		}
	}
	if sent != nil {
		if err := <-sent; err != nil {
			b.Fatalf("the SDK's send: %v", err)
		}
		if reply.Encrypted != p.encrypted {
			b.Fatalf("the SDK sent with encrypted=%v, want %v", reply.Encrypted, p.encrypted)
		}
	}
	return e2eeSample{arrived: elapsed, request: request}
}

// waitDeviceKeys waits until acct has a device with published keys other
// than the one of its mautrix client: the gateway's.
func waitDeviceKeys(b *testing.B, acct *testenv.Account) {
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := acct.Client.QueryKeys(context.Background(), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{acct.UserID: nil}})
		if err == nil {
			for device := range resp.DeviceKeys[acct.UserID] {
				if device != acct.Client.DeviceID {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the gateway's device of %s never published its keys (%v)", acct.UserID, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func reportEncrypted(b *testing.B, paths []e2eePath, first []e2eeSample, samples [][]e2eeSample) {
	fmt.Printf("\nencrypted against unencrypted room, %d messages per path after the first, one every %s, paths interleaved\n", e2eeRounds, e2eePace)
	fmt.Printf("%-10s %-12s %12s %12s %8s\n", "", "", "unencrypted", "encrypted", "ratio")
	quantiles := []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}}
	for _, dir := range e2eeDirections {
		// [0] unencrypted, [1] encrypted
		var firsts [2]e2eeSample
		var arrived, request [2][]time.Duration
		for j, p := range paths {
			if p.dir != dir {
				continue
			}
			k := 0
			if p.encrypted {
				k = 1
			}
			firsts[k] = first[j]
			for _, s := range samples[j] {
				arrived[k] = append(arrived[k], s.arrived)
				request[k] = append(request[k], s.request)
			}
			slices.Sort(arrived[k])
			slices.Sort(request[k])
		}
		row := func(name string, u, e time.Duration) float64 {
			ratio := float64(e) / float64(u)
			fmt.Printf("%-10s %-12s %12s %12s %7.2fx\n", dir, name, u.Round(10*time.Microsecond), e.Round(10*time.Microsecond), ratio)
			return ratio
		}
		row("first", firsts[0].arrived, firsts[1].arrived)
		for _, q := range quantiles {
			ratio := row(q.name, percentile(arrived[0], q.q), percentile(arrived[1], q.q))
			b.ReportMetric(ratio, dir.metric()+"-"+q.name+"-ratio")
		}
		if dir == sdkToIRC || dir == sdkToSDK {
			row("send req p50", percentile(request[0], 0.5), percentile(request[1], 0.5))
		}
	}
}

// percentile of sorted d, by nearest rank below.
func percentile(d []time.Duration, q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
