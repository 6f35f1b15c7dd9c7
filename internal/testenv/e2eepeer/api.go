package e2eepeer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// statusPoll is how often WaitDeviceStatus asks again.
const statusPoll = 200 * time.Millisecond

// RoomOptions describe a room for CreateRoom.
type RoomOptions struct {
	Name string
	// Encrypted creates the room with m.room.encryption (Megolm) in its
	// initial state, as Element does for private rooms and DMs.
	Encrypted bool
	Invite    []id.UserID
	// Direct makes a DM as Element does: is_direct on the invites, the
	// trusted_private_chat preset, and the room in the creator's m.direct
	// account data under each invitee.
	Direct bool
}

// CreateRoom creates a room and returns once the SDK holds it as joined
// and, if encrypted, knows it is, so that Send right after it encrypts.
func (p *Peer) CreateRoom(t testing.TB, opts RoomOptions) id.RoomID {
	t.Helper()
	invite := make([]string, len(opts.Invite))
	for i, u := range opts.Invite {
		invite[i] = u.String()
	}
	var reply struct {
		RoomID id.RoomID `json:"room_id"`
	}
	p.call(t, "create_room", map[string]any{
		"name":      opts.Name,
		"encrypted": opts.Encrypted,
		"invite":    invite,
		"is_direct": opts.Direct,
	}, &reply)
	return reply.RoomID
}

// Join joins a room by ID or alias and returns its ID once the SDK holds it
// as joined (and knows whether it is encrypted).
func (p *Peer) Join(t testing.TB, roomIDOrAlias string) id.RoomID {
	t.Helper()
	var reply struct {
		RoomID id.RoomID `json:"room_id"`
	}
	p.call(t, "join", map[string]any{"room": roomIDOrAlias}, &reply)
	return reply.RoomID
}

// Leave leaves a room.
func (p *Peer) Leave(t testing.TB, roomID id.RoomID) {
	t.Helper()
	p.call(t, "leave", map[string]any{"room": roomID.String()}, nil)
}

// Sent is what Send reports about a message it sent.
type Sent struct {
	EventID id.EventID `json:"event_id"`
	// Encrypted says whether the SDK had encryption on in the room when it
	// sent, i.e. whether the message went out as m.room.encrypted.
	Encrypted bool `json:"encrypted"`
}

// Send sends a text message (m.text) into a joined room; in an encrypted
// room the SDK encrypts it, sharing the room key with the members' devices
// first as Element would.
func (p *Peer) Send(t testing.TB, roomID id.RoomID, body string) Sent {
	t.Helper()
	return p.SendMsgType(t, roomID, event.MsgText, body)
}

// SendMsgType is Send with another msgtype: m.text, m.notice or m.emote.
func (p *Peer) SendMsgType(t testing.TB, roomID id.RoomID, msgtype event.MessageType, body string) Sent {
	t.Helper()
	var sent Sent
	p.call(t, "send", map[string]any{"room": roomID.String(), "msgtype": string(msgtype), "body": body}, &sent)
	return sent
}

// IsEncrypted asks the SDK whether it has encryption on in a room.
func (p *Peer) IsEncrypted(t testing.TB, roomID id.RoomID) bool {
	t.Helper()
	var reply struct {
		Encrypted bool `json:"encrypted"`
	}
	p.call(t, "encrypted", map[string]any{"room": roomID.String()}, &reply)
	return reply.Encrypted
}

// Messages returns the messages the SDK holds for a room, in the order it
// first saw them, each in its latest state (decrypted if it could be).
func (p *Peer) Messages(t testing.TB, roomID id.RoomID) []Message {
	t.Helper()
	var reply struct {
		Messages []Message `json:"messages"`
	}
	p.call(t, "messages", map[string]any{"room": roomID.String()}, &reply)
	return reply.Messages
}

// WaitMessage returns the first message reported since the peer started
// that pred accepts, waiting for one if none has come yet. A message that
// is decrypted late is offered to pred twice: first with DecryptionError
// set, then with its body. The test fails after Timeout or when ctx ends,
// with what the peer did report.
func (p *Peer) WaitMessage(t testing.TB, ctx context.Context, pred func(Message) bool) Message {
	t.Helper()
	m, err := p.waitMessage(ctx, pred)
	if err != nil {
		t.Fatalf("e2eepeer %s: %v", p.name, err)
	}
	return m
}

func (p *Peer) waitMessage(ctx context.Context, pred func(Message) bool) (Message, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	seen := 0
	for {
		p.mu.Lock()
		msgs, changed := p.messages[seen:], p.changed
		p.mu.Unlock()
		for _, m := range msgs {
			if pred(m) {
				return m, nil
			}
		}
		seen += len(msgs)
		select {
		case <-changed:
		case <-p.exited:
			return Message{}, fmt.Errorf("no matching message: %w", p.exitedError())
		case <-ctx.Done():
			return Message{}, fmt.Errorf("no matching message before %v; it saw:\n%s", context.Cause(ctx), p.describeMessages())
		}
	}
}

