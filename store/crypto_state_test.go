package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

const (
	userA = id.UserID("@alice:example.org")
	userB = id.UserID("@bob:example.org")
	roomA = id.RoomID("!a:example.org")
	roomB = id.RoomID("!b:example.org")
)

func newPickleKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, store.PickleKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func openCfg(t *testing.T, cfg store.Config) *store.SQLStore {
	t.Helper()
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cryptoStore(t *testing.T, s *store.SQLStore, user id.UserID, device id.DeviceID, key []byte) *crypto.SQLCryptoStore {
	t.Helper()
	stores, err := s.OpenCryptoStores(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return stores.Open(user, device)
}

// cryptoAccount is what a test remembers of one account's crypto state to
// find it again after a reopen.
type cryptoAccount struct {
	user        id.UserID
	device      id.DeviceID
	identityKey id.IdentityKey
	olmPeer     id.SenderKey // the key its Olm session is stored under
	olmSession  id.SessionID
	room        id.RoomID
	megolm      id.SessionID
}

// putCryptoState stores an Olm account, one Olm session (to peer) and one
// inbound and outbound Megolm session for user.
func putCryptoState(t *testing.T, cs *crypto.SQLCryptoStore, user id.UserID, device id.DeviceID, room id.RoomID, peer *crypto.OlmAccount) cryptoAccount {
	t.Helper()
	ctx := context.Background()
	acc := crypto.NewOlmAccount()
	if err := cs.PutAccount(ctx, acc); err != nil {
		t.Fatalf("PutAccount %s: %v", user, err)
	}

	if err := peer.Internal.GenOneTimeKeys(1); err != nil {
		t.Fatal(err)
	}
	otks, err := peer.Internal.OneTimeKeys()
	if err != nil {
		t.Fatal(err)
	}
	var otk id.Curve25519
	for _, k := range otks {
		otk = k
	}
	sess, err := acc.Internal.NewOutboundSession(peer.IdentityKey(), otk)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	olmSess := &crypto.OlmSession{Internal: sess, ExpirationMixin: crypto.ExpirationMixin{
		TimeMixin: crypto.TimeMixin{CreationTime: now, LastEncryptedTime: now, LastDecryptedTime: now},
	}}
	if err := cs.AddSession(ctx, peer.IdentityKey(), olmSess); err != nil {
		t.Fatalf("AddSession %s: %v", user, err)
	}

	out, err := olm.NewOutboundGroupSession()
	if err != nil {
		t.Fatal(err)
	}
	in, err := crypto.NewInboundGroupSession(acc.IdentityKey(), acc.SigningKey(), room, out.Key(), 0, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.PutGroupSession(ctx, in); err != nil {
		t.Fatalf("PutGroupSession %s: %v", user, err)
	}
	if err := cs.AddOutboundGroupSession(ctx, &crypto.OutboundGroupSession{
		Internal: out, RoomID: room, MaxMessages: 100,
		ExpirationMixin: crypto.ExpirationMixin{MaxAge: time.Hour, TimeMixin: crypto.TimeMixin{CreationTime: now, LastEncryptedTime: now}},
	}); err != nil {
		t.Fatalf("AddOutboundGroupSession %s: %v", user, err)
	}
	return cryptoAccount{
		user: user, device: device, identityKey: acc.IdentityKey(),
		olmPeer: peer.IdentityKey(), olmSession: olmSess.ID(), room: room, megolm: in.ID(),
	}
}

// checkCryptoState insists that cs holds exactly what putCryptoState
// stored for want.
func checkCryptoState(t *testing.T, cs *crypto.SQLCryptoStore, want cryptoAccount) {
	t.Helper()
	ctx := context.Background()
	acc, err := cs.GetAccount(ctx)
	if err != nil || acc == nil {
		t.Fatalf("GetAccount %s = %v, %v", want.user, acc, err)
	}
	if acc.IdentityKey() != want.identityKey {
		t.Fatalf("%s: identity key %s after reopen, want %s", want.user, acc.IdentityKey(), want.identityKey)
	}
	if dev, err := cs.FindDeviceID(ctx); err != nil || dev != want.device {
		t.Fatalf("%s: device %q, %v; want %q", want.user, dev, err, want.device)
	}
	sessions, err := cs.GetSessions(ctx, want.olmPeer)
	if err != nil || len(sessions) != 1 || sessions[0].ID() != want.olmSession {
		t.Fatalf("%s: Olm sessions %v, %v; want %s", want.user, sessions, err, want.olmSession)
	}
	in, err := cs.GetGroupSession(ctx, want.room, want.megolm)
	if err != nil || in == nil || in.ID() != want.megolm {
		t.Fatalf("%s: Megolm session %v, %v; want %s", want.user, in, err, want.megolm)
	}
	out, err := cs.GetOutboundGroupSession(ctx, want.room)
	if err != nil || out == nil || out.ID() != want.megolm {
		t.Fatalf("%s: outbound Megolm session %v, %v; want %s", want.user, out, err, want.megolm)
	}
}

// checkNoneOf insists that cs sees nothing of other's state.
func checkNoneOf(t *testing.T, cs *crypto.SQLCryptoStore, other cryptoAccount) {
	t.Helper()
	ctx := context.Background()
	if acc, err := cs.GetAccount(ctx); err != nil || (acc != nil && acc.IdentityKey() == other.identityKey) {
		t.Fatalf("%s's account visible to %s: %v", other.user, cs.AccountID, err)
	}
	if sessions, err := cs.GetSessions(ctx, other.olmPeer); err != nil || len(sessions) != 0 {
		t.Fatalf("%s's Olm sessions visible to %s: %v, %v", other.user, cs.AccountID, sessions, err)
	}
	if in, err := cs.GetGroupSession(ctx, other.room, other.megolm); err != nil || in != nil {
		t.Fatalf("%s's Megolm session visible to %s: %v, %v", other.user, cs.AccountID, in, err)
	}
	if out, err := cs.GetOutboundGroupSession(ctx, other.room); err != nil || out != nil {
		t.Fatalf("%s's outbound Megolm session visible to %s: %v, %v", other.user, cs.AccountID, out, err)
	}
}

func TestCryptoStoresOfTwoAccounts(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.Config(t, driver)
		key := newPickleKey(t)

		s := openCfg(t, cfg)
		csA := cryptoStore(t, s, userA, "ALICEDEV", key)
		csB := cryptoStore(t, s, userB, "BOBDEV", key)
		// Each account's Olm session is with the other's account, as it
		// would be between two users of one gateway.
		peerOfA, peerOfB := crypto.NewOlmAccount(), crypto.NewOlmAccount()
		a := putCryptoState(t, csA, userA, "ALICEDEV", roomA, peerOfA)
		b := putCryptoState(t, csB, userB, "BOBDEV", roomB, peerOfB)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = openCfg(t, cfg)
		defer s.Close()
		csA = cryptoStore(t, s, userA, "ALICEDEV", key)
		csB = cryptoStore(t, s, userB, "BOBDEV", key)
		checkCryptoState(t, csA, a)
		checkCryptoState(t, csB, b)
		checkNoneOf(t, csB, a)
		checkNoneOf(t, csA, b)

		if err := s.DeleteCryptoState(ctx, userA); err != nil {
			t.Fatal(err)
		}
		csA = cryptoStore(t, s, userA, "ALICEDEV", key)
		if acc, err := csA.GetAccount(ctx); err != nil || acc != nil {
			t.Fatalf("account of %s after DeleteCryptoState: %v, %v", userA, acc, err)
		}
		checkNoneOf(t, csA, a)
		checkCryptoState(t, cryptoStore(t, s, userB, "BOBDEV", key), b)
		// Deleting what is already gone is not an error.
		if err := s.DeleteCryptoState(ctx, userA); err != nil {
			t.Fatal(err)
		}
	})
}

// The database alone must open nothing: the pickled account is useless
// without the key and holds no private key in the clear.
func TestCryptoPicklesNeedTheKey(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		key := newPickleKey(t)
		cs := cryptoStore(t, s, userA, "ALICEDEV", key)
		acc := crypto.NewOlmAccount()
		if err := cs.PutAccount(ctx, acc); err != nil {
			t.Fatal(err)
		}
		var pickled []byte
		if err := s.DB().QueryRowContext(ctx, `SELECT account FROM crypto_account WHERE account_id = $1`,
			string(userA)).Scan(&pickled); err != nil {
			t.Fatal(err)
		}

		if _, err := olm.AccountFromPickled(pickled, newPickleKey(t)); err == nil {
			t.Fatal("the stored account unpickled with another key")
		}
		back, err := olm.AccountFromPickled(pickled, key)
		if err != nil {
			t.Fatalf("the stored account does not unpickle with its own key: %v", err)
		}
		if _, ik, _ := back.IdentityKeys(); ik != acc.IdentityKey() {
			t.Fatalf("unpickled identity key %s, want %s", ik, acc.IdentityKey())
		}

		ga, ok := acc.Internal.(*account.Account)
		if !ok {
			t.Fatalf("account is %T, want goolm's", acc.Internal)
		}
		for name, secret := range map[string][]byte{
			"ed25519 private key":    ga.IdKeys.Ed25519.PrivateKey,
			"ed25519 seed":           ga.IdKeys.Ed25519.PrivateKey[:32],
			"curve25519 private key": ga.IdKeys.Curve25519.PrivateKey,
		} {
			for _, form := range [][]byte{
				secret,
				[]byte(base64.StdEncoding.EncodeToString(secret)),
				[]byte(base64.RawStdEncoding.EncodeToString(secret)),
			} {
				if bytes.Contains(pickled, form) {
					t.Fatalf("the stored account contains the %s in the clear", name)
				}
			}
		}
	})
}

