// Package metrics exports what an operator watches of a running gateway in
// Prometheus's format. Each gateway has a registry of its own (tests run
// several gateways in one process, and nothing here touches the global
// default registry). Values the gateway already keeps (session and
// connection counts, the session's and the IRC side's counters) are read
// when Prometheus scrapes; only what has no home elsewhere (homeserver and
// store latencies, login failures) is kept here.
package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// SessionStates counts the Matrix sessions by how far they have come.
type SessionStates struct {
	// Starting sessions wait for their turn to make their first sync.
	Starting int
	// Syncing sessions are making their first sync.
	Syncing int
	// Live sessions have applied their first sync and follow the homeserver.
	Live int
}

// Sources are where the values others keep are read, on every scrape,
// from the scraping goroutine. A nil source leaves its metric out.
type Sources struct {
	Sessions           func() SessionStates
	AttachedClients    func() int // IRC clients attached to a Matrix session
	Lurkers            func() int // connections reading as guests
	Connections        func() int // open IRC connections, logged in or not
	MessagesToMatrix   func() uint64
	MessagesFromMatrix func() uint64
	SendQDrops         func() uint64
}

// Metrics is one gateway's registry and the instruments kept here.
type Metrics struct {
	reg           *prometheus.Registry
	hsDuration    *prometheus.HistogramVec
	hsErrors      *prometheus.CounterVec
	storeDuration *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
}

// Login failure reasons (the values of mxircd_login_failures_total's
// reason label).
const (
	// LoginInvalid is a wrong account or password.
	LoginInvalid = "invalid_credentials"
	// LoginError is anything else: the homeserver unreachable or refusing.
	LoginError = "error"
)

// latencyBuckets reach past a /sync long-poll (30 s by default).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// storeBuckets are finer: a store call is local and usually quick.
var storeBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// New makes a registry with the gateway's own instruments and Go's runtime
// and process statistics; Watch adds what others keep.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		hsDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mxircd_homeserver_request_duration_seconds",
			Help:    "Time until the homeserver's response headers came (a /sync includes its long-poll), by endpoint template and method.",
			Buckets: latencyBuckets,
		}, []string{"endpoint", "method"}),
		hsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxircd_homeserver_request_errors_total",
			Help: "Homeserver requests that failed, by endpoint template, method and reason (the HTTP status, or \"network\" when no answer came).",
		}, []string{"endpoint", "method", "reason"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mxircd_store_duration_seconds",
			Help:    "Time of a call to the gateway's database, by store operation.",
			Buckets: storeBuckets,
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxircd_store_errors_total",
			Help: "Calls to the gateway's database that failed (not counting \"not found\"), by store operation.",
		}, []string{"op"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxircd_login_failures_total",
			Help: "IRC logins that failed, by reason: invalid_credentials, or error (the homeserver unreachable or refusing).",
		}, []string{"reason"}),
	}
	m.loginFailures.WithLabelValues(LoginInvalid)
	m.loginFailures.WithLabelValues(LoginError)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.hsDuration, m.hsErrors, m.storeDuration, m.storeErrors, m.loginFailures,
	)
	return m
}

// Watch registers the values read from src on each scrape. Call it once,
// when the parts src reads from exist.
func (m *Metrics) Watch(src Sources) {
	if src.Sessions != nil {
		m.reg.MustRegister(sessionCollector{src.Sessions})
	}
	gauge := func(f func() int, name, help string) {
		if f != nil {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
				func() float64 { return float64(f()) }))
		}
	}
	counter := func(f func() uint64, name, help string) {
		if f != nil {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
				func() float64 { return float64(f()) }))
		}
	}
	gauge(src.AttachedClients, "mxircd_attached_clients", "IRC clients attached to a Matrix session.")
	gauge(src.Lurkers, "mxircd_lurkers", "IRC connections without a login reading public rooms through the guests' shared session.")
	gauge(src.Connections, "mxircd_irc_connections", "Open IRC connections, logged in or not.")
	counter(src.MessagesToMatrix, "mxircd_messages_to_matrix_total", "Messages from IRC clients that the homeserver accepted.")
	counter(src.MessagesFromMatrix, "mxircd_messages_from_matrix_total", "New Matrix messages a session received, counted once per account that received them.")
	counter(src.SendQDrops, "mxircd_sendq_drops_total", "IRC connections closed because their send queue overflowed (SendQ exceeded).")
}

// Handler serves the registry in Prometheus's text format (or OpenMetrics,
// when the scraper asks for it).
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		EnableOpenMetrics: true,
	})
}

// LoginFailed counts one failed IRC login; reason is LoginInvalid or
// LoginError. Any goroutine.
func (m *Metrics) LoginFailed(reason string) {
	if reason != LoginInvalid {
		reason = LoginError
	}
	m.loginFailures.WithLabelValues(reason).Inc()
}

// sessionCollector reports the three session states from one reading, so
// that they add up to the sessions there were at that moment.
type sessionCollector struct{ read func() SessionStates }

var sessionsDesc = prometheus.NewDesc("mxircd_sessions",
	"Matrix sessions by state: starting (waiting to make the first sync), syncing (making it), live.",
	[]string{"state"}, nil)

func (c sessionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sessionsDesc }

func (c sessionCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(s.Starting), "starting")
	ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(s.Syncing), "syncing")
	ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(s.Live), "live")
}
