package metrics

import (
	"net/http"
	"strconv"
	"time"
)

// Transport wraps the transport of the HTTP client the sessions talk to
// the homeserver with, timing each request and counting the failed ones
// by endpoint template (see Endpoint). A request its caller cancelled (a
// session stopping, a long-poll cut short) is neither timed nor counted:
// it says nothing about the homeserver.
func (m *Metrics) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{m: m, next: next}
}

type transport struct {
	m    *Metrics
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if req.Context().Err() != nil {
		return resp, err
	}
	endpoint := Endpoint(req.URL.EscapedPath())
	method := normaliseMethod(req.Method)
	t.m.hsDuration.WithLabelValues(endpoint, method).Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		t.m.hsErrors.WithLabelValues(endpoint, method, "network").Inc()
	case resp.StatusCode >= 400 && resp.StatusCode < 600:
		t.m.hsErrors.WithLabelValues(endpoint, method, strconv.Itoa(resp.StatusCode)).Inc()
	case resp.StatusCode >= 600:
		t.m.hsErrors.WithLabelValues(endpoint, method, "other").Inc()
	}
	return resp, err
}

// normaliseMethod keeps the method label to the methods the Matrix APIs use.
func normaliseMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}
