package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv/e2eepeer"
	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// The gateway binary killed with SIGKILL while Element's SDK streams
// encrypted messages into a room: after the restart every message
// decrypts (live or replayed), none is shown as missing its key, and what
// the IRC user types then still decrypts in the SDK: no room key or Olm
// session was lost, and the device was not wedged.
func TestEncryptedAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildMxircd(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { encryptedSigkill(t, bin, driver) })
	}
}

func encryptedSigkill(t *testing.T, bin, driver string) {
	hs, dir, sc, addr, configPath := binaryConfig(t, driver)
	alice, bobAcct := hs.Register(t, "alice"), hs.Register(t, "bob")

	first := startMxircd(t, bin, configPath, filepath.Join(dir, "run1.log"))
	waitListening(t, addr)
	c1 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
	c1.Timeout = 60 * time.Second
	waitGatewayDevice(t, alice)
	bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)
	room := bob.CreateRoom(t, e2eepeer.RoomOptions{Name: "Through The Crash", Encrypted: true, Invite: []id.UserID{alice.UserID}})
	joinRoom(t, alice, room)
	channel := c1.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" }, "the room's JOIN").Param(0)
	awaitBurst(t, c1, channel)

	// bob streams until told to stop.
	var mu sync.Mutex
	var sent []string
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(100 * time.Millisecond):
			}
			body := fmt.Sprintf("secret %d", i)
			ctx, cancel := context.WithTimeout(context.Background(), e2eepeer.Timeout)
			err := bob.Call(ctx, "send", map[string]any{"room": room.String(), "msgtype": "m.text", "body": body}, nil)
			cancel()
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			sent = append(sent, body)
			mu.Unlock()
		}
	}()
	shown := map[string]int{}
	keep := func(m *irc.Message) {
		if m.Command == "PRIVMSG" && m.Param(0) == channel && strings.HasPrefix(m.Trailing(), "secret ") {
			shown[m.Trailing()]++
		}
		if strings.Contains(m.Trailing(), "no key for") {
			// Dendrite hands a to-device message to sync
			// asynchronously, so under load a room key can come one
			// sync after its message: the late-key note, then the
			// message. A lost key would leave a message never shown,
			// which the count below catches.
			t.Logf("a message came before its key: %s", m)
		}
	}
	c1.ExpectMatch(t, func(m *irc.Message) bool { keep(m); return len(shown) >= 10 }, "10 decrypted messages")
	first.kill(t)
	for _, m := range c1.ExpectClosed(t) {
		keep(m)
	}

	second := startMxircd(t, bin, configPath, filepath.Join(dir, "run2.log"))
	waitListening(t, addr)
	time.Sleep(time.Second) // bob goes on streaming while the gateway resumes
	c2 := dialClient(t, addr, "alice", alice, "laptop", tagCaps...)
	c2.Timeout = 60 * time.Second
	for _, m := range awaitBurst(t, c2, channel) {
		keep(m)
	}
	time.Sleep(time.Second)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	last := sent[len(sent)-1]
	all := append([]string(nil), sent...)
	mu.Unlock()
	c2.ExpectMatch(t, func(m *irc.Message) bool { keep(m); return shown[last] > 0 }, "the last streamed message, "+last)
	for _, body := range all {
		if shown[body] != 1 {
			t.Errorf("%q was shown %d times, want once", body, shown[body])
		}
	}

	c2.Send("PRIVMSG %s :still private after the crash", channel)
	got := bob.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
		return m.RoomID == room && m.Sender == alice.UserID && m.Body != "" && m.DecryptionError == ""
	})
	if !got.Encrypted || got.Body != "still private after the crash" {
		t.Errorf("the SDK got %+v after the restart, want alice's line, encrypted", got)
	}

	// A burst typed into the encrypted room and a kill as soon as the
	// gateway has taken it: what the outbox holds then is sealed, and the
	// next run sends each line once, in order, encrypted.
	var typed []string
	for i := range 10 {
		typed = append(typed, fmt.Sprintf("private burst %02d", i+1))
		c2.Send("PRIVMSG %s :%s", channel, typed[i])
	}
	c2.Send("TOPIC %s", channel)
	c2.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == irc.RPL_TOPIC || m.Command == irc.RPL_NOTOPIC
	}, "the answer to TOPIC")
	second.kill(t)
	c2.ExpectClosed(t)
	st, err := store.Open(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := st.Outbox(ctxFor(t), alice.UserID)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d lines of the burst were in the outbox at the kill", len(rows))
	for _, e := range rows {
		if strings.Contains(string(e.Content), "private burst") {
			t.Errorf("the outbox holds a line to the encrypted room as plaintext: %s %s", e.Type, e.Content)
		}
	}
	startMxircd(t, bin, configPath, filepath.Join(dir, "run3.log"))
	waitListening(t, addr)
	bob.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool { return m.Sender == alice.UserID && m.Body == typed[len(typed)-1] })
	var bodies []string
	for _, m := range bob.Messages(t, room) {
		if m.Sender == alice.UserID && strings.HasPrefix(m.Body, "private burst") {
			bodies = append(bodies, m.Body)
			if !m.Encrypted {
				t.Errorf("%q reached the room unencrypted", m.Body)
			}
		}
	}
	if !slices.Equal(bodies, typed) {
		t.Errorf("the SDK has the burst as %q, want each line once, in order", bodies)
	}
}
