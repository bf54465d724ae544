package bastion

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
)

// Speculative upstream setup. The client shows its certificate in the
// first round trip of public key authentication and proves it holds the
// key in the next; the connection to the target costs a TCP connect, the
// target sshd's start for the connection and a key exchange. Once the
// certificate is one the CA signed and the policy grants for the target
// named (checkKey, speculate), those begin at once, while the client
// signs, and the handshake pauses after the target's host key was
// verified, before the bastion's NEWKEYS. Nothing of user authentication
// reaches the target until the client has authenticated, the policy
// allowed it and the certificate for the session is minted (dial,
// claimSpeculation). A client that never proves it holds the key has its
// speculative connection closed with no authentication request sent: the
// target logs a connection closed before authentication, and no user.
// Clients without such a certificate cause no connection to a target.
//
// Speculative connections are capped, so that clients that never
// authenticate cannot turn into as many connections to a target (each
// counts against its sshd's MaxStartups): at most maxSpeculative per
// bastion and maxSpeculativePerTarget per target, each waiting at most
// speculationWait. Beyond the caps, or when the speculation does not fit
// the grant (another login, a reloaded target), the bastion dials after
// authentication, as without speculation.
const (
	maxSpeculative          = 32
	maxSpeculativePerTarget = 4
	speculationWait         = 30 * time.Second
)

// errAbandoned ends a speculative handshake that will not be used.
var errAbandoned = errors.New("speculative upstream connection abandoned")

// speculations counts the speculative connections in progress. The zero
// value is ready; it is safe for concurrent use.
type speculations struct {
	mu        sync.Mutex // guards total and perTarget
	total     int
	perTarget map[string]int
}

// acquire takes a slot for target, or reports that the caps are reached.
func (l *speculations) acquire(target string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= maxSpeculative || l.perTarget[target] >= maxSpeculativePerTarget {
		return false
	}
	if l.perTarget == nil {
		l.perTarget = make(map[string]int)
	}
	l.total++
	l.perTarget[target]++
	return true
}

func (l *speculations) release(target string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perTarget[target]--; l.perTarget[target] == 0 {
		delete(l.perTarget, target)
	}
}

// count is the number of speculative connections in progress.
func (l *speculations) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// speculative is one connection's speculative upstream connection. Its
// goroutine (run) ends when the handshake does, abandoned or not; the
// conn's serve waits for it (endSpeculation).
type speculative struct {
	target *Target
	login  string
	acks   *quickAcks // the client connection's

	ctx    context.Context // cancelled to abandon; the conn's is its parent
	cancel context.CancelFunc

	claimed chan struct{} // closed by claim, after signer is set
	signer  ssh.Signer

	done   chan struct{} // closed by run, after client and err are set
	client *ssh.Client   // nil once claim took it
	err    error
	waited time.Duration // how long the handshake waited for claim
}

// authAttempt is the AuthLogCallback: a refusal by the policy of a
// verified certificate abandons the speculation at once.
func (c *conn) authAttempt(_ ssh.ConnMetadata, _ string, err error) {
	if err != nil && c.identity.Name() != "" && c.spec != nil {
		c.spec.cancel()
	}
}

