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

	"github.com/postern/postern/approval"
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
	kexDone      bool     // key exchange completed: authentication began
	bannered     []string // messages already shown
	plainRefused string   // message for a refused plain key, not yet shown
	certOffered  bool     // a certificate was offered: plainRefused is not the reason
	identity     Identity
	grant        *Grant
	// access is the approved access request a just-in-time rule needed
	// for this connection, nil when none was needed.
	access *approval.Request
	cert   *ssh.Certificate
	admin  bool         // user name AdminUser: an admin connection, no grant
	spec   *speculative // upstream connection begun during authentication
	acks   quickAcks    // both legs acknowledge at once until a channel opens (quickack.go)

	lastActive  atomic.Int64              // unix nanos of the last channel data
	durationEnd atomic.Pointer[time.Time] // when MaxDuration ends it, once its users were warned (notices.go)
	chanSeq     atomic.Uint32             // numbers session channels: recording IDs are SESSION-N

	// ctx is the connection's context, the parent of its channels'; its
	// cause says why the connection ended and, when it is a userError,
	// what every open channel shows its user. cancel is first-wins.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex // guards channels, drained, sc, up, liveCert
	channels map[ssh.Channel]struct{}
	drained  chan struct{} // closed when channels becomes empty, if not nil
	sc       *ssh.ServerConn
	up       *ssh.Client
	// liveCert is cert once the handshake is done (watchCert), for
	// Server.Revoke to match.
	liveCert *ssh.Certificate

	remotes  remoteForwards  // listeners on the target (ssh -R)
	forwards atomic.Int32    // forwarded connections open (ssh -L and -R), at most maxForwards
	agent    agentForwarding // ssh -A: agentfwd.go
	live     liveChannels    // open session channels, for notices (sessionlimits.go)
	lim      connLimits      // places held in the Server's gate: connlimits.go

	// decided is the Rules the connection was last judged by (reload.go).
	decided atomic.Pointer[Rules]

	wg sync.WaitGroup // channel goroutines
}

func (s *Server) newConn(base context.Context, nc net.Conn) *conn {
	id := ulid.Make().String()
	ctx, cancel := context.WithCancelCause(base)
	c := &conn{
		s:        s,
		id:       id,
		remote:   nc.RemoteAddr(),
		log:      s.log.With("session", id, "client", nc.RemoteAddr().String()),
		ctx:      ctx,
		cancel:   cancel,
		channels: make(map[ssh.Channel]struct{}),
	}
	c.nc = c.acks.wrap(nc)
	if s.cfg.noQuickAck {
		c.acks.end()
	}
	return c
}

