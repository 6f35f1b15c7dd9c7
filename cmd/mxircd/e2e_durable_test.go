package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// Issue 15: a first message to someone the account has no direct room
// with waited only in memory while the room was created. The gateway is
// killed with SIGKILL as soon as it has accepted such a line; after the
// restart the account has exactly one room with the peer, who is invited
// to it, and the line is in it exactly once.
func TestFirstDMAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs, dir, _, addr, configPath := binaryConfig(t, driver)
			unencryptedDMs(t, configPath)
			alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")

			first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
			waitListening(t, addr)
			c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
			c1.Timeout = 60 * time.Second
			c1.Send("PRIVMSG %s :first words", bob.UserID)
			// The owner answers NAMES after it has taken the line; a line
			// it has taken is saved before the client is shown anything
			// more.
			c1.Send("NAMES")
			c1.Expect(t, irc.RPL_ENDOFNAMES)
			first.kill(t)
			c1.ExpectClosed(t)

			startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
			waitListening(t, addr)
			dm := waitOneRoomWith(t, alice, bob, "first words")
			if n := count(roomBodies(t, alice, dm), "first words"); n != 1 {
				t.Errorf("the direct room has the first line %d times, want once", n)
			}
			// What is typed after the restart goes to the same room.
			c2 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
			c2.Timeout = 60 * time.Second
			c2.Send("PRIVMSG %s :second words", bob.UserID)
			bodies := waitInRoom(t, alice, dm, "second words")
			if got := only(bodies, "first words", "second words"); !slices.Equal(got, []string{"first words", "second words"}) {
				t.Errorf("the direct room has %q", got)
			}
			if rooms := joinedRooms(t, alice); len(rooms) != 1 {
				t.Errorf("alice is in %d rooms after the second line, want the one direct room", len(rooms))
			}
		})
	}
}

// The same with the DM encrypted (encryption.encrypt_new_dms): the line
// waits in the outbox sealed, with no plaintext at rest, and after the
// restart the one room with the peer holds one encrypted message from the
// account.
func TestFirstEncryptedDMAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs, dir, sc, addr, configPath := binaryConfig(t, driver)
			alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")

			first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
			waitListening(t, addr)
			c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
			c1.Timeout = 60 * time.Second
			waitGatewayDevice(t, alice)
			c1.Send("PRIVMSG %s :secret first words", bob.UserID)
			c1.Send("NAMES")
			c1.Expect(t, irc.RPL_ENDOFNAMES)
			first.kill(t)
			c1.ExpectClosed(t)
			noPlaintextRows(t, sc, alice.UserID, "secret first words")

			startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
			waitListening(t, addr)
			dm := waitOneRoomWhere(t, alice, bob, "one encrypted message from the account", func(r id.RoomID) bool {
				return len(eventsFrom(t, alice, r, alice.UserID, event.EventEncrypted)) > 0
			})
			if n := len(eventsFrom(t, alice, dm, alice.UserID, event.EventEncrypted)); n != 1 {
				t.Errorf("the direct room has %d encrypted messages from the account, want one", n)
			}
			if n := len(eventsFrom(t, alice, dm, alice.UserID, event.EventMessage)); n != 0 {
				t.Errorf("the direct room has %d messages from the account in plaintext", n)
			}
			if rooms := joinedRooms(t, alice); len(rooms) != 1 {
				t.Errorf("alice is in %d rooms, want the one direct room", len(rooms))
			}
		})
	}
}

// eventsFrom lists the events of type evType that sender sent into room.
func eventsFrom(t *testing.T, acct *testenv.Account, room id.RoomID, sender id.UserID, evType event.Type) []*event.Event {
	t.Helper()
	resp, err := acct.Client.Messages(ctxFor(t), room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatalf("/messages of %s: %v", room, err)
	}
	var out []*event.Event
	for _, ev := range resp.Chunk {
		if ev.Sender == sender && ev.Type.Type == evType.Type {
			out = append(out, ev)
		}
	}
	return out
}

