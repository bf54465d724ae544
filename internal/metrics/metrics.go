// Package metrics exports the bastion's counts to Prometheus: it
// implements bastion.Metrics on a private registry (with the Go runtime
// and process collectors), and serves /metrics, /healthz and /readyz on a
// listener of its own (server.go). Every name starts with postern_ and
// says its unit (_seconds, _bytes_total); labels take values from fixed
// sets only, never from client input.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label values known in advance, exported at zero from the start so that
// a dashboard's rate() has a series before the first event. The bastion's
// own constants are repeated here (this package does not import it); a
// reason not listed still counts, as a new series.
var (
	refusedReasons = []string{"key_exchange", "auth", "target_unreachable", "shutting_down"}
	authReasons    = []string{"no_certificate", "certificate", "denied"}
	decidedStates  = []string{"approved", "denied", "expired", "cancelled", "abandoned"}
	limitActions   = [][2]string{
		{"max_startups", "refused"}, {"max_startups", "ended"}, {"max_startups_per_source", "refused"}, {"auth_failures", "refused"},
		{"max_connections", "refused"}, {"max_connections_per_identity", "refused"}, {"max_channels_per_connection", "refused"},
		{"max_session_duration", "warned"}, {"max_session_duration", "ended"},
		{"recording_max_size", "ended"}, {"recording_max_size", "recording_stopped"},
		{"min_free_disk", "refused"}, {"min_free_disk", "ended"}, {"min_free_disk", "recording_stopped"},
	}
)

// handshakeBuckets spread from a loopback handshake (a few ms) to
// OpenSSH's LoginGraceTime (2 minutes; Postern's default is 30 s).
var handshakeBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// Metrics holds the bastion's metrics on a private registry. It
// implements bastion.Metrics; its methods are safe for concurrent use. Use
// New; the zero value is not usable.
type Metrics struct {
	reg *prometheus.Registry

	accepted       prometheus.Counter
	refused        *prometheus.CounterVec
	handshakeOK    prometheus.Observer
	handshakeFail  prometheus.Observer
	authFailed     *prometheus.CounterVec
	sessionsActive prometheus.Gauge
	sessions       prometheus.Counter
	toTarget       prometheus.Counter
	toClient       prometheus.Counter
	pans           prometheus.Counter
	recErrors      prometheus.Counter
	decided        *prometheus.CounterVec
	limits         *prometheus.CounterVec
}

// New returns the metrics on a new registry that also has the Go
// runtime's and the process's collectors (go_goroutines,
// process_resident_memory_bytes, ...).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{reg}
	handshake := f.histogramVec("postern_handshake_duration_seconds",
		"Time from accepting an SSH connection to the end of its authentication, by result (ok, failed).", "result")
	m := &Metrics{
		reg:      reg,
		accepted: f.counter("postern_connections_accepted_total", "SSH connections accepted."),
		refused: f.counterVec("postern_connections_refused_total",
			"SSH connections refused before becoming a session, or whose target could not be reached, by reason.", "reason"),
		handshakeOK:   handshake.WithLabelValues("ok"),
		handshakeFail: handshake.WithLabelValues("failed"),
		authFailed: f.counterVec("postern_auth_failures_total",
			"SSH authentications that failed after key exchange, by reason (no_certificate, certificate, denied).", "reason"),
		sessionsActive: f.gauge("postern_sessions_active", "Authenticated SSH connections open now."),
		sessions:       f.counter("postern_sessions_total", "Authenticated SSH connections since start."),
		pans:           f.counter("postern_pans_masked_total", "Card numbers masked in channels that ended."),
		recErrors:      f.counter("postern_recording_errors_total", "Recordings that could not be begun, written or sealed."),
		decided: f.counterVec("postern_approvals_decided_total",
			"Approval requests that reached a final state, by state.", "state"),
		limits: f.counterVec("postern_limits_reached_total",
			"Limits that refused or ended something, by limit (its config key) and action (refused, ended, recording_stopped, warned).", "limit", "action"),
	}
	bytes := f.counterVec("postern_channel_bytes_total",
		"Channel data passed through the bastion, by direction (to_target, to_client): session channels as they pass, forwards when they end.", "direction")
	m.toTarget, m.toClient = bytes.WithLabelValues("to_target"), bytes.WithLabelValues("to_client")
	for _, r := range refusedReasons {
		m.refused.WithLabelValues(r)
	}
	for _, r := range authReasons {
		m.authFailed.WithLabelValues(r)
	}
	for _, s := range decidedStates {
		m.decided.WithLabelValues(s)
	}
	for _, la := range limitActions {
		m.limits.WithLabelValues(la[0], la[1])
	}
	return m
}

// Registry is where the metrics are registered; more may be added.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ConnAccepted implements bastion.Metrics.
func (m *Metrics) ConnAccepted() { m.accepted.Inc() }

// ConnRefused counts a connection refused for reason, a short snake_case
// word from a fixed set (it is a label value).
func (m *Metrics) ConnRefused(reason string) { m.refused.WithLabelValues(reason).Inc() }

// Handshake implements bastion.Metrics.
func (m *Metrics) Handshake(d time.Duration, ok bool) {
	if ok {
		m.handshakeOK.Observe(d.Seconds())
		return
	}
	m.handshakeFail.Observe(d.Seconds())
}

// AuthFailed implements bastion.Metrics.
func (m *Metrics) AuthFailed(reason string) { m.authFailed.WithLabelValues(reason).Inc() }

// SessionStarted implements bastion.Metrics.
func (m *Metrics) SessionStarted() { m.sessions.Inc(); m.sessionsActive.Inc() }

// SessionEnded implements bastion.Metrics.
func (m *Metrics) SessionEnded() { m.sessionsActive.Dec() }

// Bytes implements bastion.Metrics.
func (m *Metrics) Bytes(toTarget bool, n int64) {
	if toTarget {
		m.toTarget.Add(float64(n))
		return
	}
	m.toClient.Add(float64(n))
}

// PANsMasked implements bastion.Metrics.
func (m *Metrics) PANsMasked(n int64) {
	if n > 0 {
		m.pans.Add(float64(n))
	}
}

// RecordingError implements bastion.Metrics.
func (m *Metrics) RecordingError() { m.recErrors.Inc() }

// LimitReached implements bastion.Metrics.
func (m *Metrics) LimitReached(limit, action string) { m.limits.WithLabelValues(limit, action).Inc() }

// ApprovalDecided counts an approval request that reached the final
// state (approved, denied, expired, cancelled, abandoned).
func (m *Metrics) ApprovalDecided(state string) { m.decided.WithLabelValues(state).Inc() }

// ApprovalsPending exports postern_approvals_pending, read from pending
// at each scrape. Call it at most once.
func (m *Metrics) ApprovalsPending(pending func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postern_approvals_pending", Help: "Approval requests waiting for a decision.",
	}, func() float64 { return float64(pending()) }))
}

// factory makes metrics registered on reg.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogramVec(name, help, label string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: handshakeBuckets}, []string{label})
	f.reg.MustRegister(h)
	return h
}
