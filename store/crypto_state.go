package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// DeleteCryptoState forgets one account's Olm account, Olm and Megolm
// sessions and secrets, for a device reset or a logout. Other accounts'
// state, and the device lists and cross-signing records all accounts share
// (mautrix's tables have no account column for them), are untouched. The
// account's crypto store and OlmMachine must be dropped first: they cache
// the Olm account and sessions and would write them back.
func (s *SQLStore) DeleteCryptoState(ctx context.Context, userID id.UserID) error {
	if userID == "" {
		return errors.New("store: delete crypto state: empty user ID")
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Which devices got an outbound session is keyed by session ID,
		// the only link to the account.
		if _, err := tx.ExecContext(ctx, `DELETE FROM crypto_megolm_outbound_session_shared WHERE session_id IN
			(SELECT session_id FROM crypto_megolm_outbound_session WHERE account_id = $1)`, string(userID)); err != nil {
			return err
		}
		for _, table := range []string{
			"crypto_megolm_outbound_session", "crypto_megolm_inbound_session", "crypto_olm_session",
			"crypto_olm_message_hash", "crypto_secrets", "crypto_account",
		} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE account_id = $1`, string(userID)); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete crypto state of %s: %w", userID, err)
	}
	return nil
}
