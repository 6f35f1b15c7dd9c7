package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/e2eepeer"
)

// backedUpSessions is how many room keys of room the account's key backup
// holds, as the homeserver says.
func backedUpSessions(t *testing.T, acct *testenv.Account, version string, room id.RoomID) int {
	t.Helper()
	var keys struct {
		Rooms map[id.RoomID]struct {
			Sessions map[string]json.RawMessage `json:"sessions"`
		} `json:"rooms"`
	}
	u := acct.Client.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys"}, map[string]string{"version": version})
	if _, err := acct.Client.MakeRequest(ctxFor(t), "GET", u, nil, &keys); err != nil {
		t.Fatalf("reading the key backup: %v", err)
	}
	return len(keys.Rooms[room].Sessions)
}

// After VERIFY trusted the key backup, a room key that only the gateway
// got (the account's Element was offline) goes to the backup, and a new
// Element login of the account restores it and reads the message.
func TestVerifiedGatewayBacksUpNewKeys(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bobAcct := hs.Register(t, "alice"), hs.Register(t, "bob")
		phone := e2eepeer.Start(t, hs.URL, alice.UserID.String(), alice.Password)
		recovery := phone.BootstrapCrossSigning(t)
		phone.Stop() // Element goes offline; only the gateway reads from now on

		c := connectWithCaps(t, g, "alice", alice, "server-time", "message-tags")
		waitGatewayDevice(t, alice, phone.DeviceID)
		c.Send("PRIVMSG mxircd :VERIFY %s", recovery.RecoveryKey)
		serviceSays(t, c, "New room keys go to the backup")

		bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)
		room := bob.CreateRoom(t, e2eepeer.RoomOptions{Name: "Night Shift", Encrypted: true, Invite: []id.UserID{alice.UserID}})
		joinRoom(t, alice, room)
		// (The room may first show under its ID, until its name arrives.)
		channel := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "#Night-Shift" }, "the room's JOIN").Param(0)
		awaitBurst(t, c, channel)
		if n := backedUpSessions(t, alice, recovery.BackupVersion, room); n != 0 {
			t.Fatalf("the backup holds %d keys of the room before anything was said: the test proves nothing", n)
		}

		const said = "said while only the gateway was online"
		bob.Send(t, room, said)
		c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "PRIVMSG" && m.Param(0) == channel && m.Trailing() == said
		}, "bob's message, decrypted by the gateway")
		deadline := time.Now().Add(30 * time.Second)
		for backedUpSessions(t, alice, recovery.BackupVersion, room) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the gateway never uploaded the room's key to the backup")
			}
			time.Sleep(100 * time.Millisecond)
		}

		laptop := e2eepeer.Start(t, hs.URL, alice.UserID.String(), alice.Password) // a new Element login
		if r := laptop.RestoreBackup(t, recovery.RecoveryKey); r.Imported == 0 {
			t.Fatalf("the new login restored %+v from the backup, want the room's key", r)
		}
		laptop.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
			return m.RoomID == room && m.Body == said && m.DecryptionError == ""
		})
	})
}

// A sender's device that shares keys only with verified devices refuses
// the gateway's (unverified) device the key: the IRC user gets a line
// that says so and why. It is the message's note when the refusal came
// first; when the homeserver delivers the refusal in a later sync than
// the message, the note said "not yet" and the reason follows it once.
func TestWithheldKeySaysWhy(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bobAcct := hs.Register(t, "alice"), hs.Register(t, "bob")
		bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)
		c := connectWithCaps(t, g, "alice", alice, "server-time", "message-tags")
		gatewayDevice := waitGatewayDevice(t, alice)
		room := bob.CreateRoom(t, e2eepeer.RoomOptions{Name: "Verified Only", Encrypted: true, Invite: []id.UserID{alice.UserID}})
		joinRoom(t, alice, room)
		channel := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "#Verified-Only" }, "the room's JOIN").Param(0)
		awaitBurst(t, c, channel)
		bob.WaitDeviceStatus(t, ctxFor(t), alice.UserID, gatewayDevice, func(s e2eepeer.DeviceStatus) bool { return s.Known })
		bob.OnlyVerified(t, true)

		sent := bob.Send(t, room, "not for unverified eyes")
		var seen []*irc.Message
		m := c.ExpectMatch(t, func(m *irc.Message) bool {
			seen = append(seen, m)
			return m.Param(0) == channel && strings.Contains(m.Trailing(), "withheld")
		}, "a line saying the key was withheld, and why")
		if !strings.Contains(m.Trailing(), "only with verified devices") || m.Tags["msgid"] != sent.EventID.String() {
			t.Errorf("the withheld key was told as %s, want the reason and the message's msgid %s", m, sent.EventID)
		}
		notes := 0
		for _, m := range seen {
			if strings.Contains(m.Trailing(), "unverified eyes") {
				t.Errorf("the message was shown without its key: %s", m)
			}
			if m.Tags["msgid"] == sent.EventID.String() {
				notes++
			}
		}
		if notes > 2 {
			t.Errorf("the message got %d lines, want its note and at most one more with the reason", notes)
		}
	})
}