func (p *Peer) describeMessages() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.messages) == 0 {
		return "  (no messages)"
	}
	var b strings.Builder
	for _, m := range p.messages {
		fmt.Fprintf(&b, "  %s %s from %s: %s %q encrypted=%v", m.RoomID, m.EventID, m.Sender, m.MsgType, m.Body, m.Encrypted)
		if m.DecryptionError != "" {
			fmt.Fprintf(&b, " decryption error %s", m.DecryptionError)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TrustDevices fetches the current device list of a user and marks each
// device (other than the peer's own) verified on the peer, returning their
// IDs. The SDK's default sends to unverified devices anyway; this is for
// tests that want the peer's trust in the gateway's device not to depend on
// cross-signing.
func (p *Peer) TrustDevices(t testing.TB, userID id.UserID) []id.DeviceID {
	t.Helper()
	var reply struct {
		Devices []id.DeviceID `json:"devices"`
	}
	p.call(t, "trust", map[string]any{"user": userID.String()}, &reply)
	return reply.Devices
}

// OnlyVerified makes the peer share room keys with verified devices only,
// as Element's "never send encrypted messages to unverified sessions".
func (p *Peer) OnlyVerified(t testing.TB, on bool) {
	t.Helper()
	p.call(t, "only_verified", map[string]any{"on": on}, nil)
}

// DeviceStatus is how the peer trusts a device, after refreshing its owner's
// device list and cross-signing keys from the homeserver.
type DeviceStatus struct {
	// Known is false when the peer does not see the device at all.
	Known bool `json:"known"`
	// Verified is CrossSigningVerified or LocallyVerified.
	Verified bool `json:"verified"`
	// CrossSigningVerified: signed by its owner's self-signing key, and the
	// owner's identity is verified by the peer's user (trivially so for
	// the peer's own user, once cross-signing is bootstrapped).
	CrossSigningVerified bool `json:"cross_signing_verified"`
	LocallyVerified      bool `json:"locally_verified"`
	// SignedByOwner: signed by its owner's self-signing key, whether or not
	// the peer trusts that owner.
	SignedByOwner bool `json:"signed_by_owner"`
}

// DeviceStatus reports how the peer sees a device now. The SDK keeps track
// of the devices of its own user and of the members of the encrypted rooms
// it is in; any other user's devices are unknown to it.
func (p *Peer) DeviceStatus(t testing.TB, userID id.UserID, deviceID id.DeviceID) DeviceStatus {
	t.Helper()
	s, err := p.deviceStatus(context.Background(), userID, deviceID)
	if err != nil {
		t.Fatalf("e2eepeer %s: %v", p.name, err)
	}
	return s
}

func (p *Peer) deviceStatus(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (DeviceStatus, error) {
	var s DeviceStatus
	err := p.Call(ctx, "device_status", map[string]any{"user": userID.String(), "device": deviceID.String()}, &s)
	return s, err
}

// WaitDeviceStatus asks for a device's status until pred accepts it, since
// the SDK learns of new devices and signatures only when a sync tells it
// that the owner's keys changed. It fails the test after Timeout or when ctx
// ends, with the last status seen.
func (p *Peer) WaitDeviceStatus(t testing.TB, ctx context.Context, userID id.UserID, deviceID id.DeviceID, pred func(DeviceStatus) bool) DeviceStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	for {
		s, err := p.deviceStatus(ctx, userID, deviceID)
		if err == nil && pred(s) {
			return s
		}
		if err == nil {
			err = fmt.Errorf("last seen as %+v", s)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("e2eepeer %s: device %s of %s never had the status wanted: %v", p.name, deviceID, userID, err)
		case <-p.exited:
			t.Fatalf("e2eepeer %s: %v", p.name, p.exitedError())
		case <-time.After(statusPoll):
		}
	}
}

// Recovery is what BootstrapCrossSigning set up.
type Recovery struct {
	// RecoveryKey is the secret storage key in the form Element shows
	// ("EsT… …"), the one a user gives to VERIFY.
	RecoveryKey string `json:"recovery_key"`
	// BackupVersion is the new key backup's version; the SDK uploads room
	// keys to it within about 10 s of receiving or making them.
	BackupVersion      string `json:"backup_version"`
	CrossSigningReady  bool   `json:"cross_signing_ready"`
	SecretStorageReady bool   `json:"secret_storage_ready"`
}

// BootstrapCrossSigning does what Element's "set up secure backup" does for
// the peer's account: new cross-signing keys (uploaded with the password),
// which sign the peer's device; secret storage under a new recovery key,
// holding the cross-signing private keys; and a new key backup whose key is
// in secret storage too. It can take several seconds.
func (p *Peer) BootstrapCrossSigning(t testing.TB) Recovery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*Timeout)
	defer cancel()
	var r Recovery
	if err := p.Call(ctx, "bootstrap_cross_signing", nil, &r); err != nil {
		t.Fatalf("e2eepeer %s: %v", p.name, err)
	}
	return r
}

// KeyBackup is the state of the peer's key backup.
type KeyBackup struct {
	// Version is the backup the SDK uploads to, empty if none is active.
	Version string `json:"version"`
	// Total is the number of Megolm room keys the peer holds, BackedUp
	// how many of them are in the backup.
	Total    int `json:"total"`
	BackedUp int `json:"backed_up"`
}

