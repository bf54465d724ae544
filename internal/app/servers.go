package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/postern/postern/bastion"
)

// sshServer is the bastion on its listener.
type sshServer struct {
	srv   *bastion.Server
	l     net.Listener
	log   *slog.Logger
	drain time.Duration // what the users are told they have left
}

// Serve serves SSH on l until Shutdown.
func (s *sshServer) Serve(ctx context.Context) error {
	// ctx is cancelled only after the drain: cancelling it would cut
	// every session at once (see bastion.Server.Serve).
	if err := s.srv.Serve(ctx, s.l); !errors.Is(err, bastion.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and lets sessions end until ctx is done, then
// closes the rest. Closing sessions at the deadline is how a drain ends,
// not a failure: it is logged.
func (s *sshServer) Shutdown(ctx context.Context) error {
	stop := logWaiting(ctx, s.srv, s.log)
	err := s.srv.Drain(ctx, drainNotice(s.drain))
	stop()
	s.l.Close() // in case Serve never ran
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("drain deadline passed; closed the sessions left")
	} else if errors.Is(err, context.Canceled) {
		s.log.Warn("drain cut short; closed the sessions left")
	} else if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// WithoutDrain makes a Server of a server that cannot drain (the demo's
// target): Serve calls serve, Shutdown calls close at once. Because the
// App shuts such servers down after the bastion has drained, the sessions
// that reach them through the bastion have ended by then.
func WithoutDrain(serve, close func() error) Server { return undrained{serve, close} }

type undrained struct{ serve, close func() error }

func (u undrained) Serve(context.Context) error    { return u.serve() }
func (u undrained) Shutdown(context.Context) error { return u.close() }

// UntilCancel makes a Server of a serve function that runs until its
// context is done (as adminsock.Serve does, draining on its own): Shutdown
// cancels that context and waits for serve to return, or for its own ctx.
// The context serve gets carries Serve's values.
func UntilCancel(serve func(ctx context.Context) error) Server {
	return &untilCancel{serve: serve, done: make(chan struct{})}
}

type untilCancel struct {
	serve func(context.Context) error
	done  chan struct{} // closed when serve returned

	mu      sync.Mutex // guards cancel, stopped and started
	cancel  context.CancelFunc
	stopped bool
	started bool
}

func (u *untilCancel) Serve(ctx context.Context) error {
	u.mu.Lock()
	if u.stopped || u.started {
		u.mu.Unlock()
		return nil
	}
	u.started = true
	ctx, u.cancel = context.WithCancel(ctx)
	u.mu.Unlock()
	defer close(u.done)
	return u.serve(ctx)
}

func (u *untilCancel) Shutdown(ctx context.Context) error {
	u.mu.Lock()
	u.stopped = true
	started := u.started
	if u.cancel != nil {
		u.cancel()
	}
	u.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
	}
	// The shared deadline may have been spent draining the bastion's
	// sessions; a serve function just cancelled still gets a moment to
	// return before it counts as stuck.
	grace := time.NewTimer(time.Second)
	defer grace.Stop()
	select {
	case <-u.done:
		return nil
	case <-grace.C:
		return ctx.Err()
	}
}
