package session

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/verificationhelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Interactive verification: the gateway's device and another device of the
// same account (Element) compare seven emoji, as Element's "Verify with
// another device" does. Either side asks: VERIFY EMOJI sends a request to
// the account's other devices, or accepts the one a device sent (which the
// clients were told of). The gateway starts the SAS exchange once the
// request is accepted; the clients see the emoji and answer CONFIRM or
// CANCEL. mautrix's verificationhelper runs the protocol. Its state is per
// session and lives with the crypto: the sync loop hands it the
// verification to-device events after the OlmMachine, the side worker
// (never behind a message send) runs what the clients answer, and its
// callbacks only post lines to the owner. A verification is ten minutes at most and is not kept across a
// restart (the other device then times out too).

// verifier is one account's interactive verification.
type verifier struct {
	s   *Session
	vh  *verificationhelper.VerificationHelper
	cli *mautrix.Client // the helper's own client: it needs Crypto set, which the session's client must not have

	// handlers are the helper's to-device handlers, set by Init before the
	// first sync and only read after.
	handlers map[event.Type][]mautrix.EventHandler

	// mu guards what follows. It is never held while posting to the
	// owner, so the owner may take it (pendingPrompt).
	mu sync.Mutex
	// One verification at a time: txn is it, "" when none.
	txn      id.VerificationTransactionID
	device   id.DeviceID // the other device, once known
	incoming bool        // asked by the other device and not accepted yet
	shown    bool        // the emoji were shown, CONFIRM or CANCEL is due
	// prompt is what the verification under way waits for the user to
	// answer (the request, or the emoji), told again to each client that
	// attaches while it does: a request that came while no client was
	// attached is not lost. In memory only, as the verification is (the
	// helper forgets it at a restart, and the other device gives up).
	prompt   []string
	promptAt time.Time // when prompt was first told
}

// startVerifier sets up the account's interactive verification on its
// machine. Without it the rest of the crypto still works. Sync loop, once.
func (s *Session) startVerifier(ctx context.Context, mach *crypto.OlmMachine) {
	cli, err := mautrix.NewClient(s.cli.HomeserverURL.String(), s.user, s.cli.AccessToken)
	if err != nil {
		s.log.Error("interactive verification is off for this session", "err", err)
		return
	}
	cli.DeviceID = s.cli.DeviceID
	cli.Client = s.cli.Client
	cli.UserAgent = s.cli.UserAgent
	cli.DefaultHTTPRetries = 0
	cli.Crypto = noRoomCrypto{}
	cli.StateStore = mautrix.NewMemoryStateStore()
	v := &verifier{s: s, cli: cli, handlers: map[event.Type][]mautrix.EventHandler{}}
	cli.Syncer = v
	v.vh = verificationhelper.NewVerificationHelper(cli, mach, nil, v, false, false, true)
	log := zerolog.New(slogWriter{s.log}).Level(zerolog.WarnLevel)
	if err := v.vh.Init(log.WithContext(ctx)); err != nil {
		s.log.Error("interactive verification is off for this session", "err", err)
		return
	}
	s.verifier.Store(v)
}

// dispatchVerification hands the helper the verification events of a
// response, after the machine has parsed them. Sync loop.
func (s *Session) dispatchVerification(ctx context.Context, resp *mautrix.RespSync) {
	v := s.verifier.Load()
	if v == nil {
		return
	}
	for _, ev := range resp.ToDevice.Events {
		if ev.Content.Parsed == nil {
			continue
		}
		for _, h := range v.handlers[ev.Type] {
			h(ctx, ev)
		}
	}
}

// The helper registers its handlers through the client's syncer; only the
// to-device ones are kept, since in-room verification is with other users.
func (v *verifier) OnEventType(t event.Type, h mautrix.EventHandler) {
	if t.Class == event.ToDeviceEventType {
		v.handlers[t] = append(v.handlers[t], h)
	}
}
func (v *verifier) OnSync(mautrix.SyncHandler)   {}
func (v *verifier) OnEvent(mautrix.EventHandler) {}