// KeyBackup reports the state of the peer's key backup now.
func (p *Peer) KeyBackup(t testing.TB) KeyBackup {
	t.Helper()
	var b KeyBackup
	p.call(t, "key_backup", nil, &b)
	return b
}

// WaitKeysBackedUp waits until a backup is active and holds every room key
// the peer has (at least one), e.g. before a test restores the backup on
// another device. The peer uploads new keys at once rather than after
// Element's random delay of up to 10 s.
func (p *Peer) WaitKeysBackedUp(t testing.TB, ctx context.Context) KeyBackup {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	for {
		var b KeyBackup
		err := p.Call(ctx, "key_backup", nil, &b)
		if err == nil && b.Version != "" && b.Total > 0 && b.BackedUp == b.Total {
			return b
		}
		if err == nil {
			err = fmt.Errorf("last seen %+v", b)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("e2eepeer %s: the key backup never caught up: %v", p.name, err)
		case <-p.exited:
			t.Fatalf("e2eepeer %s: %v", p.name, p.exitedError())
		case <-time.After(statusPoll):
		}
	}
}

// Verification is the state of the peer's interactive verification, as
// Element's SDK reports it.
type Verification struct {
	TransactionID string `json:"transaction_id"`
	// Phase is the SDK's VerificationPhase by name: Requested, Ready,
	// Started, Cancelled or Done ("" when there is none).
	Phase       string      `json:"phase"`
	OtherDevice id.DeviceID `json:"other_device"`
	// CancellationCode is the m.key.verification.cancel code, e.g. m.user
	// or m.mismatched_sas, and CancelledBy who sent it.
	CancellationCode string    `json:"cancellation_code"`
	CancelledBy      id.UserID `json:"cancelled_by"`
	EmojiShown       bool      `json:"emoji_shown"`
	// Outcome is "done" once the SDK's verifier finished, "failed: …" when
	// it gave up, "" before.
	Outcome string `json:"outcome"`
}

// SASEmoji is one of the seven emoji of a SAS verification and its name.
type SASEmoji struct {
	Emoji string `json:"emoji"`
	Name  string `json:"name"`
}

// RequestVerification asks the account's other devices to verify the
// peer's device, as Element's "verify with another device" does.
func (p *Peer) RequestVerification(t testing.TB) Verification {
	t.Helper()
	var v Verification
	p.call(t, "verify_request", nil, &v)
	return v
}

// AcceptVerification waits for a verification request from another device
// of the account and accepts it.
func (p *Peer) AcceptVerification(t testing.TB) Verification {
	t.Helper()
	var v Verification
	p.call(t, "verify_accept", nil, &v)
	return v
}

// VerificationEmoji waits until the SAS exchange of the verification under
// way shows its emoji (the other side starts the exchange) and returns
// them in order.
func (p *Peer) VerificationEmoji(t testing.TB) []SASEmoji {
	t.Helper()
	var reply struct {
		Emoji []SASEmoji `json:"emoji"`
	}
	p.call(t, "verify_emoji", nil, &reply)
	return reply.Emoji
}

// ConfirmVerification says the emoji match.
func (p *Peer) ConfirmVerification(t testing.TB) {
	t.Helper()
	p.call(t, "verify_confirm", nil, nil)
}

// CancelVerification cancels the verification under way: as a mismatch
// once emoji are shown, else as the user's cancel.
func (p *Peer) CancelVerification(t testing.TB) {
	t.Helper()
	p.call(t, "verify_cancel", nil, nil)
}

// WaitVerification asks for the verification's state until pred accepts
// it, failing the test after Timeout or when ctx ends.
func (p *Peer) WaitVerification(t testing.TB, ctx context.Context, pred func(Verification) bool) Verification {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	for {
		var v Verification
		err := p.Call(ctx, "verify_state", nil, &v)
		if err == nil && pred(v) {
			return v
		}
		if err == nil {
			err = fmt.Errorf("last seen %+v", v)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("e2eepeer %s: the verification never got the state wanted: %v", p.name, err)
		case <-p.exited:
			t.Fatalf("e2eepeer %s: %v", p.name, p.exitedError())
		case <-time.After(statusPoll):
		}
	}
}

// Restored is what RestoreBackup reports: the room keys in the backup, and
// how many of them the peer imported.
type Restored struct {
	Total    int `json:"total"`
	Imported int `json:"imported"`
}

// RestoreBackup does what Element does on a new login given the recovery
// key: it opens secret storage, takes the key backup's key from it and
// restores the backup. Messages that could not be decrypted are reported
// again once their keys are in.
func (p *Peer) RestoreBackup(t testing.TB, recoveryKey string) Restored {
	t.Helper()
	var r Restored
	p.call(t, "restore_backup", map[string]any{"recovery_key": recoveryKey}, &r)
	return r
}

// Stop ends the peer now, as a device going offline (its device stays on
// the homeserver). The test's cleanup would otherwise end it.
func (p *Peer) Stop() {
	p.stop()
}
