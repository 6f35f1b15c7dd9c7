package e2eepeer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxircd/mxircd/internal/testenv"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Two SDK peers in an encrypted room: each reads what the other wrote, and
// the homeserver holds only ciphertext. This is the rig's proof that the
// peer really encrypts, so that a later test in which the IRC side reads
// its plaintext means the gateway decrypted it.
func TestPeersTalkEncrypted(t *testing.T) {
	ctx := t.Context()
	hs := testenv.SharedHomeserver(t)
	alice := hs.Register(t, "sdkalice")
	bob := hs.Register(t, "sdkbob")
	pa := Start(t, hs.URL, alice.Localpart, alice.Password)
	pb := Start(t, hs.URL, bob.Localpart, bob.Password)
	if pa.UserID != alice.UserID || pa.DeviceID == "" {
		t.Fatalf("peer logged in as %s device %q, want %s on a device", pa.UserID, pa.DeviceID, alice.UserID)
	}

	room := pa.CreateRoom(t, RoomOptions{Name: "rig", Encrypted: true, Invite: []id.UserID{bob.UserID}})
	if got := pb.Join(t, room.String()); got != room {
		t.Fatalf("joined %s, want %s", got, room)
	}
	if !pb.IsEncrypted(t, room) {
		t.Fatal("the joiner's SDK does not see the room as encrypted")
	}

	hello := "hello from alice " + randomHex()
	sent := pa.Send(t, room, hello)
	if !sent.Encrypted {
		t.Fatal("the SDK sent into an encrypted room without encrypting")
	}
	got := pb.WaitMessage(t, ctx, func(m Message) bool { return m.EventID == sent.EventID && m.DecryptionError == "" })
	if got.Body != hello || !got.Encrypted || got.Sender != alice.UserID || got.RoomID != room || got.MsgType != event.MsgText {
		t.Fatalf("bob's peer got %+v, want the encrypted m.text %q from %s in %s", got, hello, alice.UserID, room)
	}

	answer := "answer from bob " + randomHex()
	back := pb.SendMsgType(t, room, event.MsgNotice, answer)
	gotBack := pa.WaitMessage(t, ctx, func(m Message) bool { return m.EventID == back.EventID && m.DecryptionError == "" })
	if gotBack.Body != answer || !gotBack.Encrypted || gotBack.MsgType != event.MsgNotice {
		t.Fatalf("alice's peer got %+v, want the encrypted m.notice %q", gotBack, answer)
	}
	if msgs := pb.Messages(t, room); !containsMessage(msgs, sent.EventID, hello) {
		t.Fatalf("bob's peer lists %+v for the room, without %s", msgs, sent.EventID)
	}

	// What a member without keys gets from the homeserver: bob's plain
	// mautrix device, which has no crypto.
	var raw json.RawMessage
	url := bob.Client.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "messages"}, map[string]string{"dir": "b", "limit": "100"})
	if _, err := bob.Client.MakeRequest(ctx, "GET", url, nil, &raw); err != nil {
		t.Fatalf("GET /messages: %v", err)
	}
	for _, plain := range []string{hello, answer} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Fatalf("the homeserver holds the plaintext %q:\n%s", plain, raw)
		}
	}
	var page struct {
		Chunk []struct {
			Type    string     `json:"type"`
			EventID id.EventID `json:"event_id"`
		} `json:"chunk"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	types := map[id.EventID]string{}
	for _, e := range page.Chunk {
		types[e.EventID] = e.Type
		if e.Type == event.EventMessage.Type {
			t.Errorf("the homeserver has a plaintext m.room.message %s in the encrypted room", e.EventID)
		}
	}
	for _, evt := range []id.EventID{sent.EventID, back.EventID} {
		if types[evt] != event.EventEncrypted.Type {
			t.Errorf("the homeserver has %s as %q, want %s", evt, types[evt], event.EventEncrypted.Type)
		}
	}
}

func containsMessage(msgs []Message, evt id.EventID, body string) bool {
	for _, m := range msgs {
		if m.EventID == evt && m.Body == body {
			return true
		}
	}
	return false
}

// After BootstrapCrossSigning, the homeserver holds the account's
// cross-signing keys, secret storage and a key backup, and other devices see
// the peer's device as signed by its owner, which is what a VERIFY test
// checks of the gateway's device.
func TestPeerBootstrapsCrossSigning(t *testing.T) {
	ctx := t.Context()
	hs := testenv.SharedHomeserver(t)
	alice := hs.Register(t, "sdkxsign")
	bob := hs.Register(t, "sdkxsignb")
	pa := Start(t, hs.URL, alice.Localpart, alice.Password)
	pb := Start(t, hs.URL, bob.Localpart, bob.Password)
	// Sharing an encrypted room makes bob's SDK track alice's devices.
	room := pa.CreateRoom(t, RoomOptions{Encrypted: true, Invite: []id.UserID{bob.UserID}})
	pb.Join(t, room.String())
	if s := pb.WaitDeviceStatus(t, ctx, alice.UserID, pa.DeviceID, func(s DeviceStatus) bool { return s.Known }); s.SignedByOwner || s.Verified {
		t.Fatalf("before bootstrap, bob's peer sees alice's device as %+v, want unsigned", s)
	}

	r := pa.BootstrapCrossSigning(t)
	if !strings.HasPrefix(r.RecoveryKey, "Es") || r.BackupVersion == "" || !r.CrossSigningReady || !r.SecretStorageReady {
		t.Fatalf("bootstrap gave %+v, want a recovery key, a backup version and both ready", r)
	}
	if s := pa.DeviceStatus(t, alice.UserID, pa.DeviceID); !s.CrossSigningVerified {
		t.Fatalf("alice's peer sees its own device as %+v, want cross-signing verified", s)
	}
	pb.WaitDeviceStatus(t, ctx, alice.UserID, pa.DeviceID, func(s DeviceStatus) bool { return s.SignedByOwner })

	var backup struct {
		Version string `json:"version"`
	}
	if _, err := alice.Client.MakeRequest(ctx, "GET", alice.Client.BuildClientURL("v3", "room_keys", "version"), nil, &backup); err != nil || backup.Version != r.BackupVersion {
		t.Fatalf("the homeserver's key backup: version %q (%v), want %q", backup.Version, err, r.BackupVersion)
	}
	var defaultKey struct {
		Key string `json:"key"`
	}
	if err := alice.Client.GetAccountData(ctx, "m.secret_storage.default_key", &defaultKey); err != nil || defaultKey.Key == "" {
		t.Fatalf("no default secret storage key in alice's account data (%v)", err)
	}

	// Room keys reach the backup: the homeserver holds one for the room.
	pa.Send(t, room, "backed up "+randomHex())
	if b := pa.WaitKeysBackedUp(t, ctx); b.Version != r.BackupVersion {
		t.Fatalf("keys went to backup %+v, want version %s", b, r.BackupVersion)
	}
	var keys struct {
		Rooms map[id.RoomID]struct {
			Sessions map[string]json.RawMessage `json:"sessions"`
		} `json:"rooms"`
	}
	keysURL := alice.Client.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys"}, map[string]string{"version": r.BackupVersion})
	if _, err := alice.Client.MakeRequest(ctx, "GET", keysURL, nil, &keys); err != nil || len(keys.Rooms[room].Sessions) == 0 {
		t.Fatalf("the homeserver's key backup has %+v for the room (%v), want a session", keys.Rooms[room], err)
	}

	// A device added later is not signed until someone verifies it.
	pa2 := Start(t, hs.URL, alice.Localpart, alice.Password)
	if s := pa.WaitDeviceStatus(t, ctx, alice.UserID, pa2.DeviceID, func(s DeviceStatus) bool { return s.Known }); s.SignedByOwner || s.Verified {
		t.Fatalf("alice's peer sees her new device as %+v, want known and not verified", s)
	}
	// TrustDevices verifies it locally, on the peer only.
	if got := pa.TrustDevices(t, alice.UserID); !containsDevice(got, pa2.DeviceID) || containsDevice(got, pa.DeviceID) {
		t.Fatalf("TrustDevices marked %v, want the new device %s and not the peer's own %s", got, pa2.DeviceID, pa.DeviceID)
	}
	if s := pa.DeviceStatus(t, alice.UserID, pa2.DeviceID); !s.LocallyVerified || !s.Verified || s.SignedByOwner {
		t.Fatalf("after TrustDevices, alice's peer sees her new device as %+v, want locally verified only", s)
	}
}

func containsDevice(devices []id.DeviceID, d id.DeviceID) bool {
	for _, x := range devices {
		if x == d {
			return true
		}
	}
	return false
}

// A DM is made as Element makes it: is_direct on the invite and the room in
// the creator's m.direct.
func TestPeerCreatesDirectMessage(t *testing.T) {
	ctx := t.Context()
	hs := testenv.SharedHomeserver(t)
	alice := hs.Register(t, "sdkdm")
	bob := hs.Register(t, "sdkdmb")
	pa := Start(t, hs.URL, alice.Localpart, alice.Password)
	room := pa.CreateRoom(t, RoomOptions{Encrypted: true, Direct: true, Invite: []id.UserID{bob.UserID}})
	if !pa.IsEncrypted(t, room) {
		t.Fatal("the DM is not encrypted")
	}
	var direct map[id.UserID][]id.RoomID
	if err := alice.Client.GetAccountData(ctx, event.AccountDataDirectChats.Type, &direct); err != nil {
		t.Fatal(err)
	}
	if len(direct[bob.UserID]) != 1 || direct[bob.UserID][0] != room {
		t.Fatalf("m.direct is %v, want %s under %s", direct, room, bob.UserID)
	}
	bob.SyncUntil(t, ctx, func(resp *mautrix.RespSync) bool {
		inv, ok := resp.Rooms.Invite[room]
		if !ok {
			return false
		}
		for _, evt := range inv.State.Events {
			if evt.Type == event.StateMember && evt.GetStateKey() == bob.UserID.String() {
				isDirect, _ := evt.Content.Raw["is_direct"].(bool)
				if !isDirect {
					t.Fatalf("bob's invite %s has no is_direct: %v", evt.ID, evt.Content.Raw)
				}
				return true
			}
		}
		return false
	})
}

// Requests the peer cannot do come back as errors in words, and the peer
// goes on serving.
func TestPeerReportsBadRequests(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	acct := hs.Register(t, "sdkerr")
	p := Start(t, hs.URL, acct.Localpart, acct.Password)

	err := p.Call(t.Context(), "fly", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown op") {
		t.Fatalf("unknown op: got %v, want an error naming it unknown", err)
	}
	err = p.Call(t.Context(), "send", map[string]any{"room": "!nowhere:localhost", "body": "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "not joined") {
		t.Fatalf("send to a room not joined: got %v, want a refusal", err)
	}
	var who struct {
		DeviceID id.DeviceID `json:"device_id"`
	}
	if err := p.Call(t.Context(), "whoami", nil, &who); err != nil || who.DeviceID != p.DeviceID {
		t.Fatalf("after errors, whoami: %v, device %q, want %q", err, who.DeviceID, p.DeviceID)
	}
}

// Without a usable Node.js, the failure says what to install.
func TestMissingOrOldNodeSaysWhatToInstall(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	if _, err := findNode(); err == nil || !strings.Contains(err.Error(), "Node.js 20 or newer") {
		t.Fatalf("no node: got %v, want an error naming Node.js 20 or newer", err)
	}

	old := t.TempDir()
	script := "#!/bin/sh\necho v18.20.4\n"
	if err := os.WriteFile(filepath.Join(old, "node"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", old)
	if _, err := findNode(); err == nil || !strings.Contains(err.Error(), "v18.20.4") || !strings.Contains(err.Error(), "Node.js 20 or newer") {
		t.Fatalf("node 18: got %v, want an error naming the version and what to install", err)
	}
}

func randomHex() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Two devices of one account: one asks to verify, the other takes the
// request and accepts it, and a cancel from the asker reaches the other
// with the user's code. (The SAS exchange itself is tested against the
// gateway, which starts it.)
func TestPeerVerificationRequest(t *testing.T) {
	ctx := t.Context()
	hs := testenv.SharedHomeserver(t)
	alice := hs.Register(t, "sdkverify")
	laptop := Start(t, hs.URL, alice.Localpart, alice.Password)
	laptop.BootstrapCrossSigning(t) // the SDK asks only on an account with cross-signing
	phone := Start(t, hs.URL, alice.Localpart, alice.Password)
	laptop.WaitDeviceStatus(t, ctx, alice.UserID, phone.DeviceID, func(s DeviceStatus) bool { return s.Known })
	// A request from a device the SDK has not fetched the keys of is dropped.
	phone.WaitDeviceStatus(t, ctx, alice.UserID, laptop.DeviceID, func(s DeviceStatus) bool { return s.Known })

	if v := laptop.RequestVerification(t); v.Phase != "Requested" || v.TransactionID == "" {
		t.Fatalf("after asking, the laptop's verification is %+v, want Requested with a transaction", v)
	}
	accepted := phone.AcceptVerification(t)
	if accepted.OtherDevice != laptop.DeviceID {
		t.Errorf("the phone accepted %+v, want the laptop's request", accepted)
	}
	laptop.WaitVerification(t, ctx, func(v Verification) bool { return v.Phase == "Ready" })
	laptop.CancelVerification(t)
	got := phone.WaitVerification(t, ctx, func(v Verification) bool { return v.Phase == "Cancelled" })
	if got.CancellationCode != "m.user" {
		t.Errorf("the phone saw the cancel as %+v, want code m.user", got)
	}
}