func (v *verifier) ProcessResponse(context.Context, *mautrix.RespSync, string) error { return nil }
func (v *verifier) OnFailedSync(*mautrix.RespSync, error) (time.Duration, error) {
	return 0, errors.New("the verifier's client does not sync")
}
func (v *verifier) GetFilterJSON(id.UserID) *mautrix.Filter { return nil }

// noRoomCrypto is the helper client's Crypto: the helper wants one, for
// verification in a room, which the gateway does not offer.
type noRoomCrypto struct{}

var errNoRoomVerification = errors.New("verification in a room is not supported")

func (noRoomCrypto) Encrypt(context.Context, id.RoomID, event.Type, any) (*event.EncryptedEventContent, error) {
	return nil, errNoRoomVerification
}
func (noRoomCrypto) Decrypt(context.Context, *event.Event) (*event.Event, error) {
	return nil, errNoRoomVerification
}
func (noRoomCrypto) WaitForSession(context.Context, id.RoomID, id.SenderKey, id.SessionID, time.Duration) bool {
	return false
}
func (noRoomCrypto) RequestSession(context.Context, id.RoomID, id.SenderKey, id.SessionID, id.UserID, id.DeviceID) {
}
func (noRoomCrypto) Init(context.Context) error { return nil }

// tell shows lines from the service to every live client. The helper's
// callbacks run with its lock held, on the sync loop or the request
// worker, so this only posts. Any goroutine but the owner.
func (v *verifier) tell(lines ...string) {
	s := v.s
	s.post(resultEvent{apply: func() {
		s.broadcast(live, func(a *Attachment, out output) {
			for _, line := range lines {
				out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: s.mgr.cfg.ServiceNick, User: "service", Host: a.client.ServerName()}, Command: "NOTICE", Params: []string{a.client.Nick(), line}})
			}
		})
	}})
}

// deviceName names a device of the account for a person: its display name
// and ID, as Element's session list shows them.
func (v *verifier) deviceName(ctx context.Context, device id.DeviceID) string {
	if mach := v.s.olm.Load(); mach != nil {
		if d, err := mach.CryptoStore.GetDevice(ctx, v.s.user, device); err == nil && d != nil && d.Name != "" {
			return fmt.Sprintf("%q (%s)", d.Name, device)
		}
	}
	return string(device)
}

// end forgets txn if it is the verification under way, and says whether
// it was.
func (v *verifier) end(txn id.VerificationTransactionID) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.txn != txn {
		return false
	}
	v.txn, v.device, v.incoming, v.shown = "", "", false, false
	v.prompt, v.promptAt = nil, time.Time{}
	return true
}

// ask tells the clients what txn waits for them to answer, and keeps it
// for those that attach while it still does. Any goroutine but the owner.
func (v *verifier) ask(txn id.VerificationTransactionID, lines ...string) {
	v.mu.Lock()
	current := v.txn == txn
	if current {
		v.prompt, v.promptAt = lines, time.Now()
	}
	v.mu.Unlock()
	if current {
		v.tell(lines...)
	}
}

// pendingPrompt is what the verification under way waits for the user to
// answer and since when; nil when nothing is. The helper ends a
// verification after ten minutes, and with it the prompt. Any goroutine.
func (v *verifier) pendingPrompt() ([]string, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.prompt, v.promptAt
}

// tellPending shows a client that just attached what a verification
// waits for it to answer, asked while it was away. Owner goroutine.
func (s *Session) tellPending(a *Attachment) {
	v := s.verifier.Load()
	if v == nil {
		return
	}
	lines, at := v.pendingPrompt()
	if len(lines) == 0 {
		return
	}
	notice := func(line string) {
		a.client.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: s.mgr.cfg.ServiceNick, User: "service", Host: a.client.ServerName()}, Command: "NOTICE", Params: []string{a.client.Nick(), line}})
	}
	notice(fmt.Sprintf("While you were away (%s ago), a verification was started and still waits for you:", time.Since(at).Round(time.Second)))
	for _, line := range lines {
		notice(line)
	}
}

