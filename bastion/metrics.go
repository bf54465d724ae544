package bastion

import (
	"time"

	"golang.org/x/crypto/ssh"
)

// Metrics receives what the bastion counts, for the operator's monitoring
// (internal/metrics exports it to Prometheus). Its methods are called
// from connection and channel goroutines at once, some on every write of
// a session: they must be safe for concurrent use, quick, and must not
// block. Config.Metrics nil counts nothing.
type Metrics interface {
	// ConnAccepted counts a TCP connection Serve accepted, before the
	// limits admit or refuse it: each refusal is also counted here.
	ConnAccepted()
	// ConnRefused counts a connection that ended before it became a
	// session, or whose target could not be reached; reason is one of
	// the Refused constants (a fixed set: it is a label).
	ConnRefused(reason string)
	// Handshake observes how long key exchange and authentication took
	// on an accepted connection, and whether they succeeded.
	Handshake(d time.Duration, ok bool)
	// AuthFailed counts a connection whose authentication failed, after
	// key exchange: reason is one of the Auth constants.
	AuthFailed(reason string)
	// SessionStarted and SessionEnded bracket an authenticated
	// connection (to a target or the admin connection).
	SessionStarted()
	SessionEnded()
	// Bytes counts channel data passed to the target (toTarget) or to
	// the client: session channels as they pass, forwards when they end.
	Bytes(toTarget bool, n int64)
	// PANsMasked counts card numbers masked, when a channel ends.
	PANsMasked(n int64)
	// RecordingError counts a recording that could not be begun, written
	// or sealed.
	RecordingError()
	// LimitReached counts a limit that refused or ended something: limit
	// is its config key (a Limit constant, or a session limit), action
	// what was done (refused, ended, recording_stopped, warned).
	LimitReached(limit, action string)
}

// Reasons of Metrics.ConnRefused. Other refusal points (limits) add their
// own short snake_case reasons.
const (
	// RefusedKeyExchange: the client left, or had no algorithm in
	// common, before key exchange completed.
	RefusedKeyExchange = "key_exchange"
	// RefusedAuth: authentication failed (see the Auth reasons).
	RefusedAuth = "auth"
	// RefusedTarget: authenticated, but the target could not be
	// reached.
	RefusedTarget = "target_unreachable"
	// RefusedShutdown: accepted while the server was closing.
	RefusedShutdown = "shutting_down"
)

// Reasons of Metrics.AuthFailed.
const (
	// AuthNoCertificate: no key or no certificate was offered, or the
	// client gave up before offering one.
	AuthNoCertificate = "no_certificate"
	// AuthCertificate: a certificate was offered and refused (not
	// signed by the user CA, expired, revoked, wrong source address).
	AuthCertificate = "certificate"
	// AuthDenied: a valid certificate the policy does not let reach the
	// target asked for.
	AuthDenied = "denied"
)

// noMetrics counts nothing: Config.Metrics nil.
type noMetrics struct{}

func (noMetrics) ConnAccepted()                 {}
func (noMetrics) ConnRefused(string)            {}
func (noMetrics) LimitReached(string, string)   {}
func (noMetrics) Handshake(time.Duration, bool) {}
func (noMetrics) AuthFailed(string)             {}
func (noMetrics) SessionStarted()               {}
func (noMetrics) SessionEnded()                 {}
func (noMetrics) Bytes(bool, int64)             {}
func (noMetrics) PANsMasked(int64)              {}
func (noMetrics) RecordingError()               {}

// Refused counts a connection refused for reason in the server's
// Metrics. Refusal points outside the handshake (connection caps, rate
// limits) call it with a reason of their own.
func (s *Server) Refused(reason string) { s.metrics.ConnRefused(reason) }

// timedHandshake is handshake, observed: its duration, the refusal and
// authentication failure it ended in, or the session it began.
func (c *conn) timedHandshake() (*ssh.ServerConn, <-chan ssh.NewChannel, <-chan *ssh.Request, bool) {
	m := c.s.metrics
	start := time.Now()
	sc, chans, reqs, ok := c.handshake()
	m.Handshake(time.Since(start), ok)
	switch {
	case ok:
		m.SessionStarted()
	case c.evictedReason() != "":
		// The gate closed it for another's place: not the client's
		// failure (admit counted the taker).
		m.LimitReached(LimitStartups, "ended")
		m.ConnRefused(LimitStartups)
	case !c.kexDone:
		m.ConnRefused(RefusedKeyExchange)
	case c.lim.overLimit:
		// Counted under the limit's name where it refused (Server.refused).
	default:
		m.ConnRefused(RefusedAuth)
		m.AuthFailed(c.authFailure())
	}
	return sc, chans, reqs, ok
}

// authFailure classifies a failed authentication for Metrics.AuthFailed.
func (c *conn) authFailure() string {
	switch {
	case c.identity.Name() != "":
		return AuthDenied // the certificate was valid: the policy refused
	case c.certOffered:
		return AuthCertificate
	}
	return AuthNoCertificate
}

// authenticated reports whether c's handshake succeeded: a session was
// counted for it.
func (c *conn) authenticated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sc != nil
}

// dialCounted is dial, counting a target that cannot be reached as a
// refused connection. A dial cut by the connection's own end (a reload,
// revocation or drain ended it, or its client left) is not the target's
// failure: it is not counted, and ended reports it.
func (c *conn) dialCounted() (up *ssh.Client, ended bool, err error) {
	up, err = c.dial()
	if err != nil && c.ctx.Err() != nil {
		return nil, true, err
	}
	if err != nil {
		c.s.metrics.ConnRefused(RefusedTarget)
	}
	return up, false, err
}

// countForward counts a forward's bytes and masked PANs when it ends.
func (s *Server) countForward(toTarget, toClient, masked int64) {
	s.metrics.Bytes(true, toTarget)
	s.metrics.Bytes(false, toClient)
	s.metrics.PANsMasked(masked)
}
