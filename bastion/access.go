package bastion

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/audit"
)

// Just-in-time access: an approval rule with access: request covers
// connections that need an approved grant. The requester asks over the
// admin connection (request TARGET --for 1h --reason …), an approver
// approves it like a held command, and for the window it grants the
// requester may connect; when it ends, the connection is closed with a
// notice.

// maxGrant caps how long a grant may last.
const maxGrant = 24 * time.Hour

// needsGrant finds the approved grant a just-in-time access rule asks for
// this connection, or refuses it with how to ask for one.
func (c *conn) needsGrant() *DenyError {
	rules := c.decided.Load().ApprovalRules
	if rules == nil {
		return nil
	}
	r := rules.NeedsGrant(c.subject())
	if r == nil {
		return nil
	}
	if b := c.s.cfg.Approvals; b != nil {
		stands := func(g approval.Request) bool { return grantStands(g, r) }
		if g, ok := b.GrantedFor(c.identity.Principals, c.grant.Target.Name, c.grant.Login, stands); ok {
			c.access = &g
			return nil
		}
	}
	how := "this bastion cannot take access requests"
	if c.s.cfg.Approvals != nil {
		how = fmt.Sprintf("ask with: ssh %s@bastion request %s --login %s --for 1h --reason WHY", AdminUser, c.grant.Target.Name, logSafe(c.grant.Login))
	}
	return &DenyError{
		Message: fmt.Sprintf("postern: access to %s as %s needs an approved request (rule %s); %s",
			c.grant.Target.Name, logSafe(c.grant.Login), logSafe(r.Name), how),
		Reason: "access rule " + r.Name + " needs a grant",
	}
}

// endAtGrant ends the connection when its access grant does, telling the
// user why; the returned function stops the timer.
func (c *conn) endAtGrant() func() {
	g := c.access
	c.log.Info("connected on an access grant", "request", g.ID, "grant_until", g.GrantUntil)
	return c.endAt(*g.GrantUntil, func() {
		audit.Record(c.log, audit.Approval, "change", "grant_ended", "request", g.ID, "kind", g.Kind,
			"requester", logSafe(g.Requester), "target", logSafe(g.Target), "login", logSafe(g.Login))
		c.terminate(endCause(fmt.Sprintf("postern: your access to %s (request %s) ended at %s",
			c.grant.Target.Name, g.ID, g.GrantUntil.UTC().Format(time.RFC3339))))
	})
}

// runRequestAccess is the admin command request: ask for just-in-time
// access to a target.
func runRequestAccess(x *adminExec, args []string) error {
	fs := x.flags()
	login := fs.String("login", "", "")
	dur := fs.Duration("for", 0, "")
	target, rest := splitID(args)
	var reason string
	for i, a := range rest {
		if a == "--reason" || strings.HasPrefix(a, "--reason=") {
			reason = strings.TrimPrefix(strings.TrimPrefix(strings.Join(rest[i:], " "), "--reason"), "=")
			rest = rest[:i]
			break
		}
	}
	if err := x.parse(fs, rest); err != nil {
		return ignoreHelp(err)
	}
	reason = logSafe(strings.TrimSpace(reason))
	switch {
	case target == "":
		return usagef("request: name the target; usage: %s", adminCommands["request"].usage)
	case *dur <= 0 || *dur > maxGrant:
		return usagef("request: --for must be a duration up to %s, like 1h", maxGrant)
	case reason == "":
		return usagef("request: say why with --reason; the approvers are shown it")
	}
	b, err := x.broker()
	if err != nil {
		return err
	}
	c := x.c
	user := target
	if *login != "" {
		user = *login + "@" + target
	}
	r := c.s.current()
	g, err := r.Policy.Decide(c.identity, user)
	if err != nil {
		return &refusedError{msg: userMessage(err, "postern: access denied"), reason: "policy denies the target"}
	}
	sub := &approval.Subject{Principals: c.identity.Principals, Groups: c.identity.Groups, Target: g.Target.Name, Labels: g.Target.Labels, Login: g.Login}
	var rule *approval.Rule
	if rules := r.ApprovalRules; rules != nil {
		rule = rules.NeedsGrant(sub)
	}
	if rule == nil {
		return &refusedError{msg: fmt.Sprintf("%s as %s needs no request: connect directly", g.Target.Name, shown(g.Login)), reason: "no access rule"}
	}
	req, err := b.Submit(x.ctx, approval.Request{Kind: approval.KindAccess, Requester: c.identity.Name(), RequesterPrincipals: c.identity.Principals,
		Target: g.Target.Name, Login: g.Login, Reason: reason, Rule: rule.Name, Approvers: rule.Approvers, Required: rule.Approvals(),
		For: *dur, Expires: time.Now().Add(rule.Wait())})
	if err != nil {
		return &refusedError{msg: userMessage(err, "the request could not be recorded"), reason: "request not recorded"}
	}
	fmt.Fprintf(x.stdout, "request %s: access to %s as %s for %s, waiting for approval by group %s (rule %s, expires in %s)\n",
		req.ID, g.Target.Name, shown(g.Login), *dur, strings.Join(rule.Approvers, " or "), shown(rule.Name), rule.Wait().Round(time.Second))
	return nil
}

// identityOf is who a certificate the CA signed says its holder is.
func identityOf(cert *ssh.Certificate) Identity {
	return Identity{Principals: cert.ValidPrincipals, Groups: certs.Groups(cert), KeyID: cert.KeyId, Serial: cert.Serial}
}