// VerificationRequested: a device asks to verify. Sync loop.
func (v *verifier) VerificationRequested(ctx context.Context, txn id.VerificationTransactionID, from id.UserID, device id.DeviceID) {
	refuse := func(reason string) {
		v.s.enqueueSide(func(ctx context.Context) func() {
			if err := v.vh.CancelVerification(ctx, txn, event.VerificationCancelCodeUser, reason); err != nil {
				v.s.log.Info("could not refuse a verification request", "from", from, "err", err)
			}
			return nil
		})
	}
	if from != v.s.user {
		refuse("this gateway verifies its device only with its own account's other devices")
		return
	}
	v.mu.Lock()
	busy := v.txn != ""
	if !busy {
		v.txn, v.device, v.incoming, v.shown = txn, device, true, false
	}
	v.mu.Unlock()
	if busy {
		refuse("another verification is under way")
		return
	}
	v.ask(txn, fmt.Sprintf("Your device %s asks to verify this gateway's device by comparing emoji. To go ahead, type VERIFY EMOJI; to refuse, type CANCEL.", v.deviceName(ctx, device)))
}

// VerificationReady: both sides agreed to verify; the gateway starts the
// emoji comparison. (If the other device starts it first, the gateway's
// start is refused by the helper and the other's goes on.) Sync loop or
// side worker, with the helper's lock held, so the start is queued.
func (v *verifier) VerificationReady(_ context.Context, txn id.VerificationTransactionID, device id.DeviceID, supportsSAS, _ bool, _ *verificationhelper.QRCode) {
	v.mu.Lock()
	if v.txn == txn {
		v.device, v.incoming = device, false
		v.prompt, v.promptAt = nil, time.Time{} // accepted: the emoji come next
	}
	v.mu.Unlock()
	v.s.enqueueSide(func(ctx context.Context) func() {
		if !supportsSAS {
			_ = v.vh.CancelVerification(ctx, txn, event.VerificationCancelCodeUnknownMethod, "this gateway can only compare emoji")
			if v.end(txn) {
				v.tell("Your other device cannot compare emoji, the only way this gateway verifies; nothing changed.")
			}
			return nil
		}
		if err := v.vh.StartSAS(ctx, txn); err != nil {
			v.s.log.Info("not starting the emoji comparison", "txn", txn, "err", err)
		}
		return nil
	})
}

// ShowSAS: the seven emoji to compare. Sync loop.
func (v *verifier) ShowSAS(ctx context.Context, txn id.VerificationTransactionID, emojis []rune, names []string, decimals []int) {
	v.mu.Lock()
	current := v.txn == txn
	if current {
		v.shown = true
	}
	device := v.device
	v.mu.Unlock()
	if !current {
		return
	}
	lines := []string{fmt.Sprintf("Compare these with what your device %s shows:", v.deviceName(ctx, device))}
	if len(emojis) > 0 && len(emojis) == len(names) {
		for i, e := range emojis {
			lines = append(lines, fmt.Sprintf("%d. %c  %s", i+1, e, names[i]))
		}
	} else {
		numbers := make([]string, len(decimals))
		for i, d := range decimals {
			numbers[i] = fmt.Sprint(d)
		}
		lines = append(lines, strings.Join(numbers, " "))
	}
	lines = append(lines, "If they are the same, in the same order, type CONFIRM; if not, type CANCEL.")
	v.ask(txn, lines...)
}

