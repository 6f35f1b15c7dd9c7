package session

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// Logging in by TLS client certificate (SASL EXTERNAL), as soju and ergo
// do: the user registers the SHA-256 fingerprint of a certificate with the
// service (CERTFP ADD, over TLS or from this machine), and a connection
// that presents it logs in to the account. Like an app password, a
// certificate unlocks the account's stored Matrix session only: it cannot
// log in to Matrix, so an account whose session was logged out needs its
// Matrix password (or LOGIN) once more.

// maxCertFPs is how many certificates one account may register.
const maxCertFPs = 16

// Cert logs in with the TLS client certificate of fingerprint (as
// ircd's CertFP gives it). authzid is the account the client asked for
// ("alice@laptop" picks a client name), "" for the certificate's own.
// An unknown certificate, or one of another account, is
// ErrInvalidCredentials.
func (au *Authenticator) Cert(ctx context.Context, fingerprint, authzid string) (*Credentials, error) {
	owner, err := au.store.CertFPAccount(ctx, fingerprint)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no account has registered the client certificate %s", ErrInvalidCredentials, fingerprint)
	} else if err != nil {
		return nil, fmt.Errorf("looking up the client certificate: %w", err)
	}
	user, clientName := owner, ""
	if authzid != "" {
		asked, name, err := au.parseAccount(authzid)
		if err != nil {
			return nil, err
		}
		if asked != user {
			return nil, fmt.Errorf("%w: the client certificate is %s's, not %s's", ErrInvalidCredentials, user, asked)
		}
		clientName = name
	}
	creds := &Credentials{User: user, ClientName: clientName, stored: true, unlock: au.lockUser(user)}
	acct, err := au.store.Account(ctx, user)
	if err == nil && acct.AccessToken == "" {
		err = fmt.Errorf("the gateway has no Matrix session for %s any more (it was logged out), and a certificate cannot start one: log in once with your Matrix password (or LOGIN)", user)
	} else if errors.Is(err, store.ErrNotFound) {
		err = fmt.Errorf("the gateway has no Matrix session for %s, and a certificate cannot start one: log in once with your Matrix password (or LOGIN)", user)
	} else if err != nil {
		err = fmt.Errorf("loading account: %w", err)
	}
	if err != nil {
		creds.Release()
		return nil, err
	}
	creds.Account = acct
	return creds, nil
}

// LoginCert is Login by TLS client certificate (SASL EXTERNAL): it attaches
// client to the session of the account that registered fingerprint.
// Called on the client's reader goroutine.
func (m *Manager) LoginCert(ctx context.Context, authzid, fingerprint string, client Client) (*Attachment, error) {
	creds, err := m.auth.Cert(ctx, fingerprint, authzid)
	if err != nil {
		return nil, err
	}
	return m.Start(ctx, creds, client)
}

// normalizeCertFP turns a fingerprint as people write it (upper or lower
// case, with or without colons) into the stored form, 64 lowercase hex
// digits; ok is false when it is not a SHA-256 fingerprint.
func normalizeCertFP(s string) (string, bool) {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", false
	}
	return s, true
}

// certFP is the fingerprint of the client certificate of a's connection,
// "" if none, as the IRC side reports it.
func (a *Attachment) certFP() string {
	cc, ok := a.client.(interface{ CertFP() string })
	if !ok {
		return ""
	}
	return cc.CertFP()
}

const certFPUsage = "CERTFP LIST | CERTFP ADD [<fingerprint>] | CERTFP DEL <fingerprint>"

var certFPCommand = serviceCommand{
	name:  "CERTFP",
	usage: certFPUsage,
	help: "manages the TLS client certificates that log you in by SASL EXTERNAL: ADD registers the one this connection presents " +
		"(or the SHA-256 fingerprint given), only over TLS or from this machine; LIST shows them; DEL removes one. " +
		"A certificate logs in to the gateway's stored Matrix session, like an app password",
	run: (*Session).serviceCertFP,
}

