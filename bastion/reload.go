package bastion

import (
	"errors"
	"fmt"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/mask"
)

// Reloading the policy (SIGHUP) swaps the Rules a running Server decides
// with: targets, access rules, admins, approval rules and how card numbers
// are detected. Each decision reads the current Rules once (an atomic
// pointer to an immutable value), so a decision never mixes two versions.
// Connections are not dropped: each live proxy connection is judged again
// under the new Rules, and only those the new policy no longer grants (or
// grants with another login or masking) are ended, with a notice, and
// recordings sealed as at any other end. The model is tailscale's SSH
// server, which re-evaluates each session's policy decision when the
// policy changes and terminates the sessions it no longer accepts.

// Rules is the part of a Server's Config that SetRules can replace while
// it runs. A Server never changes a Rules it was given: callers must not
// either, after handing it over.
type Rules struct {
	// Policy decides who reaches which target as which login.
	Policy Policy
	// ApprovalRules: see Config.ApprovalRules.
	ApprovalRules *approval.Policy
	// Admins: see Config.Admins.
	Admins []string
	// Detect: see Config.Detect.
	Detect mask.Detect
}

// rulesOf returns the Rules part of cfg.
func rulesOf(cfg *Config) *Rules {
	return &Rules{Policy: cfg.Policy, ApprovalRules: cfg.ApprovalRules, Admins: cfg.Admins, Detect: cfg.Detect}
}

// CheckRules reports what in r a Server cannot run with: SetRules
// refuses such Rules.
func CheckRules(r *Rules) error { return checkRules(r) }

// checkRules reports what in r a Server cannot run with.
func checkRules(r *Rules) error {
	for _, a := range r.Admins {
		if err := CheckAdmin(a); err != nil {
			return fmt.Errorf("bastion: Config.Admins: %w", err)
		}
	}
	for i := range r.Policy.Targets {
		t := &r.Policy.Targets[i]
		if t.HostKey == nil && t.KnownHostsFile == "" && t.HostCA == nil {
			return fmt.Errorf("bastion: target %q has no host key, known_hosts file or host CA", t.Name)
		}
	}
	return nil
}

// current returns the Rules in force. Read it once per decision. A
// Server not made by New (tests) has its Config's.
func (s *Server) current() *Rules {
	if r := s.rules.Load(); r != nil {
		return r
	}
	return rulesOf(&s.cfg)
}

// SetRules makes r the Rules of every decision from now on, then judges
// each live proxy connection again under r and ends those it no longer
// grants, telling their users why. It returns how many it ended. Invalid
// Rules are refused and change nothing. It is safe for concurrent use.
func (s *Server) SetRules(r Rules) (ended int, err error) {
	if err := checkRules(&r); err != nil {
		return 0, err
	}
	p := &r
	s.rules.Store(p)
	// A connection whose handshake is still running decided under the
	// old Rules; watchCert judges it again once it is done. This reads
	// liveCert after the store, watchCert reads the Rules after setting
	// it: one of the two sees the other.
	for _, c := range s.liveConns() {
		if c.recheck(p) {
			ended++
		}
	}
	return ended, nil
}

// liveConns returns the connections open now.
func (s *Server) liveConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// recheck judges an authenticated proxy connection again under r, once
// per Rules, and ends it if r no longer grants what it was granted. It
// reports whether it ended the connection.
func (c *conn) recheck(r *Rules) bool {
	c.mu.Lock()
	authed := c.liveCert != nil
	c.mu.Unlock()
	if !authed || c.admin || c.ctx.Err() != nil {
		return false // an admin connection's commands each decide anew
	}
	old := c.decided.Load()
	if old == r || !c.decided.CompareAndSwap(old, r) {
		return false
	}
	reason, notice := c.revalidate(old, r)
	if reason == "" {
		return false
	}
	c.endFor("policy_changed", notice, "reason", logSafe(reason))
	return true
}

// revalidate says why r does not grant the connection what it had under
// was, and what to tell its user; "" if it still does.
func (c *conn) revalidate(was, r *Rules) (reason, notice string) {
	name, login := c.grant.Target.Name, logSafe(c.grant.Login)
	lost := fmt.Sprintf("postern: your access to %s as %s was removed by a policy change", name, login)
	g, err := r.Policy.Decide(c.identity, c.user)
	if err != nil {
		var de *DenyError
		if !errors.As(err, &de) {
			return err.Error(), lost
		}
		return de.Reason, lost + " (" + de.UserMessage() + ")"
	}
	if g.Target.Name != name || g.Login != c.grant.Login {
		return "now granted as " + g.Login + " on " + g.Target.Name, lost + "; reconnect"
	}
	if g.Target.Masking != c.grant.Target.Masking {
		return "masking of the target changed to " + shown(g.Target.Masking),
			"postern: the masking of " + name + " changed; reconnect to go on under it"
	}
	if why := narrowed(c.grant, g); why != "" {
		return why, fmt.Sprintf("postern: what you may do on %s as %s was narrowed by a policy change (%s); reconnect", name, login, why)
	}
	if why := judgedNow(was, r, c.subject()); why != "" {
		return why, fmt.Sprintf("postern: what you may do on %s as %s was narrowed by a policy change (%s); reconnect", name, login, why)
	}
	if r.ApprovalRules != nil {
		// A connection made without a grant has no timer to end it
		// with one: it reconnects on its grant. One made on a grant
		// goes on while that grant stands for the rule in force.
		if ar := r.ApprovalRules.NeedsGrant(c.subject()); ar != nil {
			if c.access == nil || !grantStands(*c.access, ar) {
				return "access rule " + ar.Name + " needs a grant",
					fmt.Sprintf("postern: access to %s as %s now needs an approved request (rule %s); ask with: ssh %s@bastion request %s --login %s --for 1h --reason WHY",
						name, login, logSafe(ar.Name), AdminUser, name, login)
			}
		}
	}
	return "", ""
}

// judgeAgain is called once a connection is authenticated (watchCert):
// if the Rules changed since its handshake decided, it is judged again.
func (c *conn) judgeAgain() {
	if r := c.s.current(); r != c.decided.Load() {
		c.recheck(r)
	}
}
