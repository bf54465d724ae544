package bastion

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/audit"
)

// A connection lives no longer than its certificate: when the certificate
// expires, or an admin revokes it, the bastion ends the connection, every
// open channel showing its user why (the context cause, cause.go), and
// recordings are sealed as at any other end. The end of a just-in-time
// access grant (access.go) ends connections the same way.

// endAt runs end at when (at once if when has passed), unless the
// returned function is called first.
func (c *conn) endAt(when time.Time, end func()) (stop func()) {
	t := time.AfterFunc(time.Until(when), end)
	return func() { t.Stop() }
}

// endFor ends the connection on the bastion's own account: an audit
// record saying why (cause, snake_case, with attrs), then notice shown on
// every open channel. The first cause wins: a connection already ending
// keeps its own.
func (c *conn) endFor(cause, notice string, attrs ...any) {
	notice = logSafe(notice) // it quotes the certificate and an admin's reason
	audit.Record(c.log, audit.Ended, append([]any{"cause", cause, "notice", notice}, attrs...)...)
	c.terminate(endCauseErr(notice, errors.New(cause)))
}

// watchCert is called once the handshake authenticated the connection's
// certificate: it starts the timer that ends the connection when the
// certificate expires, and registers the certificate for Server.Revoke. A
// revocation that came after the handshake checked the certificate ends
// the connection at once. The returned function stops the timer.
func (c *conn) watchCert() (stop func()) {
	cert := c.cert
	c.mu.Lock()
	c.liveCert = cert
	c.mu.Unlock()
	// Revoke adds to the list before it reads liveCert, and this reads
	// the list after setting it: one of the two sees the other.
	if r, ok := c.s.revoked.Revoked(cert); ok {
		c.endRevoked(r)
	}
	c.judgeAgain() // likewise with SetRules
	if cert.ValidBefore == ssh.CertTimeInfinity {
		return func() {}
	}
	end := time.Unix(int64(cert.ValidBefore), 0)
	return c.endAt(end, func() {
		c.endFor("certificate_expired", certs.ExpiredMessage(end),
			"serial", cert.Serial, "key_id", logSafe(cert.KeyId), "valid_before", end.UTC())
	})
}

// endRevoked ends the connection, whose certificate r revokes.
func (c *conn) endRevoked(r certs.Revocation) {
	c.endFor("certificate_revoked", r.UserMessage(), "serial", c.cert.Serial, "key_id", logSafe(c.cert.KeyId),
		"revoked", logSafe(r.What()), "revocation_reason", logSafe(r.Reason))
}

// Revoke adds r to the bastion's revocation list, so that a certificate it
// covers is refused from now on, and ends every live connection
// (proxied or admin) authenticated with one, each open channel showing
// r.UserMessage(). It returns how many connections it ended. It is safe
// for concurrent use.
func (s *Server) Revoke(r certs.Revocation) int {
	s.revoked.Add(r)
	s.mu.Lock()
	conns := slices.Collect(maps.Keys(s.conns))
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		cert := c.liveCert
		c.mu.Unlock()
		if cert == nil || !r.Covers(cert) || c.ctx.Err() != nil {
			continue
		}
		c.endRevoked(r)
		n++
	}
	return n
}

// waitToClose closes the admin connection sc once the connection's
// context ends and its channels have shown why (adminChannel.run), or
// after a bound, for a client that stopped reading.
func (c *conn) waitToClose(sc *ssh.ServerConn) {
	<-c.ctx.Done()
	c.waitChannels(5 * time.Second)
	sc.Close()
}

// endNotice is what a channel shows when the bastion ended its connection
// (a cause with a UserMessage), or "" when it did not: the client left,
// or the connection still runs.
func (c *conn) endNotice() string {
	if c.ctx.Err() == nil {
		return ""
	}
	return userMessage(context.Cause(c.ctx), "")
}
