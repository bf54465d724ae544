// Package app assembles Postern from a config and runs it. `postern
// serve`, `postern demo` and the benchmark's bastion children all build
// the bastion with New, so what is measured and demonstrated is what is
// deployed.
//
// New goes in a fixed order: the data directory's lock first (so that a
// second instance on the same directory changes nothing), then the CA
// keys, the servers the caller adds (the demo's target), the session index
// (which seals what a previous run left active), the bastion and its
// listener, the login API's listener (when the config has a login
// section), and the admin socket through which admin commands on the host
// reach the index while the server owns it. Run serves until its context ends (SIGINT or SIGTERM), then
// stops accepting, drains everything under one deadline, closes what is
// left, and releases the lock last.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/api"
	"github.com/postern/postern/approval"
	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/metrics"
	"github.com/postern/postern/recorder"
)

// DefaultDrain is how long Run lets sessions finish after it is told to
// stop, when Config.Drain is zero.
const DefaultDrain = 30 * time.Second

// Config is what New builds from. Settings is required; the zero value of
// every other field is documented.
type Config struct {
	// Settings is the parsed config: listen address, data directory,
	// policy, timeouts, recording, ciphers. New may add to its policy
	// through Extra.
	Settings *config.Config
	// Log receives the bastion's log and audit records; nil discards
	// them. NewLogger makes the one serve uses.
	Log *slog.Logger
	// NoRecord turns session recording off: no index is opened. Only the
	// benchmark's postern-plain and postern-norec bastions use it.
	NoRecord bool
	// Drain bounds how long Run waits for sessions to end once its
	// context is done, before it closes them; 0 means DefaultDrain.
	Drain time.Duration
	// Extra, if set, runs once the data directory is locked and its keys
	// are open, before the bastion is built. It may add targets and rules
	// to settings and returns servers that run beside the bastion (the
	// demo's target). The App owns them from then on: they are shut down
	// after the bastion has drained, and also if New fails later.
	Extra func(auth *certs.Authority, settings *config.Config) ([]Server, error)
}

