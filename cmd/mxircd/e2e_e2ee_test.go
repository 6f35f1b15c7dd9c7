package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/e2eepeer"
)

// End-to-end encryption, against Element's own SDK as the other side:
// what its user writes in an encrypted room or DM reaches IRC as
// plaintext, live and in replay, across a restart of the gateway; what
// the IRC user answers reaches the SDK encrypted and decrypts there; the
// gateway's store keeps ciphertext only.

// waitGatewayDevice waits until the gateway's device of acct has
// published its encryption keys, and returns its ID. others are the
// account's devices that are not the gateway's (e.g. an e2eepeer's), which
// publish keys too.
func waitGatewayDevice(t *testing.T, acct *testenv.Account, others ...id.DeviceID) id.DeviceID {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := acct.Client.QueryKeys(ctxFor(t), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{acct.UserID: nil}})
		if err == nil {
			for device := range resp.DeviceKeys[acct.UserID] {
				if device != acct.Client.DeviceID && !slices.Contains(others, device) {
					return device
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway's device of %s never published its keys (%v)", acct.UserID, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func notUndecryptable(t *testing.T, lines []*irc.Message) {
	t.Helper()
	for _, m := range lines {
		if strings.Contains(m.Trailing(), "cannot decrypt") {
			t.Errorf("an encrypted message was shown undecrypted: %s", m)
		}
	}
}

func TestEncryptedRoomsBothWays(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice, bobAcct := hs.Register(t, "alice"), hs.Register(t, "bob")
		laptop := dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		waitGatewayDevice(t, alice)
		bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)

		room := bob.CreateRoom(t, e2eepeer.RoomOptions{Name: "Quiet Corner", Encrypted: true, Invite: []id.UserID{alice.UserID}})
		joinRoom(t, alice, room)
		join := laptop.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" }, "the encrypted room's JOIN")
		channel := join.Param(0)
		awaitBurst(t, laptop, channel)

		if sent := bob.Send(t, room, "the eagle lands at noon"); !sent.Encrypted {
			t.Fatal("the SDK sent in the clear")
		}
		var seen []*irc.Message
		laptop.ExpectMatch(t, func(m *irc.Message) bool {
			seen = append(seen, m)
			return m.Command == "PRIVMSG" && m.Param(0) == channel && m.Prefix.Name == bobAcct.Localpart && m.Trailing() == "the eagle lands at noon"
		}, "bob's encrypted message, decrypted")
		notUndecryptable(t, seen)

		// alice answers from IRC: the SDK decrypts it.
		laptop.Send("PRIVMSG %s :the answer is forty-two", channel)
		got := bob.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
			return m.RoomID == room && m.Sender == alice.UserID && m.DecryptionError == "" && m.Body != ""
		})
		if !got.Encrypted || got.Body != "the answer is forty-two" {
			t.Errorf("the SDK got %+v, want alice's line, encrypted", got)
		}

		// An encrypted DM that Element's SDK opens.
		dm := bob.CreateRoom(t, e2eepeer.RoomOptions{Encrypted: true, Direct: true, Invite: []id.UserID{alice.UserID}})
		bobAcct.WaitForEvent(t, ctxFor(t), dm, func(ev *event.Event) bool {
			return ev.Type == event.StateMember && ev.GetStateKey() == alice.UserID.String() && ev.Content.AsMember().Membership == event.MembershipJoin
		})
		bob.Send(t, dm, "just between us")
		seen = nil
		laptop.ExpectMatch(t, func(m *irc.Message) bool {
			seen = append(seen, m)
			return m.Command == "PRIVMSG" && m.Param(0) == "alice" && m.Prefix.Name == bobAcct.Localpart && m.Trailing() == "just between us"
		}, "bob's encrypted DM, decrypted")
		notUndecryptable(t, seen)
		laptop.Send("PRIVMSG %s :a private answer", bobAcct.Localpart)
		got = bob.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
			return m.RoomID == dm && m.Sender == alice.UserID && m.DecryptionError == "" && m.Body != ""
		})
		if !got.Encrypted || got.Body != "a private answer" {
			t.Errorf("the SDK got %+v in the DM, want alice's answer, encrypted", got)
		}

		// A DM opened from IRC is encrypted, as Element's are: carol, who
		// joins after the first line was sent, reads it.
		carolAcct := hs.Register(t, "carol")
		carol := e2eepeer.Start(t, hs.URL, carolAcct.UserID.String(), carolAcct.Password)
		laptop.Send("PRIVMSG %s :hello carol, privately", carolAcct.UserID)
		var invited id.RoomID
		carolAcct.SyncUntil(t, ctxFor(t), func(resp *mautrix.RespSync) bool {
			for roomID := range resp.Rooms.Invite {
				invited = roomID
			}
			return invited != ""
		})
		carol.Join(t, invited.String())
		got = carol.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
			return m.RoomID == invited && m.Sender == alice.UserID && m.DecryptionError == "" && m.Body != ""
		})
		if !got.Encrypted || got.Body != "hello carol, privately" {
			t.Errorf("carol got %+v, want alice's first line, encrypted", got)
		}

		// The gateway goes away and comes back: its keys are where it left
		// them, and what came meanwhile is replayed in plaintext.
		quit(t, laptop)
		b.stop(t)
		bob.Send(t, room, "while you were out")
		b.start(t)
		laptop = dialClient(t, b.addr(), "alice", alice, "laptop", tagCaps...)
		seen = nil
		laptop.ExpectMatch(t, func(m *irc.Message) bool {
			seen = append(seen, m)
			return m.Command == "PRIVMSG" && m.Param(0) == channel && m.Trailing() == "while you were out"
		}, "the message sent while the gateway was down, replayed decrypted")
		bob.Send(t, room, "welcome back")
		laptop.ExpectMatch(t, func(m *irc.Message) bool {
			seen = append(seen, m)
			return m.Command == "PRIVMSG" && m.Param(0) == channel && m.Trailing() == "welcome back"
		}, "a live message after the restart, decrypted")
		laptop.Send("PRIVMSG %s :back again", channel)
		bob.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
			return m.RoomID == room && m.Sender == alice.UserID && m.Encrypted && m.Body == "back again"
		})
		notUndecryptable(t, seen)
		for _, m := range seen {
			if m.Command == "JOIN" && m.Param(0) != channel {
				t.Errorf("after the restart the DM is a channel: %s", m)
			}
		}

		// The store holds ciphertext only.
		evs, _, err := b.g.store.StreamRange(ctxFor(t), alice.UserID, 0, 1<<40, 0)
		if err != nil {
			t.Fatal(err)
		}
		encrypted := 0
		for _, e := range evs {
			for _, plain := range []string{"eagle", "between us", "while you were out", "welcome back", "forty-two", "private answer", "back again", "hello carol"} {
				if strings.Contains(string(e.JSON), plain) {
					t.Errorf("plaintext of an encrypted event is in the store: %s", e.JSON)
				}
			}
			if strings.Contains(string(e.JSON), `"m.room.encrypted"`) {
				encrypted++
			}
		}
		if encrypted < 7 {
			t.Errorf("the store holds %d encrypted events, want the 7 sent", encrypted)
		}
	})
}

