package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// SyncTimeout bounds SyncUntil and WaitForEvent.
const SyncTimeout = 20 * time.Second

// Account is a Matrix account registered for one test.
type Account struct {
	UserID    id.UserID
	Localpart string
	Password  string
	// Client is logged in as the account on a device of its own, so tests can
	// act on the Matrix side without disturbing the device mxircd uses.
	Client *mautrix.Client

	syncMu sync.Mutex // one /sync at a time, so that no batch is skipped
	since  string
}

// Register creates an account whose localpart is the lowercased prefix
// followed by a random suffix, so tests sharing a homeserver never collide.
func (hs *Homeserver) Register(t testing.TB, localpartPrefix string) *Account {
	t.Helper()
	acct, err := hs.TryRegister(localpartPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// TryRegister is Register for goroutines other than the test's: it returns
// the error instead of failing the test.
func (hs *Homeserver) TryRegister(localpartPrefix string) (*Account, error) {
	localpart := strings.ToLower(localpartPrefix) + "-" + randomHex(5)
	// Well inside the 8–72 bytes Dendrite accepts and logs in with.
	password := randomPassword()

	client, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		return nil, fmt.Errorf("mautrix client for %s: %w", hs.URL, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := &mautrix.ReqRegister[any]{
		Username:                 localpart,
		Password:                 password,
		InitialDeviceDisplayName: "testenv",
		Auth:                     mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy},
	}
	resp, uia, err := client.Register(ctx, req)
	if err != nil && uia != nil && uia.Session != "" {
		// The server wants the dummy stage inside a UIA session.
		req.Auth = mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: uia.Session}
		resp, _, err = client.Register(ctx, req)
	}
	if err == nil && (resp == nil || resp.AccessToken == "") {
		err = errors.New("no access token in the response")
	}
	if err != nil {
		return nil, fmt.Errorf("registering %q on %s: %w", localpart, hs.URL, err)
	}
	client.SetCredentials(resp.UserID, resp.AccessToken)
	client.DeviceID = resp.DeviceID
	return &Account{
		UserID:    resp.UserID,
		Localpart: localpart,
		Password:  password,
		Client:    client,
	}, nil
}

// SyncUntil runs /sync, continuing from where the previous call for this
// account left off, until pred accepts a response, and returns that response.
// It fails the test after SyncTimeout or when ctx ends. Events in responses
// pred rejected are gone for later calls.
func (a *Account) SyncUntil(t testing.TB, ctx context.Context, pred func(*mautrix.RespSync) bool) *mautrix.RespSync {
	t.Helper()
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, SyncTimeout)
	defer cancel()
	batches := 0
	for {
		// A short long-poll keeps the loop responsive to ctx without spinning.
		resp, err := a.Client.SyncRequest(ctx, 1000, a.since, "", false, "")
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s: no matching /sync response in %d batches before %v", a.UserID, batches, context.Cause(ctx))
			}
			t.Fatalf("%s: /sync: %v", a.UserID, err)
		}
		batches++
		a.since = resp.NextBatch
		if pred(resp) {
			return resp
		}
	}
}

// WaitForEvent syncs until an event accepted by pred arrives in the timeline
// or state of a joined room (any room if roomID is empty). Events handed to
// pred have RoomID set and their content parsed, as mautrix's syncer would.
func (a *Account) WaitForEvent(t testing.TB, ctx context.Context, roomID id.RoomID, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	var found *event.Event
	a.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
		for rid, room := range resp.Rooms.Join {
			if roomID != "" && rid != roomID {
				continue
			}
			// Dendrite puts some state of new rooms in the timeline, so both
			// sections matter.
			for _, evts := range [][]*event.Event{room.State.Events, room.Timeline.Events} {
				for _, evt := range evts {
					prepareEvent(rid, evt)
					if pred(evt) {
						found = evt
						return true
					}
				}
			}
		}
		return false
	})
	return found
}

func prepareEvent(roomID id.RoomID, evt *event.Event) {
	evt.RoomID = roomID
	if evt.StateKey != nil {
		evt.Type.Class = event.StateEventType
	} else {
		evt.Type.Class = event.MessageEventType
	}
	// Unknown types keep only their raw content, which is fine for tests.
	_ = evt.Content.ParseRaw(evt.Type)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomPassword() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
