package bastion

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// monitor sends keepalives and enforces the idle timeout and the maximum
// session duration (sessionlimits.go) until ctx ends.
func (c *conn) monitor(ctx context.Context, sc *ssh.ServerConn) {
	var limits sync.WaitGroup
	defer limits.Wait()
	start := time.Now()
	limits.Go(func() { c.watchDuration(ctx, start) })
	cfg := c.s.cfg
	if cfg.KeepAliveInterval == 0 && cfg.IdleTimeout == 0 {
		return
	}
	tick := time.Second
	if cfg.KeepAliveInterval > 0 {
		tick = min(tick, cfg.KeepAliveInterval)
	}
	if cfg.IdleTimeout > 0 {
		tick = min(tick, max(cfg.IdleTimeout/4, 10*time.Millisecond))
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	// A probe's SendRequest blocks until the reply and returns when the
	// connection closes; monitor waits for it, and every path out of
	// monitor follows or causes the close.
	var probes sync.WaitGroup
	defer probes.Wait()
	var probing atomic.Bool
	var lastProbe time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if cfg.IdleTimeout > 0 && now.Sub(time.Unix(0, c.lastActive.Load())) >= cfg.IdleTimeout {
				c.log.Info("idle timeout", "idle_timeout", cfg.IdleTimeout.String())
				c.terminate(endCause(fmt.Sprintf("postern: connection idle for %s; closing", cfg.IdleTimeout)))
				return
			}
			if cfg.KeepAliveInterval == 0 {
				continue
			}
			// One probe is in flight at a time; one unanswered for
			// KeepAliveMax intervals means that many were missed.
			if probing.Load() && now.Sub(lastProbe) > cfg.KeepAliveInterval*time.Duration(cfg.KeepAliveMax) {
				c.log.Info("keepalive timeout", "missed", cfg.KeepAliveMax)
				c.terminate(endCause("postern: client stopped answering keepalives"))
				return
			}
			if now.Sub(lastProbe) >= cfg.KeepAliveInterval && probing.CompareAndSwap(false, true) {
				lastProbe = now
				probes.Go(func() {
					defer probing.Store(false)
					if _, _, err := sc.SendRequest("keepalive@openssh.com", true, nil); err == nil {
						c.log.Debug("keepalive answered")
					}
				})
			}
		}
	}
}

func (c *conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }
