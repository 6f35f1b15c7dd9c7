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
	"regexp"
	"strconv"
	"strings"
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
			if have, need, ok := powerRefusal(err); ok {
				return fmt.Sprintf("it needs power level %d; you have %d", need, have)
			}
			text, _ := eventAuthText(httpErr.RespError.Err)
			return text
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

// Power refusals. Dendrite explains a refused event in its event auth's
// words ("eventauth: sender \"@alice:example.org\" is not allowed to send
// event. 0 < 50"), Synapse in its own ("user_level (0) < send_level
// (50)"). Users are told the levels in plain words; the rest goes to the
// log.
var (
	// "... 0 < 50" (send, redact) and Synapse's "user_level (0) < send_level (50)".
	levelBelow = regexp.MustCompile(`(-?\d+)\)? < (?:[a-z_]+ )?\(?(-?\d+)\)?\s*$`)
	// "sender has insufficient power to kick (sender level 0, target level 0, kick level 50)".
	levelFor = regexp.MustCompile(`sender level (-?\d+),.* (?:ban|kick|invite) level (-?\d+)\)`)
	// "sender with level 0 is not allowed to change level from 0 to 100 because ...".
	levelChange = regexp.MustCompile(`with level (-?\d+) is not allowed to change .*level from (-?\d+) to (-?\d+)`)
)

// powerRefusal says, for a homeserver's refusal for lack of power, what the
// user has and what the action needs; ok is false for any other error.
func powerRefusal(err error) (have, need int, ok bool) {
	var httpErr mautrix.HTTPError
	if !errors.Is(err, mautrix.MForbidden) || !errors.As(err, &httpErr) || httpErr.RespError == nil {
		return 0, 0, false
	}
	text := httpErr.RespError.Err
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	if m := levelFor.FindStringSubmatch(text); m != nil {
		return atoi(m[1]), atoi(m[2]), true
	}
	if m := levelChange.FindStringSubmatch(text); m != nil {
		// Setting a level above your own, or changing one that is.
		return atoi(m[1]), max(atoi(m[2]), atoi(m[3])), true
	}
	if m := levelBelow.FindStringSubmatch(text); m != nil {
		return atoi(m[1]), atoi(m[2]), true
	}
	return 0, 0, false
}

// forbiddenText is how a refusal to do what (an infinitive: "change the
// topic") reads to a person: the power levels when the homeserver gave
// them, otherwise its reason without the event auth's internals.
func forbiddenText(what string, err error) string {
	if have, need, ok := powerRefusal(err); ok {
		return fmt.Sprintf("You need power level %d to %s; you have %d", need, what, have)
	}
	return "You're not allowed to " + what + ": " + matrixErrorText(err)
}

// eventAuthText turns the rest of Dendrite's event auth refusals into a
// sentence without Matrix IDs and internals.
func eventAuthText(text string) (string, bool) {
	rest, ok := strings.CutPrefix(text, "eventauth: ")
	if !ok {
		return text, false
	}
	switch {
	case strings.Contains(rest, "membership"):
		return "the room's membership rules do not allow it", true
	case strings.Contains(rest, "level"), strings.Contains(rest, "not allowed"):
		return "your power level in the room does not allow it", true
	}
	return "the room's rules do not allow it", true
}

// logRefusal keeps the homeserver's own words for a refusal, which users
// read only as forbiddenText. Owner goroutine.
func (s *Session) logRefusal(command string, err error) {
	s.log.Info("the homeserver refused", "command", command, "err", err)
}
