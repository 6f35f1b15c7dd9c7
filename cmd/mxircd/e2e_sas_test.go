package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/e2eepeer"
)

// emojiLine is one emoji of a verification as the service shows it.
var emojiLine = regexp.MustCompile(`^([1-7])\. (\S+)  (.+)$`)

// ircEmoji reads the seven emoji the service shows, in order.
func ircEmoji(t *testing.T, c *testenv.IRCClient) []e2eepeer.SASEmoji {
	t.Helper()
	serviceSays(t, c, "Compare these")
	var got []e2eepeer.SASEmoji
	for len(got) < 7 {
		m := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && m.Prefix.Name == "mxircd" && emojiLine.MatchString(m.Trailing())
		}, "an emoji line")
		parts := emojiLine.FindStringSubmatch(m.Trailing())
		got = append(got, e2eepeer.SASEmoji{Emoji: parts[2], Name: parts[3]})
	}
	serviceSays(t, c, "type CONFIRM")
	return got
}

// sameEmoji compares what IRC shows with what the SDK shows. The SDK
// writes some emoji with a variation selector that a single rune cannot
// carry, and names them in its own case.
func sameEmoji(t *testing.T, irc, sdk []e2eepeer.SASEmoji) {
	t.Helper()
	bare := func(s string) string { return strings.ReplaceAll(s, "\ufe0f", "") }
	if len(irc) != 7 || len(sdk) != 7 {
		t.Fatalf("IRC shows %v, the SDK %v: want seven each", irc, sdk)
	}
	for i := range irc {
		if bare(irc[i].Emoji) != bare(sdk[i].Emoji) || !strings.EqualFold(irc[i].Name, sdk[i].Name) {
			t.Fatalf("emoji %d: IRC shows %v, the SDK %v", i+1, irc, sdk)
		}
	}
}

// Emoji verification with the account's other device (Element's SDK),
// from either side: the emoji shown on IRC are the SDK's, a cancel midway
// from either side gets one clear line and verifies nothing, and CONFIRM
// on both makes the SDK see the gateway's device as cross-signed.
func TestSASVerification(t *testing.T) {
	forEachStore(t, func(t *testing.T, hs *testenv.Homeserver, g *gateway) {
		alice := hs.Register(t, "alice")
		phone := e2eepeer.Start(t, hs.URL, alice.UserID.String(), alice.Password) // alice's Element
		recovery := phone.BootstrapCrossSigning(t)
		c := connect(t, g, "alice", alice)
		gatewayDevice := waitGatewayDevice(t, alice, phone.DeviceID)
		if s := phone.WaitDeviceStatus(t, ctxFor(t), alice.UserID, gatewayDevice, func(s e2eepeer.DeviceStatus) bool { return s.Known }); s.Verified || s.SignedByOwner {
			t.Fatalf("before any verification the SDK sees the gateway's device as %+v: the test proves nothing", s)
		}

		c.Send("PRIVMSG mxircd :CONFIRM")
		serviceSays(t, c, "no emoji to confirm")
		c.Send("PRIVMSG mxircd :CANCEL")
		serviceSays(t, c, "No verification is under way")

		// The gateway asks; the IRC user cancels once the emoji show.
		c.Send("PRIVMSG mxircd :VERIFY EMOJI")
		serviceSays(t, c, "Asked your other devices")
		phone.AcceptVerification(t)
		sameEmoji(t, ircEmoji(t, c), phone.VerificationEmoji(t))
		c.Send("PRIVMSG mxircd :CANCEL")
		serviceSays(t, c, "Cancelled; this gateway's device is not verified")
		if v := phone.WaitVerification(t, ctxFor(t), func(v e2eepeer.Verification) bool { return v.Phase == "Cancelled" }); v.CancellationCode != "m.mismatched_sas" {
			t.Errorf("the SDK saw the cancel as %+v, want a mismatch", v)
		}
		if s := phone.DeviceStatus(t, alice.UserID, gatewayDevice); s.Verified {
			t.Fatalf("after a cancelled verification the SDK sees the gateway's device as %+v", s)
		}

		// Element asks; its user says the emoji differ.
		phone.RequestVerification(t)
		serviceSays(t, c, "asks to verify this gateway's device")
		c.Send("PRIVMSG mxircd :VERIFY EMOJI")
		serviceSays(t, c, "Accepted")
		sameEmoji(t, ircEmoji(t, c), phone.VerificationEmoji(t))
		phone.CancelVerification(t)
		serviceSays(t, c, "did not match")
		c.Send("PRIVMSG mxircd :CONFIRM")
		serviceSays(t, c, "no emoji to confirm")

		// Element asks again; both confirm.
		phone.RequestVerification(t)
		serviceSays(t, c, "asks to verify this gateway's device")
		c.Send("PRIVMSG mxircd :VERIFY EMOJI")
		sameEmoji(t, ircEmoji(t, c), phone.VerificationEmoji(t))
		c.Send("PRIVMSG mxircd :CONFIRM")
		phone.ConfirmVerification(t)
		serviceSays(t, c, "Verified: your device")
		phone.WaitVerification(t, ctxFor(t), func(v e2eepeer.Verification) bool { return v.Phase == "Done" })
		phone.WaitDeviceStatus(t, ctxFor(t), alice.UserID, gatewayDevice, func(s e2eepeer.DeviceStatus) bool { return s.CrossSigningVerified })
		// The verified gateway asks the phone for the key backup's key, as a
		// new Element login does, and restores and trusts the backup.
		serviceSays(t, c, "also shared your key backup (version "+recovery.BackupVersion+")")
	})
}

