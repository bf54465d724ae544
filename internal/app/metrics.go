package app

import (
	"context"
	"errors"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/metrics"
)

// newMetrics makes the metrics s's metrics section asks for and hooks
// them into the bastion's config; without the section nothing is
// counted.
func (a *App) newMetrics(s *config.Config, bc *bastion.Config) {
	if s.Metrics == nil {
		return
	}
	a.metrics = metrics.New()
	bc.Metrics = a.metrics
}

// approvalDecided counts c in the metrics if it is a request's final
// state.
func (a *App) approvalDecided(c approval.Change) {
	if a.metrics == nil {
		return
	}
	switch c.Event {
	case approval.StateApproved, approval.StateDenied, approval.StateExpired, approval.StateCancelled, approval.StateAbandoned:
		a.metrics.ApprovalDecided(c.Event)
	}
}

// metricsServer returns the metrics listener, listening, with the
// approvals pending read from broker (if not nil); nil without metrics.
func (a *App) metricsServer(s *config.Config, broker *approval.Broker) (*metrics.Server, error) {
	if a.metrics == nil {
		return nil, nil
	}
	if broker != nil {
		a.metrics.ApprovalsPending(func() int { return len(broker.List(context.Background(), false)) })
	}
	return metrics.Listen(s.Metrics.Listen, a.metrics.Handler(a.ready), a.log.With("component", "metrics"))
}

// ready says why the bastion should get no new sessions, nil when it
// should: Run is serving, not draining (SetDraining, or the end's drain
// of the sessions), and the index is open (it is closed only once the end
// has begun).
func (a *App) ready() error {
	switch {
	case a.draining.Load():
		return errors.New("draining sessions")
	case a.stopping.Load():
		return errors.New("shutting down")
	case !a.running.Load():
		return errors.New("starting")
	}
	return nil
}

// SetDraining marks the bastion as draining (or no longer): /readyz then
// answers 503 so that a load balancer sends new sessions elsewhere.
// Safe for concurrent use.
func (a *App) SetDraining(on bool) { a.draining.Store(on) }

// Metrics is the bastion's metrics, nil without a metrics section.
// Refusal points outside the bastion count with ConnRefused.
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// MetricsURL is the metrics listener's base URL, "" without one.
func (a *App) MetricsURL() string {
	if a.metricsSrv == nil {
		return ""
	}
	return a.metricsSrv.URL()
}
