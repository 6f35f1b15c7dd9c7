package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// noRooms answers an OlmMachine's questions about rooms for the benchmark:
// one encrypted room.
type noRooms struct{}

func (noRooms) IsEncrypted(context.Context, id.RoomID) (bool, error) { return true, nil }
func (noRooms) GetEncryptionEvent(context.Context, id.RoomID) (*event.EncryptionEventContent, error) {
	return &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}, nil
}
func (noRooms) GetHistoryVisibility(context.Context, id.RoomID) (*event.HistoryVisibilityEventContent, error) {
	return &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}, nil
}
func (noRooms) FindSharedRooms(context.Context, id.UserID) ([]id.RoomID, error) { return nil, nil }

// benchMachine is an OlmMachine on the store, for an account whose
// homeserver is never asked anything.
func benchMachine(b testing.TB, stores *store.CryptoStores, user id.UserID, device id.DeviceID) *crypto.OlmMachine {
	cli, err := mautrix.NewClient("http://127.0.0.1:1", user, "")
	if err != nil {
		b.Fatal(err)
	}
	cli.DeviceID = device
	mach := crypto.NewOlmMachine(cli, nil, stores.Open(user, device), noRooms{})
	mach.DisableDecryptKeyFetching = true
	if err := mach.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return mach
}

// The crypto store's work for one message in an encrypted room, the part
// of the encrypted latency benchmark's extra time that is the gateway's
// own: alice's machine encrypting it (the outbound Megolm session read,
// ratcheted, and written back before the message may leave), and bob's
// decrypting it (the inbound session read, the replay check written, the
// sender's device looked up). Bob decrypts it twice, side by side in
// the same loop: with mautrix's ratchet tracking, which writes the inbound
// session back after every message (the default), and without it (what
// the gateway runs with). Reported as ns per message of each step.
func BenchmarkCryptoMessagePath(b *testing.B) {
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			ctx := context.Background()
			s := storetest.Open(b, driver)
			stores, err := s.OpenCryptoStores(ctx, bytes.Repeat([]byte{7}, store.PickleKeySize))
			if err != nil {
				b.Fatal(err)
			}
			const room = id.RoomID("!r:x")
			alice := benchMachine(b, stores, "@alice:x", "ALICE")
			tracking := benchMachine(b, stores, "@bob:x", "BOB")
			untracked := benchMachine(b, stores, "@carol:x", "CAROL")
			untracked.DisableRatchetTracking = true
			// Each reader knows alice's device, as after a key query (the
			// device table is shared by all accounts).
			me := alice.OwnIdentity()
			if err := tracking.CryptoStore.PutDevice(ctx, me.UserID, me); err != nil {
				b.Fatal(err)
			}
			ogs, err := crypto.NewOutboundGroupSession(room, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			ogs.MaxMessages = 1 << 30
			ogs.Shared = true
			if err := alice.CryptoStore.AddOutboundGroupSession(ctx, ogs); err != nil {
				b.Fatal(err)
			}
			for _, m := range []*crypto.OlmMachine{tracking, untracked} {
				igs, err := crypto.NewInboundGroupSession(me.IdentityKey, me.SigningKey, room, ogs.Internal.Key(), 0, 0, nil, false)
				if err != nil {
					b.Fatal(err)
				}
				if err := m.CryptoStore.PutGroupSession(ctx, igs); err != nil {
					b.Fatal(err)
				}
			}
			content := json.RawMessage(`{"msgtype":"m.text","body":"a line typed on IRC, of a usual length for one"}`)
			var encrypt, decTracked, decUntracked time.Duration
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				enc, err := alice.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				encrypt += t1.Sub(t0)
				ev := &event.Event{Type: event.EventEncrypted, RoomID: room, Sender: me.UserID, ID: id.EventID(fmt.Sprintf("$%d", i)), Timestamp: int64(i + 1), Content: event.Content{Parsed: enc}}
				// Alternate which reader goes first, so neither always
				// finds the connection warm.
				order := []*crypto.OlmMachine{tracking, untracked}
				if i%2 == 1 {
					order[0], order[1] = order[1], order[0]
				}
				for _, m := range order {
					t := time.Now()
					if _, err := m.DecryptMegolmEvent(ctx, ev); err != nil {
						b.Fatal(err)
					}
					if m == tracking {
						decTracked += time.Since(t)
					} else {
						decUntracked += time.Since(t)
					}
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(encrypt.Nanoseconds())/n, "encrypt-ns/msg")
			b.ReportMetric(float64(decTracked.Nanoseconds())/n, "decrypt-tracked-ns/msg")
			b.ReportMetric(float64(decUntracked.Nanoseconds())/n, "decrypt-untracked-ns/msg")
		})
	}
}

// With ratchet tracking off, as the gateway runs, the replay check still
// refuses a message index already decrypted for another event, on both
// databases.
func TestReplayRefusedWithoutRatchetTracking(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		stores, err := s.OpenCryptoStores(ctx, bytes.Repeat([]byte{7}, store.PickleKeySize))
		if err != nil {
			t.Fatal(err)
		}
		const room = id.RoomID("!r:x")
		alice := benchMachine(t, stores, "@alice:x", "ALICE")
		bob := benchMachine(t, stores, "@bob:x", "BOB")
		bob.DisableRatchetTracking = true
		me := alice.OwnIdentity()
		ogs, err := crypto.NewOutboundGroupSession(room, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ogs.Shared = true
		if err := alice.CryptoStore.AddOutboundGroupSession(ctx, ogs); err != nil {
			t.Fatal(err)
		}
		igs, err := crypto.NewInboundGroupSession(me.IdentityKey, me.SigningKey, room, ogs.Internal.Key(), 0, 0, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := bob.CryptoStore.PutGroupSession(ctx, igs); err != nil {
			t.Fatal(err)
		}
		enc, err := alice.EncryptMegolmEvent(ctx, room, event.EventMessage, json.RawMessage(`{"msgtype":"m.text","body":"once"}`))
		if err != nil {
			t.Fatal(err)
		}
		evt := func(eventID id.EventID) *event.Event {
			return &event.Event{Type: event.EventEncrypted, RoomID: room, Sender: me.UserID, ID: eventID, Timestamp: 1, Content: event.Content{Parsed: enc}}
		}
		if _, err := bob.DecryptMegolmEvent(ctx, evt("$first")); err != nil {
			t.Fatalf("first decryption: %v", err)
		}
		// The same event again (a sync handled twice) is fine.
		if _, err := bob.DecryptMegolmEvent(ctx, evt("$first")); err != nil {
			t.Fatalf("the same event again: %v", err)
		}
		if _, err := bob.DecryptMegolmEvent(ctx, evt("$replayed")); !errors.Is(err, crypto.ErrDuplicateMessageIndex) {
			t.Fatalf("the same ciphertext under another event ID: err = %v, want a duplicate message index", err)
		}
	})
}