// A verification request that comes while no IRC client is attached (the
// always-on session receives it) is shown to the next client that
// attaches, while the request still waits for an answer, and can be
// answered from there. It is kept in memory only: a restart forgets a
// verification under way.
//
// The request is sent while the gateway is down, so that the resumed
// session's first sync brings it: once that sync is applied (the session
// is live), the request has been handled, with no client attached yet.
func TestVerificationRequestWhileDetached(t *testing.T) {
	forEachStoreWith(t, nil, func(t *testing.T, hs *testenv.Homeserver, b *bouncer) {
		alice := hs.Register(t, "alice")
		phone := e2eepeer.Start(t, hs.URL, alice.UserID.String(), alice.Password)
		phone.BootstrapCrossSigning(t)
		c := dialClient(t, b.addr(), "alice", alice, "laptop")
		gatewayDevice := waitGatewayDevice(t, alice, phone.DeviceID)
		phone.WaitDeviceStatus(t, ctxFor(t), alice.UserID, gatewayDevice, func(s e2eepeer.DeviceStatus) bool { return s.Known })
		quit(t, c)
		restartedLive := func() {
			t.Helper()
			b.start(t)
			deadline := time.Now().Add(60 * time.Second)
			for {
				if _, _, live := b.g.sessions.SessionStates(); live > 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("the always-on session did not come back after the restart")
				}
				time.Sleep(50 * time.Millisecond)
			}
		}

		b.stop(t)
		phone.RequestVerification(t)
		restartedLive()
		c = dialClient(t, b.addr(), "alice", alice, "laptop")
		serviceSays(t, c, "While you were away")
		serviceSays(t, c, "asks to verify this gateway's device")
		c.Send("PRIVMSG mxircd :VERIFY EMOJI")
		serviceSays(t, c, "Accepted")
		sameEmoji(t, ircEmoji(t, c), phone.VerificationEmoji(t))

		// Kept in memory: after a restart nothing is said to wait.
		quit(t, c)
		b.stop(t)
		restartedLive()
		c = dialClient(t, b.addr(), "alice", alice, "laptop")
		c.Send("PRIVMSG mxircd :CANCEL")
		m := c.ExpectMatch(t, func(m *irc.Message) bool {
			return m.Command == "NOTICE" && m.Prefix != nil && m.Prefix.Name == "mxircd" &&
				(strings.Contains(m.Trailing(), "While you were away") || strings.Contains(m.Trailing(), "No verification is under way"))
		}, "the service's answer to CANCEL")
		if !strings.Contains(m.Trailing(), "No verification is under way") {
			t.Fatalf("a verification from before the restart was shown: %q", m.Trailing())
		}
	})
}