// Server is one of the servers an App runs. Serve runs until Shutdown
// (and then returns nil) or until it fails; its context carries values
// and is cancelled only after every Shutdown has returned. Shutdown stops
// accepting, waits until what is in flight ends or ctx is done, then
// closes what is left, and returns once Serve's work has ended.
type Server interface {
	Serve(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// App is an assembled bastion. Run it, or Close it if it will not run.
// Its exported fields are set by New and must not be changed.
type App struct {
	Auth    *certs.Authority
	Store   *recorder.Local // nil with NoRecord
	Bastion *bastion.Server

	log     *slog.Logger
	drain   time.Duration
	addr    net.Addr
	login   *api.Server // nil without a login section
	lock    *DirLock
	servers []named // in shutdown order: the bastion first

	stopping atomic.Bool // set when the end begins
	running  atomic.Bool // set when Run starts the servers
	draining atomic.Bool // SetDraining

	metrics    *metrics.Metrics // nil without a metrics section
	metricsSrv *metrics.Server  // nil without a metrics section
	// hurry is done when the drain must end now (Hurry: a second
	// signal); reload is what Reload needs (reload.go).
	hurry    context.Context
	hurryNow context.CancelFunc
	reload   reloadState
	once     sync.Once // guards the end: shutdown, store, lock
	closeErr error
}

// named is a server and what to call it in errors.
type named struct {
	name string
	Server
}

// New assembles the bastion cfg describes and makes it listen; see the
// package comment for the order. A data directory held by another
// instance gives an *InUseError and changes nothing. On an error, New
// undoes what it did.
func New(cfg Config) (_ *App, err error) {
	s := cfg.Settings
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckDir(s.DataDir); err != nil {
		return nil, err
	}
	lock, err := Lock(s.DataDir)
	if err != nil {
		return nil, err
	}
	a := &App{lock: lock, log: log, drain: cfg.Drain, reload: reloadState{settings: s, fixed: cfg.Extra != nil}}
	a.hurry, a.hurryNow = context.WithCancel(context.Background())
	if a.drain <= 0 {
		a.drain = DefaultDrain
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.Auth, err = certs.Open(s.DataDir); err != nil {
		return nil, err
	}
	extra, err := a.extraServers(cfg)
	if err != nil {
		return nil, err
	}
	if !cfg.NoRecord {
		if a.Store, err = openStore(context.Background(), a.Auth, s.DataDir, log); err != nil {
			return nil, err
		}
	}
	var store recorder.Store // a nil interface, not a nil *Local, turns recording off
	if a.Store != nil {
		store = a.Store
	}
	bc := s.Bastion(a.Auth, store, log)
	a.newMetrics(s, &bc)
	if bc.Revocations, err = loadRevocations(context.Background(), a.Store, log); err != nil {
		return nil, err
	}
	if extra, err = a.approvals(s, &bc, extra); err != nil {
		return nil, err
	}
	if a.Bastion, err = bastion.New(bc); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", s.Listen)
	if err != nil {
		a.Bastion.Close()
		return nil, fmt.Errorf("listen on %s: %w", s.Listen, err)
	}
	a.addr = l.Addr()
	a.servers = append([]named{{"ssh", &sshServer{srv: a.Bastion, l: l, log: log, drain: a.drain}}}, extra...)
	// The login API listens before the admin socket, which nothing
	// after it may fail; it is shut down after the bastion and the
	// admin socket.
	if a.login, err = a.loginServer(s, &bc, log); err != nil {
		return nil, err
	}
	if a.login != nil {
		a.servers = slices.Insert(a.servers, 1, named{"login API", a.login})
	}
	// The metrics listener is shut down last: scrapes and /readyz
	// answer while sessions drain.
	if a.metricsSrv, err = a.metricsServer(s, bc.Approvals); err != nil {
		return nil, err
	}
	if a.metricsSrv != nil {
		a.servers = append(a.servers, named{"metrics", a.metricsSrv})
	}
	if store != nil {
		// The admin socket comes right after the bastion, so that it
		// still answers admin commands while sessions drain.
		srv, err := a.adminSocket(s, store)
		if err != nil {
			return nil, err
		}
		a.servers = slices.Insert(a.servers, 1, named{"admin socket", srv})
	}
	log.Info("postern listening", "addr", a.addr.String(), "data_dir", s.DataDir,
		"host_key", ssh.FingerprintSHA256(a.Auth.HostKey.PublicKey()), "targets", len(s.Policy.Targets),
		"revocations", bc.Revocations.Len())
	return a, nil
}

// extraServers starts cfg's extra servers (the demo's target). They are
// closed if New fails from here on.
func (a *App) extraServers(cfg Config) ([]named, error) {
	if cfg.Extra == nil {
		return nil, nil
	}
	srvs, err := cfg.Extra(a.Auth, cfg.Settings)
	var extra []named
	for i, srv := range srvs {
		extra = append(extra, named{fmt.Sprintf("server %d", i+1), srv})
	}
	a.servers = extra
	return extra, err
}

// adminSocket makes the admin socket of s's data directory, serving
// store. The server applies its own retention to prunes asked through the
// socket, and logs what is done through it; revocations through it apply
// to the running bastion at once (live connections end, new ones are
// refused).
func (a *App) adminSocket(s *config.Config, store recorder.Store) (Server, error) {
	asrv, err := adminsock.New(adminsock.Config{Store: store, Log: a.log,
		Retention: time.Duration(s.Recording.RetentionDays) * 24 * time.Hour,
		Revoke:    func(r recorder.Revocation) int { return a.Bastion.Revoke(certRevocation(r)) }})
	if err != nil {
		return nil, err
	}
	sl, err := asrv.Listen(s.DataDir)
	if err != nil {
		return nil, err
	}
	return UntilCancel(func(ctx context.Context) error { return asrv.Serve(ctx, sl) }), nil
}

// Addr is the address the bastion listens on.
func (a *App) Addr() net.Addr { return a.addr }

// Run serves until ctx is done or a server fails. Then it stops every
// server from accepting and drains them in order (the bastion's sessions
// first, then the servers Extra added) under one deadline, closes what is
// left, closes the index and releases the data directory's lock. It
// returns the failure that stopped it, or nil after ctx. Call it once.
func (a *App) Run(ctx context.Context) error {
	base, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	errc := make(chan error, len(a.servers))
	var wg sync.WaitGroup
	a.running.Store(true)
	for _, s := range a.servers {
		wg.Go(func() {
			err := s.Serve(base)
			if err == nil && !a.stopping.Load() {
				err = errors.New("stopped on its own")
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", s.name, err)
			}
			errc <- err
		})
	}
	var err error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down; draining sessions", "deadline", a.drain.String())
	case err = <-errc:
		a.log.Error("shutting down", "err", err)
	}
	closeErr := a.end(context.WithoutCancel(ctx))
	cancel(errors.New("postern: the bastion stopped"))
	wg.Wait()
	return errors.Join(err, closeErr)
}

// Close ends an App that is not running: it closes every server at once,
// the index and the lock. Run does this itself. It is idempotent.
func (a *App) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return a.end(ctx)
}

// end shuts the servers down in order under one drain deadline that
// starts now, then closes the index and releases the lock. Only the
// first call does anything; the others return its result.
func (a *App) end(parent context.Context) error {
	a.once.Do(func() {
		// /readyz says "draining sessions" while the bastion's sessions
		// (the first server) drain, "shutting down" after.
		a.draining.Store(true)
		a.stopping.Store(true)
		ctx, cancel := context.WithTimeout(parent, a.drain)
		defer cancel()
		defer context.AfterFunc(a.hurry, cancel)()
		var errs []error
		for _, s := range a.servers {
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shut down %s: %w", s.name, err))
			}
			if s.name == "ssh" {
				a.draining.Store(false)
			}
		}
		errs = append(errs, closeStore(a.Store), a.lock.Close())
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// newBroker returns the approval broker on st's index, where requests and
// decisions are kept, sealed in the audit chain; nil without an index. New
// requests also go to webhook, if not nil; every change to observe.
func newBroker(st *recorder.Local, webhook *approval.Webhook, observe func(approval.Change), log *slog.Logger) (*approval.Broker, error) {
	if st == nil {
		return nil, nil
	}
	auditChange := bastion.ApprovalAudit(log)
	return approval.NewBroker(context.Background(), approval.BrokerConfig{
		Store: bastion.ApprovalStore(st, log),
		Audit: func(ctx context.Context, c approval.Change) error {
			if webhook != nil {
				webhook.Notify(c)
			}
			observe(c)
			return auditChange(ctx, c)
		}})
}

// approvals gives bc its approval broker, with the webhook s configures
// added to servers, and warns of a host CA without host names.
func (a *App) approvals(s *config.Config, bc *bastion.Config, servers []named) ([]named, error) {
	log := a.log
	if a.Auth.HostCA != nil && len(bc.HostNames) == 0 {
		log.Warn("the data directory has a host CA but the config names no host_names (and listens on every address): the bastion presents no host certificate")
	}
	var webhook *approval.Webhook
	if s.ApprovalWebhook != "" {
		webhook = approval.NewWebhook(s.ApprovalWebhook, 0, log.With("component", "approval-webhook"))
		servers = append(servers, named{"approval webhook", UntilCancel(webhook.Run)})
	}
	var err error
	bc.Approvals, err = newBroker(a.Store, webhook, a.approvalDecided, log)
	return servers, err
}
