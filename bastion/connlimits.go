package bastion

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// connLimits is the places a connection holds in the Server's gate.
type connLimits struct {
	src netip.Prefix
	// leaveStartup gives back the unauthenticated place (once); set
	// before the connection's goroutine starts.
	leaveStartup func()
	// Set by authorizeLimited on the handshake goroutine, read after
	// the handshake: identity holds a place when loggedIn.
	loggedIn  bool
	identity  string
	overLimit bool // refused by a connection limit: not a failed login
	// Set on the handshake goroutine: authentication requests refused
	// (any method, "none" too), and whether HandshakeTimeout ended it.
	attempts int
	timedOut bool
	// evictedBy holds the source whose connection took this one's place
	// (a netip.Prefix), once the gate evicted it.
	evictedBy *atomic.Value
}

// evictedReason is the reason of the connect record of a connection
// whose place another took, or "".
func (c *conn) evictedReason() string {
	if c.lim.evictedBy == nil {
		return ""
	}
	by, ok := c.lim.evictedBy.Load().(netip.Prefix)
	if !ok {
		return ""
	}
	return "evicted: max_startups " + c.s.cfg.Limits.Startups.String() + " was reached and a connection from " +
		by.Addr().String() + ", a source holding fewer places, took this one's"
}

// admit is the first thing done with an accepted connection, before any
// byte is read: it takes an unauthenticated place for nc, or closes nc
// telling why in one line (clients show it only when verbose: no SSH
// message can be sent before key exchange) and reports false.
func (s *Server) admit(nc net.Conn) (connLimits, bool) {
	src := sourceOf(nc.RemoteAddr())
	evictedBy := new(atomic.Value)
	st, evicted, r := s.gate.admit(src, time.Now(), func(by netip.Prefix) { evictedBy.Store(by); nc.Close() })
	if r != nil {
		s.refused(r, src, "client", nc.RemoteAddr().String())
		// The socket's buffer is empty: this write does not block, the
		// deadline is there in case it would.
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		nc.Write([]byte(r.msg + "\r\n"))
		nc.Close()
		return connLimits{}, false
	}
	if evicted != nil {
		// Its handshake fails on the closed socket, and its connect
		// record says why (evictedReason).
		evicted.close(src)
	}
	return connLimits{src: src, leaveStartup: func() { s.gate.leave(st) }, evictedBy: evictedBy}, true
}

// authorizeLimited is the VerifiedPublicKeyCallback: authorize, then a
// place among the authenticated connections. Once authenticated, the
// connection no longer holds an unauthenticated place.
func (c *conn) authorizeLimited(cm ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, alg string) (*ssh.Permissions, error) {
	perms, err := c.authorize(cm, key, perms, alg)
	if err != nil {
		return nil, err
	}
	name := c.identity.Name()
	if r := c.s.gate.login(name); r != nil {
		if !c.lim.overLimit { // counted and audited once a connection, whatever keys follow
			c.s.refused(r, c.lim.src, "client", c.remote.String(), "session", c.id, "identity", logSafe(name))
		}
		c.lim.overLimit = true
		c.refuse(r.limit + " reached")
		return nil, c.banner(errors.New(r.limit+" reached"), r.msg)
	}
	c.lim.loggedIn, c.lim.identity = true, name
	c.lim.leaveStartup()
	return perms, nil
}

// authLog is the AuthLogCallback: it counts the refused authentication
// requests, whatever their method.
func (c *conn) authLog(cm ssh.ConnMetadata, method string, err error) {
	if err != nil {
		c.lim.attempts++
	}
	c.authAttempt(cm, method, err)
}

// handshakeEnded notes why the handshake failed: a client that held its
// place until HandshakeTimeout wasted it, whatever stage it reached.
func (c *conn) handshakeEnded(err error) {
	var ne net.Error
	c.lim.timedOut = errors.As(err, &ne) && ne.Timeout()
}

// endLimits gives back the connection's places when it ends, and counts
// a failed login: a handshake that ended unauthenticated after the client
// asked to log in (offered a key, or only "none") or that held its place
// until HandshakeTimeout, unless a limit refused or evicted it or the
// bastion verified the certificate (its holder is known; the policy refused
// them). A client that leaves before asking to log in (a port scanner,
// ssh-keyscan, a load balancer's health check) has not failed a login.
func (c *conn) endLimits() {
	if c.lim.leaveStartup == nil { // not admitted through Serve
		return
	}
	c.lim.leaveStartup()
	if c.lim.loggedIn {
		c.s.gate.logout(c.lim.identity)
		return
	}
	asked := c.kexDone && (c.offered > 0 || len(c.refusals) > 0 || c.lim.attempts > 0)
	// Evicted for another source's place: the gate ended it, whatever it
	// had offered (counting it would let a source that fills the places
	// get its neighbours behind one address blocked).
	evicted := c.evictedReason() != ""
	failed := (asked || c.lim.timedOut) && !c.lim.overLimit && !evicted && c.identity.Name() == ""
	if failed && c.s.gate.fail(c.lim.src, time.Now()) {
		c.log.Warn("failed logins from this source reached the limit: its connections are refused for a while",
			"limit", LimitAuthFailures, "max", c.s.cfg.Limits.AuthFailures, "block", c.s.cfg.Limits.AuthBlock.String())
	}
}

// stage is how far a handshake that failed got: key_exchange or login.
func (c *conn) stage() string {
	if c.kexDone {
		return "login"
	}
	return "key_exchange"
}