// Issue 15: a crash can cut off the creation of a direct room after the
// homeserver has made it and before the gateway learnt of it, even before
// the homeserver sent the invite. The outbox then holds the line under the
// peer, and the account a room with the gateway's marker and no one else:
// the next start finds that room, invites the peer and sends the line
// there, and makes no second room.
func TestDMCreatedBeforeCrashIsFound(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs, dir, sc, addr, configPath := binaryConfig(t, driver)
			unencryptedDMs(t, configPath)
			alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")

			half := seedCutOffDM(t, bin, dir, addr, configPath, sc, alice, bob, "cut off")

			startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
			waitListening(t, addr)
			dm := waitOneRoomWith(t, alice, bob, "cut off")
			if dm != half {
				t.Errorf("the line went to %s, not to the room created before the crash %s", dm, half)
			}
			if n := count(roomBodies(t, alice, dm), "cut off"); n != 1 {
				t.Errorf("the direct room has the line %d times, want once", n)
			}
			// The room is the query with bob from now on: a line typed
			// to bob goes into it, and no second room is made.
			c2 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
			c2.Send("PRIVMSG %s :after it", bob.UserID)
			waitInRoom(t, alice, dm, "after it")
			if rooms := joinedRooms(t, alice); len(rooms) != 1 {
				t.Errorf("alice is in %d rooms, want the one made before the crash", len(rooms))
			}
		})
	}
}

// A direct room the crash cut off before its encryption was stored (or
// that the homeserver had not finished) is made encrypted before the
// waiting line goes into it, when new DMs are to be encrypted: the line
// never goes out in plaintext.
func TestEncryptedDMCutOffBeforeEncryption(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs, dir, sc, addr, configPath := binaryConfig(t, driver)
			alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")

			half := seedCutOffDM(t, bin, dir, addr, configPath, sc, alice, bob, "secret cut off")

			startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
			waitListening(t, addr)
			dm := waitOneRoomWhere(t, alice, bob, "one encrypted message from the account", func(r id.RoomID) bool {
				return len(eventsFrom(t, alice, r, alice.UserID, event.EventEncrypted)) > 0
			})
			if dm != half {
				t.Errorf("the line went to %s, not to the room created before the crash %s", dm, half)
			}
			if n := len(eventsFrom(t, alice, dm, alice.UserID, event.EventMessage)); n != 0 {
				t.Errorf("the direct room has %d messages from the account in plaintext", n)
			}
		})
	}
}

// Issue 15: lines typed before a session's first sync after a restart
// waited only in memory. The homeserver is down, so the restarted
// gateway's first sync cannot finish; a burst is typed, the gateway is
// killed with SIGKILL once it has saved the burst, and started again with
// the homeserver up: each line is in the room once, in order, before a
// line typed after that start.
func TestLinesBeforeFirstSyncAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.StartHomeserver(t)
			dir, sc, addr, configPath := binaryConfigOn(t, hs, driver)
			alice, bob, room, channel := twoInARoom(t, hs, "early")

			first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
			waitListening(t, addr)
			c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
			c1.Timeout = 60 * time.Second
			awaitBurst(t, c1, channel)
			waitNames(t, c1, channel, bob.Localpart)
			appLogin := setAppPassword(t, c1, alice)
			hs.Stop()
			first.kill(t)
			c1.ExpectClosed(t)

			second := startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
			waitListening(t, addr)
			// With its app password, a client logs in to a running
			// session without the homeserver (a Matrix password is
			// checked with the homeserver again after a restart).
			waitLog(t, filepath.Join(dir, "run2.log"), "resumed always-on sessions")
			c2 := dialClient(t, addr, "alice", appLogin, "laptop", tagCaps...)
			c2.Timeout = 60 * time.Second
			const lines = 10
			var typed []string
			for i := range lines {
				typed = append(typed, fmt.Sprintf("early %02d", i+1))
				c2.Send("PRIVMSG %s :%s", channel, typed[i])
			}
			waitOutboxRows(t, sc, alice.UserID, lines)
			second.kill(t)
			c2.ExpectClosed(t)
			// Where a line goes is not known before the sync, nor whether
			// that room is encrypted: no line is at rest in plaintext.
			noPlaintextRows(t, sc, alice.UserID, "early ")
			hs.Restart(t)

			startMxircd(t, bin, configPath, filepath.Join(dir, "run3.log"))
			waitListening(t, addr)
			c3 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
			c3.Timeout = 60 * time.Second
			awaitBurst(t, c3, channel)
			c3.Send("PRIVMSG %s :typed after the restart", channel)
			bodies := waitInRoom(t, bob, room, "typed after the restart")
			got := only(bodies, append(slices.Clone(typed), "typed after the restart")...)
			if want := append(typed, "typed after the restart"); !slices.Equal(got, want) {
				t.Errorf("the room has %q, want %q; the gateway's sends:\n%s", got, want, gatewaySends(hs, room))
			}
		})
	}
}

