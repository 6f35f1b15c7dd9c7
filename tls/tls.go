// Package tls configures the server's TLS listeners. The certificate is
// held behind an atomic pointer so an operator can rotate it (for example on
// SIGHUP after a renewal) without restarting the server or dropping the
// connections that were negotiated with the previous certificate.
package tls

import (
	"crypto/sha256"
	stdtls "crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// CertReloader holds the current certificate in an atomic value so SIGHUP
// can swap it without dropping connections.
type CertReloader struct {
	certFile, keyFile string

	// reloadMu orders concurrent reloads so a slow read of older file
	// contents can never overwrite a certificate stored by a later reload.
	reloadMu sync.Mutex
	cert     atomic.Pointer[stdtls.Certificate]
}

// NewCertReloader loads the key pair once so a misconfiguration is reported
// at startup rather than at the first client handshake.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the certificate and key files. On failure the previously
// loaded certificate stays in service: a half-written renewal must not take
// the listener down.
func (r *CertReloader) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	cert, err := stdtls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: loading certificate %q with key %q: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		// Parsed once here so handshakes and diagnostics need not re-parse.
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("tls: parsing certificate %q: %w", r.certFile, err)
		}
		cert.Leaf = leaf
	}
	r.cert.Store(&cert)
	return nil
}

// GetCertificate is consulted on every handshake, which is what lets a
// reload take effect for new connections only.
func (r *CertReloader) GetCertificate(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
	cert := r.cert.Load()
	if cert == nil {
		return nil, errors.New("tls: no certificate loaded")
	}
	return cert, nil
}

// Config returns a fresh server configuration on each call so callers may
// adjust their copy (for example to request client certificates) without
// affecting other listeners. NextProtos stays nil because IRC has no ALPN
// protocol to negotiate.
func (r *CertReloader) Config() *stdtls.Config {
	return &stdtls.Config{
		MinVersion:     stdtls.VersionTLS12,
		GetCertificate: r.GetCertificate,
	}
}

// ClientCertConfig is Config asking clients for a certificate without
// requiring one, and without checking who issued it: a client certificate
// here is a key the user registered (CertFP), not a proof from an
// authority. For IRC listeners only; a browser asked for a certificate
// would prompt its user.
func (r *CertReloader) ClientCertConfig() *stdtls.Config {
	cfg := r.Config()
	cfg.ClientAuth = stdtls.RequestClientCert
	return cfg
}

// ClientFingerprint says whether conn is a TLS connection (so it can carry
// a client certificate), and the Fingerprint of the certificate the
// client presented, "" if none. Any goroutine, once the handshake is done.
func ClientFingerprint(conn net.Conn) (fingerprint string, isTLS bool) {
	tc, ok := conn.(*stdtls.Conn)
	if !ok {
		return "", false
	}
	state := tc.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		return "", true
	}
	return Fingerprint(state.PeerCertificates[0]), true
}

// Listen opens a TCP (or other stream) listener and wraps it in TLS using
// the reloader's configuration.
func Listen(network, addr string, r *CertReloader) (net.Listener, error) {
	if r == nil {
		return nil, errors.New("tls: Listen needs a CertReloader")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return stdtls.NewListener(ln, r.Config()), nil
}

// Fingerprint is the lowercase hex SHA-256 of the DER certificate, the form
// IRC networks conventionally use to identify client certificates (CertFP).
func Fingerprint(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
