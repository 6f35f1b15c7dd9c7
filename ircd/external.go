package ircd

import (
	"strings"

	"gopkg.in/irc.v4"
)

// SASL EXTERNAL logs a client in by the TLS client certificate it
// presented, whose fingerprint the account registered (the service's
// CERTFP ADD). ircd knows no TLS: Config.ClientCert says whether a
// connection can carry a certificate and which one it carries. EXTERNAL is
// offered only where it can work, on connections that can carry one.

// CertFP is the fingerprint of the TLS client certificate the client
// presented, "" if none (or the connection is not TLS). Any goroutine.
func (c *Conn) CertFP() string {
	if c.srv.cfg.ClientCert == nil {
		return ""
	}
	fp, _ := c.srv.cfg.ClientCert(c.nc)
	return fp
}

// externalOffered says whether SASL EXTERNAL can work on this connection.
func (c *Conn) externalOffered() bool {
	if c.srv.cfg.ClientCert == nil {
		return false
	}
	_, ok := c.srv.cfg.ClientCert(c.nc)
	return ok
}

// saslMechs is the value of the sasl capability and of RPL_SASLMECHS.
func (c *Conn) saslMechs() string {
	if c.externalOffered() {
		return "PLAIN,EXTERNAL"
	}
	return "PLAIN"
}

// saslExternal logs in with the connection's client certificate, for the
// account authzid names ("" for the certificate's own). It replies to a
// failure itself; an unknown certificate counts as a failed login.
// Reader goroutine.
func (c *Conn) saslExternal(authzid string) bool {
	fp := c.CertFP()
	if fp == "" {
		c.replyNumeric(irc.ERR_SASLFAIL, "SASL authentication failed: your connection has no TLS client certificate")
		return false
	}
	msg, ok := c.tryLoginRequest(LoginRequest{Account: strings.TrimSpace(authzid), CertFP: fp})
	switch {
	case ok:
		return true
	case msg == msgInvalidCredentials:
		msg = "SASL authentication failed: this client certificate is not registered for that account (log in otherwise, then CERTFP ADD)"
	}
	c.replyNumeric(irc.ERR_SASLFAIL, msg)
	return false
}