// Lines typed before the first sync, with the homeserver back in the same
// run: each goes once, in order, and no row is left in the outbox to send
// again at the next start; a line to a channel the account is not in is
// answered and its row removed; a first line to a Matrix ID starts the DM.
func TestLinesBeforeFirstSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.StartHomeserver(t)
			dir, sc, addr, configPath := binaryConfigOn(t, hs, driver)
			unencryptedDMs(t, configPath)
			alice, bob, room, channel := twoInARoom(t, hs, "earlylive")

			first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
			waitListening(t, addr)
			c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
			c1.Timeout = 60 * time.Second
			awaitBurst(t, c1, channel)
			waitNames(t, c1, channel, bob.Localpart)
			appLogin := setAppPassword(t, c1, alice)
			hs.Stop()
			first.kill(t)
			c1.ExpectClosed(t)

			startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
			waitListening(t, addr)
			waitLog(t, filepath.Join(dir, "run2.log"), "resumed always-on sessions")
			c2 := dialClient(t, addr, "alice", appLogin, "laptop", append([]string{"standard-replies"}, tagCaps...)...)
			c2.Timeout = 60 * time.Second
			typed := []string{"early 1", "early 2", "early 3"}
			c2.Send("PRIVMSG %s :%s", channel, typed[0])
			c2.Send("PRIVMSG #nowhere-%s:%s :lost", alice.Localpart, hs.ServerName)
			c2.Send("PRIVMSG %s :%s", bob.UserID, "early dm")
			c2.Send("PRIVMSG %s :%s", channel, typed[1])
			c2.Send("PRIVMSG %s :%s", channel, typed[2])
			waitOutboxRows(t, sc, alice.UserID, 5)
			hs.Restart(t)

			// The answer may come inside the burst: with lazy-loaded
			// members the NAMES that end it wait for the member list.
			notIn := func(m *irc.Message) bool {
				return m.Command == irc.ERR_NOSUCHCHANNEL || m.Command == irc.ERR_NOTONCHANNEL || m.Command == irc.ERR_CANNOTSENDTOCHAN
			}
			if !hasLine(awaitBurst(t, c2, channel), notIn) {
				c2.ExpectMatch(t, notIn, "the answer to the line to a channel the account is not in")
			}
			bodies := waitInRoom(t, bob, room, typed[2])
			if got := only(bodies, typed...); !slices.Equal(got, typed) {
				t.Errorf("the room has %q, want %q", got, typed)
			}
			dm := waitOneRoomWith(t, alice, bob, "early dm", room)
			if n := count(roomBodies(t, alice, dm), "early dm"); n != 1 {
				t.Errorf("the direct room has the early line %d times, want once", n)
			}
			st, err := store.Open(context.Background(), sc)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			deadline := time.Now().Add(30 * time.Second)
			for {
				rows, err := st.Outbox(ctxFor(t), alice.UserID)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d rows stay in the outbox after every line was sent or answered: %+v", len(rows), rows)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// Issue 15: a PRIVMSG to someone with no direct room creates a room, and
// was not held to matrix.room_create_burst. It now takes a token as JOIN
// does; beyond the burst the line is refused, with a FAIL that says why,
// and no room is made.
func TestDMRoomCreationLimit(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			cfg := gatewayConfig(t, hs, driver, func(cfg *Config) {
				cfg.Matrix.RoomCreateBurst = 2
				cfg.Matrix.RoomCreateInterval = Duration{time.Hour}
				cfg.Encryption.EncryptNewDMs = false // so the test reads the lines
			})
			g := startTestGateway(t, cfg)
			alice := hs.Register(t, "dmlimit")
			var peers []*testenv.Account
			for range 3 {
				peers = append(peers, hs.Register(t, "peer"))
			}
			c := connectWithCaps(t, g, "dmlimit", alice, "standard-replies")
			// One room by JOIN, one by a DM: the burst is spent.
			newChannel := fmt.Sprintf("#%s-new:%s", alice.Localpart, hs.ServerName)
			c.Send("JOIN %s", newChannel)
			c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" }, "the JOIN of a new channel")
			c.Send("PRIVMSG %s :hello", peers[0].UserID)
			waitOneRoomWith(t, alice, peers[0], "hello")
			c.Send("PRIVMSG %s :hello too", peers[1].UserID)
			m := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "FAIL" }, "FAIL for the third new room")
			if m.Param(0) != "PRIVMSG" || m.Param(1) != "LIMIT_EXCEEDED" || !strings.Contains(m.Trailing(), "too many rooms") {
				t.Fatalf("refusal %q", m.String())
			}
			// The refused line was not accepted: nothing more is created
			// for it, and a line to the existing DM still goes.
			c.Send("PRIVMSG %s :again", peers[0].UserID)
			waitInRoom(t, alice, roomWith(t, alice, peers[0]), "again")
			if rooms := joinedRooms(t, alice); len(rooms) != 2 {
				t.Errorf("alice is in %d rooms, want the channel and the one direct room", len(rooms))
			}
		})
	}
}