// mautrix redacts Megolm sessions past twice their max age with SQL date
// arithmetic, which on SQLite only works on times it can parse.
func TestCryptoExpiredGroupSessions(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		cs := cryptoStore(t, s, userA, "ALICEDEV", newPickleKey(t))
		if err := cs.PutAccount(ctx, crypto.NewOlmAccount()); err != nil {
			t.Fatal(err)
		}
		put := func(age time.Duration) id.SessionID {
			out, err := olm.NewOutboundGroupSession()
			if err != nil {
				t.Fatal(err)
			}
			in, err := crypto.NewInboundGroupSession("sender", "signer", roomA, out.Key(), time.Hour, 100, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			in.ReceivedAt = time.Now().Add(-age)
			if err := cs.PutGroupSession(ctx, in); err != nil {
				t.Fatal(err)
			}
			return in.ID()
		}
		old, fresh := put(72*time.Hour), put(time.Minute)
		redacted, err := cs.RedactExpiredGroupSessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(redacted) != 1 || redacted[0] != old {
			t.Fatalf("redacted %v, want only the expired %s (not %s)", redacted, old, fresh)
		}
	})
}

// Secrets (the recovery and backup keys) are per account and pickled;
// device lists, which PutDevices writes in a transaction of its own on
// SQLite's one connection, and cross-signing records round-trip on both
// databases.
func TestCryptoSecretsAndDevices(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.Open(t, driver)
		key := newPickleKey(t)
		csA := cryptoStore(t, s, userA, "ALICEDEV", key)
		csB := cryptoStore(t, s, userB, "BOBDEV", key)
		for _, cs := range []*crypto.SQLCryptoStore{csA, csB} {
			if err := cs.PutAccount(ctx, crypto.NewOlmAccount()); err != nil {
				t.Fatal(err)
			}
		}

		const secret = "EsTc recovery key of alice"
		if err := csA.PutSecret(ctx, id.SecretMegolmBackupV1, secret); err != nil {
			t.Fatal(err)
		}
		if got, err := csA.GetSecret(ctx, id.SecretMegolmBackupV1); err != nil || got != secret {
			t.Fatalf("alice's secret = %q, %v", got, err)
		}
		if got, err := csB.GetSecret(ctx, id.SecretMegolmBackupV1); err != nil || got != "" {
			t.Fatalf("bob sees alice's secret: %q, %v", got, err)
		}
		var stored []byte
		if err := s.DB().QueryRowContext(ctx, `SELECT secret FROM crypto_secrets WHERE account_id = $1`,
			string(userA)).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(stored, []byte(secret)) {
			t.Fatal("the secret is stored in the clear")
		}

		other := crypto.NewOlmAccount()
		dev := &id.Device{UserID: "@carol:example.org", DeviceID: "CAROLDEV", IdentityKey: other.IdentityKey(),
			SigningKey: other.SigningKey(), Name: "Element"}
		if err := csA.PutDevices(ctx, dev.UserID, map[id.DeviceID]*id.Device{dev.DeviceID: dev}); err != nil {
			t.Fatal(err)
		}
		devs, err := csA.GetDevices(ctx, dev.UserID)
		if err != nil || len(devs) != 1 || devs[dev.DeviceID].IdentityKey != dev.IdentityKey {
			t.Fatalf("GetDevices = %v, %v", devs, err)
		}
		if tracked, err := csA.FilterTrackedUsers(ctx, []id.UserID{dev.UserID, userB}); err != nil || len(tracked) != 1 {
			t.Fatalf("FilterTrackedUsers = %v, %v", tracked, err)
		}
		if err := csA.MarkTrackedUsersOutdated(ctx, []id.UserID{dev.UserID}); err != nil {
			t.Fatal(err)
		}
		if outdated, err := csA.GetOutdatedTrackedUsers(ctx); err != nil || len(outdated) != 1 || outdated[0] != dev.UserID {
			t.Fatalf("GetOutdatedTrackedUsers = %v, %v", outdated, err)
		}

		master := other.SigningKey()
		if err := csA.PutCrossSigningKey(ctx, dev.UserID, id.XSUsageMaster, master); err != nil {
			t.Fatal(err)
		}
		if keys, err := csA.GetCrossSigningKeys(ctx, dev.UserID); err != nil || keys[id.XSUsageMaster].Key != master {
			t.Fatalf("GetCrossSigningKeys = %v, %v", keys, err)
		}
		sig := strings.Repeat("A", 86)
		if err := csA.PutSignature(ctx, dev.UserID, dev.SigningKey, dev.UserID, master, sig); err != nil {
			t.Fatal(err)
		}
		if ok, err := csA.IsKeySignedBy(ctx, dev.UserID, dev.SigningKey, dev.UserID, master); err != nil || !ok {
			t.Fatalf("IsKeySignedBy = %v, %v", ok, err)
		}

		if err := s.DeleteCryptoState(ctx, userA); err != nil {
			t.Fatal(err)
		}
		if got, err := cryptoStore(t, s, userA, "ALICEDEV", key).GetSecret(ctx, id.SecretMegolmBackupV1); err != nil || got != "" {
			t.Fatalf("alice's secret after DeleteCryptoState = %q, %v", got, err)
		}
	})
}
