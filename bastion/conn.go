package bastion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/audit"
)

// conn is one client connection and, once authorised, its upstream
// connection to the target. Its session ID is on every log line.
type conn struct {
	s      *Server
	id     string
	nc     net.Conn
	log    *slog.Logger
	remote net.Addr

	// Set by the auth callbacks, which x/crypto runs one at a time on the
	// handshake goroutine before NewServerConn returns.
	user         string   // SSH user name asked for
	refusals     []string // why keys or the user were refused, distinct, in order
	offered      int      // keys offered
	bannered     []string // messages already shown
	plainRefused string   // message for a refused plain key, not yet shown
	identity     Identity
	grant        *Grant
	cert         *ssh.Certificate
	admin        bool // user name AdminUser: an admin connection, no grant

	lastActive atomic.Int64  // unix nanos of the last channel data
	chanSeq    atomic.Uint32 // numbers session channels: recording IDs are SESSION-N

	mu       sync.Mutex // guards channels, sc, up, ended
	channels map[ssh.Channel]struct{}
	sc       *ssh.ServerConn
	up       *ssh.Client
	ended    string // why the bastion ended the connection, if it did

	wg sync.WaitGroup // channel goroutines
}

func (s *Server) newConn(nc net.Conn) *conn {
	id := ulid.Make().String()
	return &conn{
		s:        s,
		id:       id,
		nc:       nc,
		remote:   nc.RemoteAddr(),
		log:      s.log.With("session", id, "client", nc.RemoteAddr().String()),
		channels: make(map[ssh.Channel]struct{}),
	}
}

// checkKey is the PublicKeyCallback: it verifies the certificate itself.
// Its message only tells the user about their own certificate.
func (c *conn) checkKey(cm ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	c.offered++
	c.user = cm.User()
	cert, err := c.s.checker.Check(key, cm.RemoteAddr())
	if err != nil {
		var ce *certs.CheckError
		if !errors.As(err, &ce) {
			ce = &certs.CheckError{Reason: err.Error(), Message: "postern: certificate refused"}
		}
		c.refuse(ce.Reason)
		if _, isCert := key.(*ssh.Certificate); !isCert {
			// Clients offer plain keys from agents and ~/.ssh before
			// or after the certificate; a banner for each would be
			// noise on connections that then succeed. The message
			// is shown by lastResort if nothing else works.
			c.plainRefused = ce.UserMessage()
			return nil, err
		}
		return nil, c.banner(err, ce.UserMessage())
	}
	opts := map[string]string{}
	if src, ok := cert.CriticalOptions["source-address"]; ok {
		// x/crypto enforces source-address again on these
		// permissions; it does not trim spaces, the checker does.
		opts["source-address"] = strings.ReplaceAll(src, " ", "")
	}
	perms := &ssh.Permissions{
		CriticalOptions: opts,
		ExtraData:       map[any]any{certKey{}: cert},
	}
	return perms, nil
}

type certKey struct{}

func (c *conn) refuse(reason string) {
	if !slices.Contains(c.refusals, reason) && len(c.refusals) < 8 {
		c.refusals = append(c.refusals, reason)
	}
}

// banner wraps err so that x/crypto shows msg to the client, once per
// connection: a client with several keys in its agent would otherwise see
// the same line for each.
func (c *conn) banner(err error, msg string) error {
	msg = logSafe(msg) // it echoes names from the certificate and the user name
	if slices.Contains(c.bannered, msg) {
		return err
	}
	c.bannered = append(c.bannered, msg)
	return &ssh.BannerError{Err: err, Message: msg + "\r\n"}
}

// lastResort is the keyboard-interactive callback. OpenSSH clients try it
// after every key failed, which makes it the place to say why plain keys
// were refused. It never authenticates anyone.
func (c *conn) lastResort(ssh.ConnMetadata, ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	err := errors.New("keyboard-interactive is not accepted")
	if c.plainRefused != "" {
		return nil, c.banner(err, c.plainRefused)
	}
	if c.offered == 0 {
		c.refuse("no key offered")
		return nil, c.banner(err, "postern: a certificate is required; none was offered")
	}
	return nil, err
}

// authorize is the VerifiedPublicKeyCallback: the client has proved it holds
// the certificate's key, so now the policy decides, and its reason may be
// shown.
func (c *conn) authorize(cm ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
	cert, _ := perms.ExtraData[certKey{}].(*ssh.Certificate)
	if cert == nil {
		return nil, errors.New("internal: certificate missing after verification")
	}
	id := Identity{
		Principals: cert.ValidPrincipals,
		Groups:     certs.Groups(cert),
		KeyID:      cert.KeyId,
		Serial:     cert.Serial,
	}
	if cm.User() == AdminUser { // any valid certificate; each command decides
		c.identity, c.cert, c.admin = id, cert, true
		return perms, nil
	}
	grant, err := c.s.cfg.Policy.Decide(id, cm.User())
	if err != nil {
		var de *DenyError
		if !errors.As(err, &de) {
			de = &DenyError{Message: "postern: access denied", Reason: err.Error()}
		}
		c.refuse(de.Reason)
		c.identity = id
		return nil, c.banner(err, de.UserMessage())
	}
	c.identity, c.grant, c.cert = id, grant, cert
	return perms, nil
}