func (s *Session) serviceCertFP(a *Attachment, out output, reply func(string), args string) {
	words, ok := serviceArgs(reply, args)
	if !ok {
		return
	}
	usage := "Usage: " + certFPUsage
	user, st, current := s.user, s.mgr.store, a.certFP()
	sub := "LIST"
	if len(words) > 0 {
		sub = strings.ToUpper(words[0])
	}
	switch {
	case sub == "LIST" && len(words) <= 1:
		s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
			list, err := st.CertFPs(ctx, user)
			return func() {
				if err != nil {
					s.log.Error("could not list the client certificates", "err", err)
					reply("Cannot list them: the gateway's database failed.")
					return
				}
				if len(list) == 0 {
					reply("Your account has no client certificates here; CERTFP ADD registers the one your connection presents.")
					return
				}
				reply(fmt.Sprintf("Your account has %d client certificates (SHA-256):", len(list)))
				for _, c := range list {
					line := c.Fingerprint + ", added " + c.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")
					if c.Fingerprint == current {
						line += " (this connection)"
					}
					reply(line)
				}
			}
		})
	case sub == "ADD" && len(words) <= 2:
		if !a.secure() {
			reply("Not over this connection: it is neither TLS nor from this machine, so what you send could be changed on the way. Connect with TLS and try again.")
			return
		}
		fp := current
		if len(words) == 2 {
			var ok bool
			if fp, ok = normalizeCertFP(words[1]); !ok {
				reply(fmt.Sprintf("%q is not a SHA-256 fingerprint: 64 hexadecimal digits, colons allowed.", words[1]))
				return
			}
		} else if fp == "" {
			reply("Your connection has no TLS client certificate: connect over TLS with one, or give its SHA-256 fingerprint.")
			return
		}
		s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
			added, err := addCertFP(ctx, st, user, fp)
			return func() {
				switch {
				case errors.Is(err, store.ErrCertTaken):
					reply("That certificate logs in to another account already; each certificate is for one account.")
				case errors.Is(err, errTooManyCertFPs):
					reply(fmt.Sprintf("Your account has %d client certificates already; CERTFP DEL one first.", maxCertFPs))
				case err != nil:
					s.log.Error("could not add the client certificate", "err", err)
					reply("Could not add it: the gateway's database failed.")
				case !added:
					reply(fmt.Sprintf("The certificate %s is registered already.", fp))
				default:
					reply(fmt.Sprintf("The certificate %s now logs you in as %s by SASL EXTERNAL, over TLS.", fp, user))
				}
			}
		})
	case (sub == "DEL" || sub == "DELETE") && len(words) == 2:
		fp, ok := normalizeCertFP(words[1])
		if !ok {
			reply(fmt.Sprintf("%q is not a SHA-256 fingerprint: 64 hexadecimal digits, colons allowed.", words[1]))
			return
		}
		s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
			err := st.DeleteCertFP(ctx, user, fp)
			return func() {
				switch {
				case errors.Is(err, store.ErrNotFound):
					reply(fmt.Sprintf("Your account has no certificate %s (CERTFP LIST shows them).", fp))
				case err != nil:
					s.log.Error("could not delete the client certificate", "err", err)
					reply("Could not remove it: the gateway's database failed.")
				default:
					reply(fmt.Sprintf("The certificate %s no longer logs you in.", fp))
				}
			}
		})
	default:
		reply(usage)
	}
}

var errTooManyCertFPs = errors.New("too many client certificates")

// addCertFP registers fp for user, at most maxCertFPs per account.
// Request worker.
func addCertFP(ctx context.Context, st store.Store, user id.UserID, fp string) (bool, error) {
	list, err := st.CertFPs(ctx, user)
	if err != nil {
		return false, err
	}
	for _, c := range list {
		if c.Fingerprint == fp {
			return false, nil
		}
	}
	if len(list) >= maxCertFPs {
		return false, errTooManyCertFPs
	}
	return st.AddCertFP(ctx, user, fp)
}