// VerificationCancelled: by the other device, or by the helper (a key
// that did not match, the ten minutes up). Sync loop, side worker or
// the helper's timer.
func (v *verifier) VerificationCancelled(_ context.Context, txn id.VerificationTransactionID, code event.VerificationCancelCode, reason string) {
	if !v.end(txn) {
		return
	}
	switch code {
	case event.VerificationCancelCodeTimeout:
		v.tell("The verification timed out; this gateway's device is not verified, and nothing changed.")
	case event.VerificationCancelCodeSASMismatch, event.VerificationCancelCodeKeyMismatch, event.VerificationCancelCodeCommitmentMismatch:
		v.tell(fmt.Sprintf("The verification failed: the emoji or keys did not match (%s). This gateway's device is not verified, and nothing changed.", reason))
	case event.VerificationCancelCodeAccepted:
		v.tell("Another of your devices answered the verification request instead; nothing changed here.")
	default:
		v.tell(fmt.Sprintf("The verification was cancelled (%s); this gateway's device is not verified, and nothing changed.", reason))
	}
}

// VerificationDone: both sides confirmed. The helper has marked the other
// device verified here and signed with what this device holds (the
// account's master key with the device key, or the other device with the
// self-signing key if the gateway has it); the other device signed this
// one with the account's self-signing key, which is what makes Element
// show it as verified.
func (v *verifier) VerificationDone(ctx context.Context, txn id.VerificationTransactionID, _ event.VerificationMethod) {
	v.mu.Lock()
	device := v.device
	v.mu.Unlock()
	if !v.end(txn) {
		return
	}
	v.tell(fmt.Sprintf("Verified: your device %s and this gateway's device now trust each other, so Element shows this gateway as verified.", v.deviceName(ctx, device)))
	v.s.goSafe("fetching the key backup's key", func() { v.fetchSecrets(v.s.ctx) })
}

// serviceVerifyEmoji accepts the request a device sent, or asks the
// account's other devices to verify.
func (s *Session) serviceVerifyEmoji(a *Attachment, out output, reply func(string)) {
	v := s.verifier.Load()
	if v == nil {
		reply("Encryption is off for your account on this gateway, so there is no device to verify.")
		return
	}
	s.sideRequest(a, out, "PRIVMSG", func(ctx context.Context) func() {
		v.mu.Lock()
		txn, incoming := v.txn, v.incoming
		v.mu.Unlock()
		switch {
		case txn != "" && incoming:
			if err := v.vh.AcceptVerification(ctx, txn); err != nil {
				v.end(txn)
				return func() { reply("Could not accept the request: " + err.Error()) }
			}
			return func() { reply("Accepted; the emoji follow.") }
		case txn != "":
			return func() { reply("A verification is already under way; CANCEL ends it.") }
		}
		mach := s.olm.Load()
		devices, err := mach.FetchKeys(ctx, []id.UserID{s.user}, true)
		if err != nil {
			return func() { reply("Could not list your account's devices: " + matrixErrorText(err)) }
		}
		others := 0
		for device := range devices[s.user] {
			if device != s.cli.DeviceID {
				others++
			}
		}
		if others == 0 {
			return func() {
				reply("Your account has no other device to compare emoji with; log in with Element, or use VERIFY <recovery key>.")
			}
		}
		txn, err = v.vh.StartVerification(ctx, s.user)
		if err != nil {
			return func() { reply("Could not ask your other devices: " + matrixErrorText(err)) }
		}
		v.mu.Lock()
		v.txn, v.device, v.incoming, v.shown = txn, "", false, false
		v.mu.Unlock()
		return func() {
			reply("Asked your other devices to verify this gateway: accept the request on one of them (Element shows it), then compare the emoji shown here.")
		}
	})
}

