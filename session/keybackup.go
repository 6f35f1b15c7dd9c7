package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/id"
)

// Key backup upload: once VERIFY has opened the account's key backup with
// its recovery key, the backup is trusted (its public key is the one the
// recovery key's secret derives), so the gateway keeps that key (pickled in
// the crypto store with the other secrets) and the backup's version (in
// the Olm account), and uploads every room key it gets from then on, so
// that the account's other devices can read what arrived while only the
// gateway was online. The sync loop uploads, after a response brought new
// keys or a send made one; a session's keys are marked with the version
// once uploaded, so nothing is sent twice and a crash sends the rest later.

// backupBatch is how many room keys one upload request carries.
const backupBatch = 100

// trustBackup remembers a key backup opened with the account's recovery
// key, so that new room keys are uploaded to it. Request worker (VERIFY).
func trustBackup(ctx context.Context, mach *crypto.OlmMachine, key *backup.MegolmBackupKey, version id.KeyBackupVersion) error {
	if err := mach.CryptoStore.PutSecret(ctx, id.SecretMegolmBackupV1, base64.RawStdEncoding.EncodeToString(key.Bytes())); err != nil {
		return err
	}
	return mach.SetKeyBackupVersion(ctx, version)
}

// backUpKeys uploads the room keys not yet in the trusted key backup. A
// backup that the homeserver no longer has, or that was replaced by a new
// one, is forgotten: VERIFY again trusts the new one. Sync loop.
func (s *Session) backUpKeys(ctx context.Context, mach *crypto.OlmMachine) error {
	version := mach.KeyBackupVersion()
	if version == "" {
		return nil
	}
	secret, err := mach.CryptoStore.GetSecret(ctx, id.SecretMegolmBackupV1)
	if err != nil || secret == "" {
		return err
	}
	key, err := backupKeyFromSecret(secret)
	if err != nil {
		return fmt.Errorf("the stored key backup key is unreadable: %w", err)
	}
	// A list before the next store call: on SQLite an open iterator would
	// hold the store's one connection.
	sessions, err := mach.CryptoStore.GetGroupSessionsWithoutKeyBackupVersion(ctx, version).AsList()
	if err != nil {
		return err
	}
	for start := 0; start < len(sessions); start += backupBatch {
		batch := sessions[start:min(start+backupBatch, len(sessions))]
		req := &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{}}
		for _, igs := range batch {
			data, err := backupSessionData(key, igs)
			if err != nil {
				return err
			}
			room, ok := req.Rooms[igs.RoomID]
			if !ok {
				room = mautrix.ReqRoomKeyBackup{Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{}}
				req.Rooms[igs.RoomID] = room
			}
			room.Sessions[igs.ID()] = data
		}
		if _, err := mach.Client.PutKeysInBackup(ctx, version, req); err != nil {
			if errors.Is(err, mautrix.MNotFound) || errors.Is(err, mautrix.MWrongRoomKeysVersion) {
				s.log.Warn("the key backup is gone or was replaced; new room keys are no longer backed up until VERIFY is run again", "version", version, "err", err)
				return mach.SetKeyBackupVersion(ctx, "")
			}
			return fmt.Errorf("uploading room keys to the key backup: %w", err)
		}
		for _, igs := range batch {
			if err := markBackedUp(ctx, mach.CryptoStore, igs, version); err != nil {
				return err
			}
		}
	}
	return nil
}

// markBackedUp records that a room key is in the backup. The gateway's
// store (mautrix's SQL store) marks just that; another store gets the
// session written back with the mark.
func markBackedUp(ctx context.Context, cs crypto.Store, igs *crypto.InboundGroupSession, version id.KeyBackupVersion) error {
	if marker, ok := cs.(interface {
		SetGroupSessionKeyBackupVersion(context.Context, id.RoomID, id.SessionID, id.KeyBackupVersion) error
	}); ok {
		return marker.SetGroupSessionKeyBackupVersion(ctx, igs.RoomID, igs.ID(), version)
	}
	igs.KeyBackupVersion = version
	return cs.PutGroupSession(ctx, igs)
}

// backupSessionData is one room key as the key backup holds it: exported
// from the first index the gateway knows, encrypted to the backup's
// public key.
func backupSessionData(key *backup.MegolmBackupKey, igs *crypto.InboundGroupSession) (mautrix.ReqKeyBackupData, error) {
	first := igs.Internal.FirstKnownIndex()
	exported, err := igs.Internal.Export(first)
	if err != nil {
		return mautrix.ReqKeyBackupData{}, fmt.Errorf("exporting a room key: %w", err)
	}
	chain := igs.ForwardingChains
	if chain == nil {
		chain = []string{}
	}
	enc, err := backup.EncryptSessionData(key, backup.MegolmSessionData{
		Algorithm:          id.AlgorithmMegolmV1,
		ForwardingKeyChain: chain,
		SenderClaimedKeys:  backup.SenderClaimedKeys{Ed25519: igs.SigningKey},
		SenderKey:          igs.SenderKey,
		SessionKey:         string(exported),
		SharedHistory:      igs.SharedHistory,
	})
	if err != nil {
		return mautrix.ReqKeyBackupData{}, fmt.Errorf("encrypting a room key for the backup: %w", err)
	}
	data, err := json.Marshal(enc)
	if err != nil {
		return mautrix.ReqKeyBackupData{}, err
	}
	return mautrix.ReqKeyBackupData{
		FirstMessageIndex: int(first),
		ForwardedCount:    len(chain),
		SessionData:       data,
	}, nil
}