// unencryptedDMs turns off encrypt_new_dms in a binary's configuration,
// so that the test can read what is sent into new direct rooms.
func unencryptedDMs(t *testing.T, configPath string) {
	t.Helper()
	config, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	config = bytes.Replace(config, []byte("[encryption]\n"), []byte("[encryption]\nencrypt_new_dms = false\n"), 1)
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitOneRoomWith waits until acct is in exactly one room with peer
// invited or joined, besides those of except, holding body, and returns
// it; it fails on a second.
func waitOneRoomWith(t *testing.T, acct, peer *testenv.Account, body string, except ...id.RoomID) id.RoomID {
	t.Helper()
	return waitOneRoomWhere(t, acct, peer, fmt.Sprintf("holding %q", body), func(r id.RoomID) bool {
		return slices.Contains(roomBodies(t, acct, r), body)
	}, except...)
}

// waitOneRoomWhere is waitOneRoomWith for a room that has what holds
// says (described by what).
func waitOneRoomWhere(t *testing.T, acct, peer *testenv.Account, what string, holds func(id.RoomID) bool, except ...id.RoomID) id.RoomID {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var with []id.RoomID
		for _, r := range joinedRooms(t, acct) {
			if slices.Contains(except, r) {
				continue
			}
			var m event.MemberEventContent
			if err := acct.Client.StateEvent(ctxFor(t), r, event.StateMember, peer.UserID.String(), &m); err == nil &&
				(m.Membership == event.MembershipInvite || m.Membership == event.MembershipJoin) {
				with = append(with, r)
			}
		}
		if len(with) > 1 {
			t.Fatalf("%s has %d rooms with %s, want one: %v", acct.UserID, len(with), peer.UserID, with)
		}
		if len(with) == 1 && holds(with[0]) {
			return with[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never had a room with %s %s (rooms with them: %v)", acct.UserID, peer.UserID, what, with)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// roomWith is the one room acct shares with peer.
func roomWith(t *testing.T, acct, peer *testenv.Account) id.RoomID {
	t.Helper()
	for _, r := range joinedRooms(t, acct) {
		var m event.MemberEventContent
		if err := acct.Client.StateEvent(ctxFor(t), r, event.StateMember, peer.UserID.String(), &m); err == nil {
			return r
		}
	}
	t.Fatalf("%s has no room with %s", acct.UserID, peer.UserID)
	return ""
}

func joinedRooms(t *testing.T, acct *testenv.Account) []id.RoomID {
	t.Helper()
	resp, err := acct.Client.JoinedRooms(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	return resp.JoinedRooms
}

// only keeps the bodies that are among want, in order.
func only(bodies []string, want ...string) []string {
	var out []string
	for _, b := range bodies {
		if slices.Contains(want, b) {
			out = append(out, b)
		}
	}
	return out
}

// setAppPassword gives acct an app password through the service nick and
// returns acct logging in with it: an app password unlocks the stored
// session without asking the homeserver.
func setAppPassword(t *testing.T, c *testenv.IRCClient, acct *testenv.Account) *testenv.Account {
	t.Helper()
	c.Send("PRIVMSG mxircd :PASSWORD SET early-app-password")
	serviceSays(t, c, "Your app password is set")
	return &testenv.Account{UserID: acct.UserID, Localpart: acct.Localpart, Password: "early-app-password", Client: acct.Client}
}

// noPlaintextRows fails if an outbox row of user holds text.
func noPlaintextRows(t *testing.T, sc store.Config, user id.UserID, text string) {
	t.Helper()
	st, err := store.Open(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.Outbox(ctxFor(t), user)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if bytes.Contains(r.Content, []byte(text)) {
			t.Errorf("an outbox row holds %q in plaintext: %s", text, r.Content)
		}
	}
}

// waitLog waits until a gateway's log holds text.
func waitLog(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if log, _ := os.ReadFile(path); bytes.Contains(log, []byte(text)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q", path, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutboxRows waits until the account's outbox holds n rows.
func waitOutboxRows(t *testing.T, sc store.Config, user id.UserID, n int) {
	t.Helper()
	st, err := store.Open(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := st.Outbox(ctxFor(t), user)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox holds %d rows, never %d", len(rows), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The room-creation limit outlives a restart of the gateway: a burst
// spent before it is not handed out again after it.
func TestRoomCreationLimitAcrossRestart(t *testing.T) {
	forEachStoreWith(t, func(cfg *Config) {
		cfg.Matrix.RoomCreateBurst = 1
		cfg.Matrix.RoomCreateInterval = Duration{time.Hour}
		cfg.Encryption.EncryptNewDMs = false
	}, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bob := hs.Register(t, "budget"), hs.Register(t, "peer")
		c := dialClient(t, b.addr(), "budget", alice, "laptop", "standard-replies")
		c.Send("PRIVMSG %s :hello", bob.UserID)
		waitOneRoomWith(t, alice, bob, "hello")
		b.restart(t)
		c = dialClient(t, b.addr(), "budget", alice, "laptop", "standard-replies")
		c.Send("JOIN #%s-new:%s", alice.Localpart, hs.ServerName)
		m := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "FAIL" || (m.Command == "JOIN" && m.Prefix != nil && m.Prefix.Name == "budget")
		}, "the answer to JOIN of a new channel")
		if m.Command != "FAIL" || m.Param(1) != "LIMIT_EXCEEDED" {
			t.Fatalf("JOIN after the restart answered %q; the burst spent before it was handed out again", m.String())
		}
		if rooms := joinedRooms(t, alice); len(rooms) != 1 {
			t.Errorf("alice is in %d rooms, want the one DM", len(rooms))
		}
	})
}

// seedCutOffDM runs the gateway once to store alice's account, kills it,
// and leaves what a run killed while the homeserver created a DM room
// with bob would have: the room, marked, without its invite or its
// encryption, and the line waiting for it in the outbox under bob.
func seedCutOffDM(t *testing.T, bin, dir, addr, configPath string, sc store.Config, alice, bob *testenv.Account, line string) id.RoomID {
	t.Helper()
	first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
	waitListening(t, addr)
	c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
	waitGatewayDevice(t, alice)
	c1.Send("NAMES")
	c1.Expect(t, irc.RPL_ENDOFNAMES)
	first.kill(t)

	half, err := alice.Client.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{
		Preset:          "trusted_private_chat",
		IsDirect:        true,
		CreationContent: map[string]any{"org.mxircd.direct_with": bob.UserID.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": line})
	if err := st.PutOutbox(ctxFor(t), &store.OutboxEntry{
		UserID: alice.UserID, TxnID: "mxircd.1.1~laptop", Peer: bob.UserID,
		Type: "m.room.message", Content: content,
	}); err != nil {
		t.Fatal(err)
	}
	return half.RoomID
}
