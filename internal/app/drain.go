package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/postern/postern/bastion"
)

// drainLogEvery is how often a drain logs what it still waits for.
const drainLogEvery = 5 * time.Second

// drainNotice is what each open session is shown when the bastion starts
// to drain.
func drainNotice(d time.Duration) string {
	return fmt.Sprintf("postern: the bastion is shutting down; this session will be closed within %s: finish your work and log out", d.Round(time.Second))
}

// Hurry ends a drain now: the sessions left are closed at once (their
// recordings sealed), as at the drain's deadline. `serve` calls it on a
// second SIGTERM or SIGINT. Before Run's end began it only marks the end
// to come as immediate. It is idempotent and safe for concurrent use.
func (a *App) Hurry() {
	if a.hurry.Err() == nil {
		a.log.Warn("second stop signal: closing the sessions left now")
	}
	a.hurryNow()
}

// logWaiting logs the connections srv still has, at once and then every
// drainLogEvery, until the returned function is called (which waits for
// the logger) or ctx is done.
func logWaiting(ctx context.Context, srv *bastion.Server, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(drainLogEvery)
		defer t.Stop()
		for {
			live := srv.Live()
			if len(live) == 0 {
				return
			}
			deadline, _ := ctx.Deadline()
			log.Info("draining: waiting for connections to end", "connections", len(live),
				"left", time.Until(deadline).Round(time.Second).String(), "sessions", describeLive(live))
			select {
			case <-t.C:
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// describeLive is one short string per connection: "ID user@target as
// login (N channels)".
func describeLive(live []bastion.LiveConn) []string {
	out := make([]string, 0, len(live))
	for _, c := range live {
		var who string
		switch {
		case c.User == "":
			who = "handshake from " + c.Client
		case c.Admin:
			who = c.User + " (admin connection)"
		default:
			who = c.User + "@" + c.Target + " as " + c.Login
		}
		out = append(out, fmt.Sprintf("%s %s (%d channels)", c.ID, who, c.Channels))
	}
	return out
}