// A message whose key the gateway's device did not get (the sender shares
// keys with verified devices only, and says so) is shown as waiting; the
// gateway asks the account's other devices, and when one of them, which
// trusts it, forwards the key, the message is shown with its original time
// and ID.
func TestLateKeyIsDeliveredThen(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bobAcct := hs.Register(t, "alice"), hs.Register(t, "bob")
		phone := e2eepeer.Start(t, hs.URL, alice.UserID.String(), alice.Password) // alice's Element
		bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)
		room := bob.CreateRoom(t, e2eepeer.RoomOptions{Name: "Verified Only", Encrypted: true, Invite: []id.UserID{alice.UserID}})
		phone.Join(t, room.String())
		bob.WaitDeviceStatus(t, ctxFor(t), alice.UserID, phone.DeviceID, func(s e2eepeer.DeviceStatus) bool { return s.Known })
		bob.TrustDevices(t, alice.UserID) // alice's phone; the gateway's device does not exist yet

		c := connectWithCaps(t, g, "alice", alice, "server-time", "message-tags")
		gatewayDevice := waitGatewayDevice(t, alice, phone.DeviceID)
		join := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" }, "the room's JOIN")
		channel := join.Param(0)
		awaitBurst(t, c, channel)
		phone.WaitDeviceStatus(t, ctxFor(t), alice.UserID, gatewayDevice, func(s e2eepeer.DeviceStatus) bool { return s.Known })
		phone.TrustDevices(t, alice.UserID) // alice verified the gateway from her phone
		bob.WaitDeviceStatus(t, ctxFor(t), alice.UserID, gatewayDevice, func(s e2eepeer.DeviceStatus) bool { return s.Known })
		bob.OnlyVerified(t, true)

		sent := bob.Send(t, room, "for verified eyes only")
		c.ExpectMatch(t, func(m *irc.Message) bool {
			// The refusal may come in a later sync than the message.
			return m.Param(0) == channel && (strings.Contains(m.Trailing(), "no key for yet") || strings.Contains(m.Trailing(), "withheld from this gateway"))
		}, "a note that the message waits for its key")
		m := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "PRIVMSG" && m.Param(0) == channel && m.Trailing() == "for verified eyes only"
		}, "the message, once the phone forwarded its key")
		if m.Tags["msgid"] != sent.EventID.String() || m.Tags["time"] == "" {
			t.Errorf("the late message came as %s, want msgid %s and its time", m, sent.EventID)
		}
	})
}