func (c *conn) serve() {
	defer c.nc.Close()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection handler panicked", "panic", r)
		}
	}()
	start := time.Now()
	c.nc.SetDeadline(start.Add(c.s.cfg.HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c.nc, c.s.serverConfig(c))
	if err != nil {
		reason := strings.Join(c.refusals, "; ")
		if reason == "" {
			if c.offered == 0 {
				reason = "no certificate offered"
			} else {
				reason = "handshake: " + err.Error()
			}
		}
		attrs := []any{"allowed", false, "user_name", logSafe(c.user), "reason", logSafe(reason)}
		if c.identity.Name() != "" {
			attrs = append(attrs, "principals", logSafeAll(c.identity.Principals), "key_id", logSafe(c.identity.KeyID), "serial", c.identity.Serial)
		}
		audit.Record(c.log, audit.Connect, attrs...)
		return
	}
	c.nc.SetDeadline(time.Time{})
	c.mu.Lock()
	c.sc = sc
	c.mu.Unlock()
	defer sc.Close()
	if c.admin {
		c.serveAdmin(sc, chans, reqs, start)
		return
	}

	g := c.grant
	c.log = c.log.With("user", logSafe(c.identity.Name()), "target", g.Target.Name, "login", logSafe(g.Login))
	audit.Record(c.log, audit.Connect, "allowed", true, "principals", logSafeAll(c.identity.Principals), "groups", logSafeAll(c.identity.Groups),
		"key_id", logSafe(c.identity.KeyID), "serial", c.identity.Serial, "rule", g.Rule, "port_forwarding", g.PortForwarding)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	now := time.Now().UnixNano()
	c.lastActive.Store(now)

	up, err := c.dial()
	if err != nil {
		var ue *upstreamError
		msg := "postern: cannot reach target " + g.Target.Name
		if errors.As(err, &ue) {
			msg = ue.UserMessage()
		}
		audit.Record(c.log, audit.Upstream, "ok", false, "reason", err.Error())
		c.refuseAll(sc, chans, reqs, msg)
		return
	}
	defer up.Close()
	c.mu.Lock()
	c.up = up
	ended := c.ended
	c.mu.Unlock()
	if ended != "" { // terminated while dialing
		up.Close()
	}
	c.log.Info("upstream connected", "address", g.Target.Address)

	rt := c.proxyRoute(up)
	var wg sync.WaitGroup
	wg.Go(func() { c.serveRequests(rt, reqs) })
	wg.Go(func() {
		err := up.Wait()
		cancel(fmt.Errorf("target closed the connection: %v", err))
		// Session channels now deliver what the target sent, a notice
		// and their teardown; wait for that, but not for a client that
		// stopped reading.
		deadline := time.Now().Add(5 * time.Second)
		for c.openChannels() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		sc.Close()
	})
	wg.Go(func() { c.monitor(ctx, sc) })
	for nc := range chans {
		c.open(rt, nc)
	}
	cancel(errors.New("client disconnected"))
	up.Close()
	c.wg.Wait()
	wg.Wait()
	reason := context.Cause(ctx).Error()
	c.mu.Lock()
	if c.ended != "" {
		reason = c.ended
	}
	c.mu.Unlock()
	audit.Record(c.log, audit.Disconnect, "duration_ms", time.Since(start).Milliseconds(), "reason", reason)
}

// refuseAll answers every channel of a connection whose target cannot be
// reached with msg (OpenSSH prints the reason of a failed channel open),
// and closes it after the first, or after a minute if there is none.
func (c *conn) refuseAll(sc *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, msg string) {
	go ssh.DiscardRequests(reqs)
	t := time.AfterFunc(time.Minute, func() { sc.Close() })
	defer t.Stop()
	for nc := range chans {
		nc.Reject(ssh.ConnectionFailed, msg)
		// Give the client a moment to read the reason before the close.
		time.AfterFunc(100*time.Millisecond, func() { sc.Close() })
	}
}

// terminate ends the connection for a reason each open session channel
// shows its user. It closes the upstream connection: every session channel
// then sends what it has, the notice, and its teardown (see session), and
// the client connection closes after them.
func (c *conn) terminate(why string) {
	c.mu.Lock()
	if c.ended == "" {
		c.ended = why
	}
	up, sc := c.up, c.sc
	c.mu.Unlock()
	switch {
	case up != nil:
		up.Close()
	case sc != nil:
		sc.Close()
	default:
		c.nc.Close()
	}
}

// notice is the line a session channel shows when it ends without an exit
// status from the target.
func (c *conn) notice() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended != "" {
		return c.ended
	}
	return "postern: the connection to " + c.grant.Target.Name + " was lost"
}

func (c *conn) openChannels() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.channels)
}

// goSafe runs f on a goroutine owned by c.wg; a panic ends that channel,
// not every session of the bastion.
func (c *conn) goSafe(f func()) {
	c.wg.Go(func() {
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("channel handler panicked", "panic", r)
				c.terminate("postern: internal error")
			}
		}()
		f()
	})
}

// monitor sends keepalives and enforces the idle timeout until ctx ends.
func (c *conn) monitor(ctx context.Context, sc *ssh.ServerConn) {
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
				c.terminate(fmt.Sprintf("postern: connection idle for %s; closing", cfg.IdleTimeout))
				return
			}
			if cfg.KeepAliveInterval == 0 {
				continue
			}
			// One probe is in flight at a time; one unanswered for
			// KeepAliveMax intervals means that many were missed.
			if probing.Load() && now.Sub(lastProbe) > cfg.KeepAliveInterval*time.Duration(cfg.KeepAliveMax) {
				c.log.Info("keepalive timeout", "missed", cfg.KeepAliveMax)
				c.terminate("postern: client stopped answering keepalives")
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

func (c *conn) track(ch ssh.Channel) {
	c.mu.Lock()
	c.channels[ch] = struct{}{}
	c.mu.Unlock()
}

func (c *conn) untrack(ch ssh.Channel) {
	c.mu.Lock()
	delete(c.channels, ch)
	c.mu.Unlock()
}

func (c *conn) envAllowed(name string) bool {
	return slices.ContainsFunc(c.s.cfg.EnvAllow, func(p string) bool {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(name, prefix)
		}
		return p == name
	})
}
