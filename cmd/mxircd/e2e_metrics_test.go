package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// metricsConfig is a gateway's config with /metrics on the [http] listener
// and on the debug listener.
func metricsConfig(t *testing.T, hs *testenv.Homeserver, driver string, onHTTP bool) Config {
	t.Helper()
	return gatewayConfig(t, hs, driver, func(cfg *Config) {
		cfg.HTTP.Listen = "127.0.0.1:0"
		cfg.HTTP.Metrics = onHTTP
		cfg.Debug.Listen = "127.0.0.1:0"
	})
}

// scrape reads url with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return families
}

// sample is the value of the metric of family name whose labels include
// labels (name=value pairs); ok is false when there is none.
func sample(families map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// waitSample scrapes url until the metric reaches at least want.
func waitSample(t *testing.T, url string, want float64, name string, labels ...string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		families := scrape(t, url)
		v, _ := sample(families, name, labels...)
		if v >= want {
			return families
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want at least %v", name, labels, v, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An operator scrapes /metrics: the counters move with what users do, and
// homeserver requests are labelled by endpoint template, never by an ID.
func TestMetrics(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := startTestGateway(t, metricsConfig(t, hs, driver, true))
			public := "http://" + g.mediaLn.Addr().String() + "/metrics"
			debug := "http://" + g.debugLn.Addr().String() + "/metrics"
			alice, bob, room, channel := twoInARoom(t, hs, "metrics")

			// A wrong password, then the right one.
			bad := testenv.DialIRC(t, g.ircAddr())
			bad.Send("PASS %s", alice.Password+"x")
			bad.Send("NICK alice")
			bad.Send("USER %s 0 * :a", alice.UserID)
			bad.Expect(t, irc.ERR_PASSWDMISMATCH)
			bad.ExpectClosed(t)
			c := connect(t, g, "alice", alice)
			c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")
			waitNames(t, c, channel, bob.Localpart)

			c.Send("PRIVMSG %s :hello from irc", channel)
			waitSample(t, public, 1, "mxircd_messages_to_matrix_total")
			before, _ := sample(scrape(t, public), "mxircd_messages_from_matrix_total")
			if _, err := bob.Client.SendMessageEvent(ctxFor(t), room, event.EventMessage,
				&event.MessageEventContent{MsgType: event.MsgText, Body: "hello from matrix"}); err != nil {
				t.Fatal(err)
			}
			expectFrom(t, c, "PRIVMSG", bob.Localpart, "hello from matrix")
			families := waitSample(t, public, before+1, "mxircd_messages_from_matrix_total")

			for _, want := range []struct {
				name   string
				labels []string
				value  float64
			}{
				{"mxircd_sessions", []string{"state", "live"}, 1},
				{"mxircd_sessions", []string{"state", "syncing"}, 0},
				{"mxircd_sessions", []string{"state", "starting"}, 0},
				{"mxircd_attached_clients", nil, 1},
				{"mxircd_irc_connections", nil, 1},
				{"mxircd_login_failures_total", []string{"reason", "invalid_credentials"}, 1},
				{"mxircd_login_failures_total", []string{"reason", "error"}, 0},
				{"mxircd_messages_to_matrix_total", nil, 1},
				{"mxircd_sendq_drops_total", nil, 0},
			} {
				if v, ok := sample(families, want.name, want.labels...); !ok || v != want.value {
					t.Errorf("%s%v = %v (present: %v), want %v", want.name, want.labels, v, ok, want.value)
				}
			}
			for _, want := range []struct {
				name   string
				labels []string
			}{
				{"mxircd_homeserver_request_duration_seconds", []string{"endpoint", "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}", "method", "PUT"}},
				{"mxircd_homeserver_request_duration_seconds", []string{"endpoint", "/_matrix/client/v3/sync", "method", "GET"}},
				{"mxircd_homeserver_request_duration_seconds", []string{"endpoint", "/_matrix/client/v3/login", "method", "POST"}},
				// The wrong password, refused by the homeserver.
				{"mxircd_homeserver_request_errors_total", []string{"endpoint", "/_matrix/client/v3/login", "reason", "403"}},
				{"mxircd_store_duration_seconds", []string{"op", "SaveSync"}},
				{"mxircd_store_duration_seconds", []string{"op", "Account"}},
				{"go_goroutines", nil},
			} {
				if v, ok := sample(families, want.name, want.labels...); !ok || v < 1 {
					t.Errorf("%s%v = %v (present: %v), want at least 1", want.name, want.labels, v, ok)
				}
			}
			for _, name := range []string{"mxircd_homeserver_request_duration_seconds", "mxircd_homeserver_request_errors_total"} {
				for _, m := range families[name].GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() != "endpoint" {
							continue
						}
						if v := l.GetValue(); v != "other" && (!strings.HasPrefix(v, "/") || strings.ContainsAny(v, "!@#$:%")) {
							t.Errorf("%s has endpoint label %q, not a template", name, v)
						}
						for _, id := range []string{alice.UserID.String(), bob.Localpart, room.String()} {
							if strings.Contains(l.GetValue(), id) {
								t.Errorf("%s endpoint label %q holds %q", name, l.GetValue(), id)
							}
						}
					}
				}
			}

			// The loopback debug listener serves the same registry.
			if v, _ := sample(scrape(t, debug), "mxircd_login_failures_total", "reason", "invalid_credentials"); v != 1 {
				t.Errorf("debug /metrics: login failures = %v, want 1", v)
			}

			// Another gateway in the process has a registry of its own, and
			// without http.metrics its public listener serves no metrics.
			other := startTestGateway(t, metricsConfig(t, hs, driver, false))
			if v, _ := sample(scrape(t, "http://"+other.debugLn.Addr().String()+"/metrics"), "mxircd_login_failures_total", "reason", "invalid_credentials"); v != 0 {
				t.Errorf("second gateway: login failures = %v, want its own 0", v)
			}
			resp, err := http.Get("http://" + other.mediaLn.Addr().String() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("/metrics served on the public listener with http.metrics off")
			}
		})
	}
}

// http.metrics needs the listener it is served on.
func TestMetricsConfig(t *testing.T) {
	cfg := defaultConfig()
	cfg.IRC.KeepClientNick = true // the client keeps the nick the test gives it
	cfg.HTTP.Metrics = true
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "http.metrics") {
		t.Fatalf("http.metrics without http.listen: %v", err)
	}
	cfg.HTTP.Listen = "127.0.0.1:8080"
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
}