// VERIFY to the service nick, with the recovery key Element gave: the
// gateway's device is cross-signed by the account (Element's SDK sees it
// as verified), and the key backup is restored, so a message from before
// the device existed reads in CHATHISTORY. A wrong key gets a clear line,
// and nothing typed to the service reaches Matrix.
func TestVerifyWithRecoveryKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice, bobAcct := hs.Register(t, "alice"), hs.Register(t, "bob")
		phone := e2eepeer.Start(t, hs.URL, alice.UserID.String(), alice.Password) // alice's Element
		recovery := phone.BootstrapCrossSigning(t)
		bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)
		room := bob.CreateRoom(t, e2eepeer.RoomOptions{Name: "Old Times", Encrypted: true, Invite: []id.UserID{alice.UserID}})
		phone.Join(t, room.String())
		bob.Send(t, room, "said before the gateway came")
		phone.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
			return m.Body == "said before the gateway came" && m.DecryptionError == ""
		})
		phone.WaitKeysBackedUp(t, ctxFor(t))

		c := connectWithCaps(t, g, "alice", alice, "server-time", "message-tags", "batch", "draft/chathistory")
		gatewayDevice := waitGatewayDevice(t, alice, phone.DeviceID)
		channel := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" }, "the room's JOIN").Param(0)
		awaitBurst(t, c, channel)
		readable := func() bool {
			for _, m := range chathistory(t, c, channel, "LATEST %s * 20", channel) {
				if m.Command == "PRIVMSG" && m.Trailing() == "said before the gateway came" {
					return true
				}
			}
			return false
		}
		if readable() {
			t.Fatal("the old message was readable before VERIFY: the test proves nothing")
		}

		service := func(line, want string) {
			t.Helper()
			c.Send("PRIVMSG mxircd :%s", line)
			c.ExpectMatch(t, func(m *irc.Message) bool {
				return m.Command == "NOTICE" && m.Prefix.Name == "mxircd" && strings.Contains(m.Trailing(), want)
			}, "the service's answer containing "+want)
		}
		service("HELP", "VERIFY <recovery key or passphrase>")
		service("VERIFY EsTc not a key at all", "not your account's recovery key")
		service("VERIFY "+recovery.RecoveryKey, "now verified")
		phone.WaitDeviceStatus(t, ctxFor(t), alice.UserID, gatewayDevice, func(s e2eepeer.DeviceStatus) bool { return s.CrossSigningVerified })
		if !readable() {
			t.Error("after VERIFY restored the key backup, CHATHISTORY still cannot read the old message")
		}
		for _, raw := range roomRaw(t, bobAcct, room) {
			if strings.Contains(raw, "VERIFY") || strings.Contains(raw, "not a key") {
				t.Errorf("a line typed to the service reached Matrix: %s", raw)
			}
		}
	})
}

// A member who joins an encrypted room later reads what the IRC user
// writes from then on: the gateway replaces its room key when the
// membership changes and shares the new one with the new member's
// devices. (Without the membership tracking carol's SDK never decrypts.)
func TestLaterMemberReadsFromJoinOn(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	alice, bobAcct, carolAcct := hs.Register(t, "alice"), hs.Register(t, "bob"), hs.Register(t, "carol")
	c := connect(t, g, "alice", alice)
	waitGatewayDevice(t, alice)
	bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)
	carol := e2eepeer.Start(t, hs.URL, carolAcct.UserID.String(), carolAcct.Password)
	room := bob.CreateRoom(t, e2eepeer.RoomOptions{Name: "Late Comers", Encrypted: true, Invite: []id.UserID{alice.UserID}})
	joinRoom(t, alice, room)
	channel := c.ExpectMatch(t, func(m *irc.Message) bool { return m.Command == "JOIN" }, "the room's JOIN").Param(0)
	awaitBurst(t, c, channel)

	c.Send("PRIVMSG %s :before carol came", channel)
	bob.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool { return m.Body == "before carol came" && m.Encrypted })
	if _, err := bobAcct.Client.InviteUser(ctxFor(t), room, &mautrix.ReqInviteUser{UserID: carolAcct.UserID}); err != nil {
		t.Fatal(err)
	}
	carol.Join(t, room.String())
	c.ExpectMatch(t, func(m *irc.Message) bool {
		return m.Command == "JOIN" && m.Param(0) == channel && m.Prefix.Name == carolAcct.Localpart
	}, "carol's JOIN")
	c.Send("PRIVMSG %s :after carol came", channel)
	got := carol.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
		return m.Sender == alice.UserID && m.Body == "after carol came"
	})
	if !got.Encrypted {
		t.Errorf("carol got %+v, want it encrypted", got)
	}
}