// speculate begins the upstream connection once the client has offered a
// certificate the CA signed (checkKey) whose holder the policy in force
// grants user, and the caps allow it: before the client has proved it
// holds the key (its signature is the next round trip), but never for a
// client without such a certificate, so anonymous connections cause no
// connection to any target.
func (c *conn) speculate(user string, cert *ssh.Certificate) {
	if c.spec != nil || c.s.cfg.noSpeculation || user == AdminUser {
		return
	}
	r := c.s.current()
	id := identityOf(cert)
	g, err := r.Policy.Decide(id, user)
	if err != nil {
		return
	}
	log := c.log // c.log changes after the handshake: run keeps this one
	if c.s.gate.full(id.Name()) || needsMissingGrant(c.s, r, id, g) {
		// authorizeLimited will refuse it: no connection to the target.
		log.Debug("speculative upstream connection skipped: the login will be refused", "target", g.Target.Name)
		return
	}
	if !c.s.specs.acquire(g.Target.Name) {
		log.Debug("speculative upstream connection skipped: limit reached", "target", g.Target.Name)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	sp := &speculative{target: g.Target, login: g.Login, acks: &c.acks, ctx: ctx, cancel: cancel, claimed: make(chan struct{}), done: make(chan struct{})}
	c.spec = sp
	log.Debug("speculative upstream connection begun", "target", g.Target.Name)
	go sp.run(c.s, log)
}

// needsMissingGrant reports whether an access rule of r needs a grant
// for id on g that the approvals hold none of (needsGrant refuses it).
func needsMissingGrant(s *Server, r *Rules, id Identity, g *Grant) bool {
	if r.ApprovalRules == nil {
		return false
	}
	ar := r.ApprovalRules.NeedsGrant(&approval.Subject{Principals: id.Principals, Groups: id.Groups,
		Target: g.Target.Name, Labels: g.Target.Labels, Login: g.Login})
	if ar == nil {
		return false
	}
	if s.cfg.Approvals == nil {
		return true
	}
	_, ok := s.cfg.Approvals.GrantedFor(id.Principals, g.Target.Name, g.Login, func(q approval.Request) bool { return grantStands(q, ar) })
	return !ok
}

// run dials the target and runs the handshake up to the wait for claim.
func (sp *speculative) run(s *Server, log *slog.Logger) {
	defer close(sp.done)
	defer s.specs.release(sp.target.Name)
	start := time.Now()
	nc, err := s.dialTarget(sp.ctx, sp.target, sp.acks)
	if err != nil {
		sp.err = err
		return
	}
	auth := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		if sp.signer == nil { // not claimed: never reached, wait refuses first
			return nil, errAbandoned
		}
		return []ssh.Signer{sp.signer}, nil
	})
	// Abandoning closes the connection at any stage of the handshake;
	// once it is over the client is the owner's to close.
	client, err := s.upstreamHandshake(sp.ctx, nc, sp.target, sp.login, auth, sp.wait)
	if err != nil && sp.ctx.Err() != nil {
		// Closed by abandonment, whatever x/crypto made of that.
		err = errAbandoned
	}
	sp.client, sp.err = client, err
	switch {
	case errors.Is(err, errAbandoned):
		log.Debug("speculative upstream connection abandoned", "target", sp.target.Name, "after_ms", time.Since(start).Milliseconds())
	case err == nil:
		log.Debug("speculative upstream connection authenticated", "target", sp.target.Name, "after_ms", time.Since(start).Milliseconds(), "waited_ms", sp.waited.Milliseconds())
	}
}

// wait blocks the handshake until claim, abandonment or speculationWait.
func (sp *speculative) wait() error {
	t := time.NewTimer(speculationWait)
	defer t.Stop()
	start := time.Now()
	select {
	case <-sp.claimed:
		sp.waited = time.Since(start)
		return nil
	case <-sp.ctx.Done():
		return errAbandoned
	case <-t.C:
		return errors.New("speculative upstream connection not claimed in time")
	}
}

// claimSpeculation finishes the connection's speculative upstream
// connection with signer, if it has one for the grant's target and login.
// ok false means there is none to use: dial anew.
func (c *conn) claimSpeculation(signer ssh.Signer) (up *ssh.Client, err error, ok bool) {
	sp := c.spec
	if sp == nil {
		return nil, nil, false
	}
	if sp.target != c.grant.Target || sp.login != c.grant.Login {
		c.log.Debug("speculative upstream connection does not fit the grant", "speculative_login", logSafe(sp.login))
		sp.cancel()
		return nil, nil, false
	}
	sp.signer = signer
	close(sp.claimed)
	select {
	case <-sp.done:
	case <-c.ctx.Done(): // sp.ctx's parent: run ends too
		return nil, context.Cause(c.ctx), true
	}
	if sp.err != nil && retryable(sp.err) {
		c.log.Debug("speculative upstream connection failed; dialing again", "err", sp.err)
		return nil, nil, false
	}
	up, sp.client = sp.client, nil
	c.log.Debug("speculative upstream connection used", "address", sp.target.Address)
	return up, sp.err, true
}

// retryable reports whether a fresh dial could do better than the
// speculative connection that failed with err: not for a host key the
// bastion does not trust, a target that is not reachable or that refused
// the login.
func retryable(err error) bool {
	var hk *HostKeyError
	var op *net.OpError
	return !errors.As(err, &hk) && !refusedLogin(err) && !(errors.As(err, &op) && op.Op == "dial")
}

// endSpeculation abandons the speculative connection if it was not
// claimed, waits for its goroutine, and closes what it left unclaimed.
func (c *conn) endSpeculation() {
	sp := c.spec
	if sp == nil {
		return
	}
	sp.cancel()
	<-sp.done
	if sp.client != nil {
		sp.client.Close()
	}
}
