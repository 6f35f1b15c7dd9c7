package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"maunium.net/go/mautrix"
)

// plainError says in words an IRC user understands what went wrong with a
// request to the homeserver, without the homeserver's internal URL, the
// request's query (sync filters, tokens) or Go's error chain: those go to
// the log, not to users. Errors of the gateway's own making are shown as
// they are.
func plainError(err error) string {
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) {
		if httpErr.RespError != nil && httpErr.RespError.Err != "" {
			return httpErr.RespError.Err
		}
		if httpErr.Response != nil {
			code := httpErr.Response.StatusCode
			return fmt.Sprintf("the homeserver answered %d %s", code, http.StatusText(code))
		}
	}
	var urlErr *url.Error
	if !errors.As(err, &httpErr) && !errors.As(err, &urlErr) && !errors.Is(err, context.DeadlineExceeded) {
		// One of the gateway's own errors, written for users.
		return err.Error()
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "the request was cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return "the homeserver did not answer in time"
	case errors.As(err, &dnsErr):
		return "the homeserver's name could not be resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the homeserver refused the connection"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "the connection to the homeserver was cut"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "there is no route to the homeserver"
	case errors.As(err, &certErr), errors.As(err, &unknownAuthority), errors.As(err, &hostnameErr):
		return "the homeserver's TLS certificate is not valid"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "the homeserver did not answer in time"
	case errors.As(err, &netErr):
		return "a network error"
	}
	return "the homeserver could not be reached"
}