func (s *Session) serviceConfirm(a *Attachment, out output, reply func(string), _ string) {
	v := s.verifier.Load()
	if v == nil {
		reply("Encryption is off for your account on this gateway, so there is nothing to confirm.")
		return
	}
	s.sideRequest(a, out, "PRIVMSG", func(ctx context.Context) func() {
		v.mu.Lock()
		txn, shown := v.txn, v.shown
		v.mu.Unlock()
		if txn == "" || !shown {
			return func() { reply("There are no emoji to confirm; VERIFY EMOJI starts a verification.") }
		}
		if err := v.vh.ConfirmSAS(ctx, txn); err != nil {
			return func() { reply("Could not confirm: " + err.Error()) }
		}
		v.mu.Lock()
		waiting := v.txn == txn
		if waiting {
			v.prompt, v.promptAt = nil, time.Time{} // answered
		}
		v.mu.Unlock()
		if !waiting {
			return nil // done: VerificationDone said so
		}
		return func() { reply("Confirmed; waiting for your other device to confirm too.") }
	})
}

func (s *Session) serviceCancel(a *Attachment, out output, reply func(string), _ string) {
	v := s.verifier.Load()
	if v == nil {
		reply("No verification is under way.")
		return
	}
	s.sideRequest(a, out, "PRIVMSG", func(ctx context.Context) func() {
		v.mu.Lock()
		txn, shown := v.txn, v.shown
		v.mu.Unlock()
		if txn == "" {
			return func() { reply("No verification is under way.") }
		}
		code, reason := event.VerificationCancelCodeUser, "cancelled from IRC"
		if shown {
			code, reason = event.VerificationCancelCodeSASMismatch, "the emoji did not match, said the IRC user"
		}
		err := v.vh.CancelVerification(ctx, txn, code, reason)
		if !v.end(txn) {
			return nil // it ended meanwhile, and said how
		}
		if err != nil && !errors.Is(err, verificationhelper.ErrUnknownVerificationTransaction) {
			s.log.Info("could not tell the other device of the cancel", "err", err)
		}
		return func() { reply("Cancelled; this gateway's device is not verified, and nothing changed.") }
	})
}

// secretWait is how long the gateway waits for the verified device to send
// each secret it asks for.
const secretWait = 30 * time.Second

// fetchSecrets asks the account's verified devices for the key backup's
// key, as a new Element login does after it is verified: the backup is
// restored and trusted, so new room keys go to it, as after VERIFY with
// the recovery key. The key only counts if it opens the homeserver's
// current backup. (Not the cross-signing keys: Element's SDK never sends
// the master key, which mautrix needs with the others; the device key's
// signature on the master key, made at the end of the verification, is
// what the gateway can sign.) Its own goroutine: the answer comes through
// the sync loop, and waiting must hold up neither it nor the request
// worker (a goSafe helper).
func (v *verifier) fetchSecrets(ctx context.Context) {
	s := v.s
	mach := s.olm.Load()
	if mach == nil {
		return
	}
	var restored string
	err := mach.GetOrRequestSecret(ctx, id.SecretMegolmBackupV1, func(secret string) (bool, error) {
		key, err := backupKeyFromSecret(secret)
		if err != nil {
			return false, nil
		}
		info, err := mach.GetAndVerifyLatestKeyBackupVersion(ctx, key)
		if err != nil || info == nil {
			return false, nil // not the current backup's key: wait for another answer
		}
		if err := mach.GetAndStoreKeyBackup(ctx, info.Version, key); err != nil {
			return false, err
		}
		if err := trustBackup(ctx, mach, key, info.Version); err != nil {
			return false, err
		}
		restored = string(info.Version)
		return true, nil
	}, secretWait)
	switch {
	case restored != "":
		s.backupDue.Store(true)
		v.tell(fmt.Sprintf("Your other device also shared your key backup (version %s): its keys are restored, so older encrypted messages can be read (CHATHISTORY), and new room keys go to the backup from now on.", restored))
	case err != nil:
		s.log.Info("no key backup key from the verified device", "err", err)
	}
}

// decodeSecretBytes reads a secret as devices send it: base64, padded or
// not.
func decodeSecretBytes(secret string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(secret), "="))
}

func backupKeyFromSecret(secret string) (*backup.MegolmBackupKey, error) {
	raw, err := decodeSecretBytes(secret)
	if err != nil {
		return nil, err
	}
	return backup.MegolmBackupKeyFromBytes(raw)
}