// checkKey is the PublicKeyCallback: it verifies the certificate itself.
// Its message only tells the user about their own certificate.
func (c *conn) checkKey(cm ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	c.offered++
	c.user = cm.User()
	if _, isCert := key.(*ssh.Certificate); isCert {
		c.certOffered = true
	}
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
	c.speculate(cm.User(), cert) // speculate.go
	return &ssh.Permissions{CriticalOptions: opts, ExtraData: map[any]any{certKey{}: cert}}, nil
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
// were refused: unless a certificate was offered, whose own refusal (if
// any) was shown already and is the one that matters. It never
// authenticates anyone.
func (c *conn) lastResort(ssh.ConnMetadata, ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	err := errors.New("keyboard-interactive is not accepted")
	if c.plainRefused != "" && !c.certOffered {
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
	id := identityOf(cert)
	if cm.User() == AdminUser { // any valid certificate; each command decides
		c.identity, c.cert, c.admin = id, cert, true
		return perms, nil
	}
	r := c.s.current()
	c.decided.Store(r)
	grant, err := r.Policy.Decide(id, cm.User())
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
	if err := c.needsGrant(); err != nil {
		c.refuse(err.Reason)
		return nil, c.banner(err, err.UserMessage())
	}
	return perms, nil
}

// serve runs the connection: handshake, target dial, channels, teardown.
// Its context ending (terminate, Server.Close, the Serve context) closes
// the transport it has reached; serve waits for every goroutine it starts.
func (c *conn) serve() {
	defer c.nc.Close()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection handler panicked", "panic", r)
		}
	}()
	var watch sync.WaitGroup
	defer watch.Wait()
	defer c.endSpeculation()
	defer c.cancel(errors.New("client disconnected")) // first cause wins
	watch.Go(func() {
		<-c.ctx.Done()
		c.closeTransport()
	})
	start := time.Now()
	sc, chans, reqs, ok := c.timedHandshake()
	if !ok {
		return
	}
	defer sc.Close()
	g := c.grant
	if c.admin {
		c.log = c.log.With("user", logSafe(c.identity.Name()), "route", "admin")
	} else {
		c.log = c.log.With("user", logSafe(c.identity.Name()), "target", g.Target.Name, "login", logSafe(g.Login))
	}
	// c.log is now read by other goroutines (Revoke, timers): fixed.
	defer c.watchCert()()
	if c.admin {
		c.serveAdmin(sc, chans, reqs, start)
		return
	}
	audit.Record(c.log, audit.Connect, "allowed", true, "principals", logSafeAll(c.identity.Principals), "groups", logSafeAll(c.identity.Groups),
		"key_id", logSafe(c.identity.KeyID), "serial", c.identity.Serial, "rule", g.Rule, "forwards", g.Forwards)
	c.touch()
	// Until proxy serves the client's channels nothing notices the
	// client leave: the dial of its target would run its course
	// (DialTimeout) for nobody. Wait returns once sc closes (deferred).
	watch.Go(func() {
		sc.Wait()
		c.cancel(errors.New("client disconnected"))
	})

	up, ended, err := c.dialCounted()
	if ended {
		c.endedDialing(sc, chans, reqs, start, err)
		return
	}
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
	c.mu.Unlock()
	if c.ctx.Err() != nil { // ended while dialing: the watcher saw no up
		up.Close()
	}
	c.log.Info("upstream connected", "address", g.Target.Address)
	if c.access != nil {
		defer c.endAtGrant()()
	}
	c.proxy(sc, up, chans, reqs)
	audit.Record(c.log, audit.Disconnect, "duration_ms", time.Since(start).Milliseconds(), "reason", context.Cause(c.ctx).Error())
}

// handshake runs the client's key exchange and authentication, bounded by
// HandshakeTimeout, and audits a refusal.
func (c *conn) handshake() (*ssh.ServerConn, <-chan ssh.NewChannel, <-chan *ssh.Request, bool) {
	c.nc.SetDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c.nc, c.s.serverConfig(c))
	if err != nil {
		c.handshakeEnded(err)
		attrs := []any{"allowed", false, "user_name", logSafe(c.user), "reason", logSafe(c.handshakeReason(err))}
		if ae := (*ssh.AlgorithmNegotiationError)(nil); errors.As(err, &ae) {
			attrs = append(attrs, "client_algorithms", logSafeAll(ae.RequestedAlgorithms))
		}
		if c.identity.Name() == "" {
			c.s.loginLog.note(time.Now(), c.stage(), c.lim.src, append(attrs[2:], "client", c.remote.String(), "session", c.id))
			return nil, nil, nil, false
		}
		attrs = append(attrs, "principals", logSafeAll(c.identity.Principals), "key_id", logSafe(c.identity.KeyID), "serial", c.identity.Serial)
		audit.Record(c.log, audit.Connect, attrs...)
		return nil, nil, nil, false
	}
	c.nc.SetDeadline(time.Time{})
	c.mu.Lock()
	c.sc = sc
	c.mu.Unlock()
	if c.ctx.Err() != nil { // ended during the handshake
		sc.Close()
	}
	return sc, chans, reqs, true
}

