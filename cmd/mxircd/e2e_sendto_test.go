package main

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/e2eepeer"
	"github.com/mxircd/mxircd/store/storetest"
)

// encryption.send_to: by default ("all") a line from IRC into an
// encrypted room is readable on every device of its members, verified or
// not, as with Element; with "verified", a device the account has not
// verified gets no key: Element's SDK is told the key is withheld from it
// because it is unverified.
func TestSendToVerifiedOnly(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		for _, policy := range []string{"all", "verified"} {
			t.Run(driver+"/"+policy, func(t *testing.T) {
				hs := testenv.SharedHomeserver(t)
				g := startTestGateway(t, gatewayConfig(t, hs, driver, func(cfg *Config) {
					cfg.Encryption.SendTo = policy
				}))
				alice, bobAcct := hs.Register(t, "alice"), hs.Register(t, "bob")
				c := connect(t, g, "alice", alice)
				waitGatewayDevice(t, alice)
				bob := e2eepeer.Start(t, hs.URL, bobAcct.UserID.String(), bobAcct.Password)
				room := bob.CreateRoom(t, e2eepeer.RoomOptions{Encrypted: true, Invite: []id.UserID{alice.UserID}})
				joinRoom(t, alice, room)
				channel := c.ExpectMatch(t, isCmd("JOIN"), "the encrypted room's JOIN").Param(0)
				awaitBurst(t, c, channel)

				c.Send("PRIVMSG %s :for your eyes only", channel)
				got := bob.WaitMessage(t, ctxFor(t), func(m e2eepeer.Message) bool {
					if m.RoomID != room || m.Sender != alice.UserID {
						return false
					}
					if policy == "all" {
						return m.DecryptionError == ""
					}
					return m.DecryptionError != "" && strings.Contains(m.DecryptionError, "WITHHELD")
				})
				switch {
				case policy == "all" && got.Body != "for your eyes only":
					t.Errorf("bob's unverified device got %+v, want the line decrypted", got)
				case policy == "verified" && !strings.Contains(got.DecryptionError, "UNVERIFIED"):
					t.Errorf("bob's unverified device was told %q, want the key withheld as unverified", got.DecryptionError)
				}
				if policy == "verified" {
					for _, m := range bob.Messages(t, room) {
						if m.Sender == alice.UserID && m.Body == "for your eyes only" {
							t.Errorf("bob's unverified device read the line: %+v", m)
						}
					}
				}
			})
		}
	}
}