// handshakeReason says why NewServerConn failed with err. Before key
// exchange completes no key can have been offered, so what x/crypto says
// (no common algorithm, the client closed the connection) is the reason.
func (c *conn) handshakeReason(err error) string {
	switch {
	case c.evictedReason() != "":
		return c.evictedReason()
	case !c.kexDone:
		return "key exchange failed: " + err.Error()
	case len(c.refusals) > 0:
		return strings.Join(c.refusals, "; ")
	case c.offered == 0:
		return "no certificate offered"
	}
	return "handshake: " + err.Error()
}

// proxy serves the channels of an authorised connection until the client
// leaves, and waits for every goroutine it started.
func (c *conn) proxy(sc *ssh.ServerConn, up *ssh.Client, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	rt := c.proxyRoute(up)
	c.serveAgent(up) // agent channels the target opens (ssh -A)
	var wg, requests sync.WaitGroup
	// The request loop starts goroutines on c.wg (remote forwards): it
	// must be over before c.wg.Wait begins.
	requests.Go(func() { c.serveRequests(rt, reqs) })
	wg.Go(func() {
		err := up.Wait()
		c.cancel(fmt.Errorf("target closed the connection: %v", err))
		// Session channels now deliver what the target sent, a notice
		// and their teardown; wait for that, but not for a client that
		// stopped reading.
		c.waitChannels(5 * time.Second)
		sc.Close()
	})
	wg.Go(func() { c.monitor(c.ctx, sc) })
	for nc := range chans {
		c.open(rt, nc)
	}
	c.cancel(errors.New("client disconnected"))
	up.Close()
	requests.Wait() // reqs closed with chans
	c.wg.Wait()
	wg.Wait()
}

// closeTransport closes the furthest leg the connection reached: the
// upstream connection (its session channels then send what they have, the
// notice and their teardown, and the client connection closes after them:
// see proxy), else the client's SSH connection, else the TCP connection.
// An admin connection's channels show the notice first: serveAdmin closes
// its SSH connection after them (waitToClose).
func (c *conn) closeTransport() {
	c.mu.Lock()
	up, sc := c.up, c.sc
	c.mu.Unlock()
	switch {
	case up != nil:
		up.Close()
	case sc != nil && c.admin: // set before sc, under mu
	case sc != nil:
		sc.Close()
	default:
		c.nc.Close()
	}
}

// refuseAll answers every channel of a connection whose target cannot be
// reached with msg (OpenSSH prints the reason of a failed channel open),
// and closes it shortly after the first, or after a minute if there is
// none. The connection's context ending closes it too (closeTransport).
func (c *conn) refuseAll(sc *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, msg string) {
	var wg sync.WaitGroup
	defer wg.Wait() // reqs closes with the connection
	wg.Go(func() { ssh.DiscardRequests(reqs) })
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case nc, ok := <-chans:
			if !ok {
				return
			}
			nc.Reject(ssh.ConnectionFailed, msg)
			// Give the client a moment to read the reason before
			// the close.
			t.Reset(100 * time.Millisecond)
		case <-t.C:
			sc.Close() // chans closes next
		}
	}
}

// terminate ends the connection with cause; each open session channel
// shows its user the cause's UserMessage. The first cause wins.
func (c *conn) terminate(cause error) { c.cancel(cause) }

// notice is the line a session channel shows when it ends without an exit
// status from the target.
func (c *conn) notice() string {
	return userMessage(context.Cause(c.ctx), "postern: the connection to "+c.grant.Target.Name+" was lost")
}

// waitChannels waits until no channel is open, or for d.
func (c *conn) waitChannels(d time.Duration) {
	c.mu.Lock()
	if len(c.channels) == 0 {
		c.mu.Unlock()
		return
	}
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	drained := c.drained
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
	}
}

// goSafe runs f on a goroutine owned by c.wg; a panic ends that channel,
// not every session of the bastion.
func (c *conn) goSafe(f func()) {
	c.wg.Go(func() {
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("channel handler panicked", "panic", r)
				c.terminate(endCause("postern: internal error"))
			}
		}()
		f()
	})
}
