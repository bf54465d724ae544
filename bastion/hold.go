package bastion

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/internal/listing"
	"github.com/postern/postern/mask"
)

// The approval gate for exec channels. startProgram asks the rules about an
// exec's command line before it reaches the target: allowed, it runs at
// once; denied, the user is told why and the channel exits 126 without the
// target seeing anything; held, the user is told the request's ID and the
// channel waits, still handling its other requests (window changes,
// signals), until approvers decide, the request expires, or the client
// leaves (which cancels it).

// ExitRefused is the exit status of a command the rules refused, denied
// approval, or whose approval expired: the shell's "found but could not be
// run".
const ExitRefused = 126

// ReasonEnv is the environment variable through which a requester gives
// the reason for a held command: ssh -o SetEnv=POSTERN_REASON=….
const ReasonEnv = "POSTERN_REASON"

// maxReason caps the reason a requester sends.
const maxReason = 500

// errClientLeft cancels a request whose requester closed the channel.
var errClientLeft = errors.New("the client closed the channel while the command was held")

// subject is the connection as the approval rules see it.
func (c *conn) subject() *approval.Subject {
	t := c.grant.Target
	return &approval.Subject{Principals: c.identity.Principals, Groups: c.identity.Groups, Target: t.Name, Labels: t.Labels, Login: c.grant.Login}
}

// gate applies the approval rules to p before it starts. It reports
// whether it took the program over (refused or held); then it, not
// startProgram, closes ready when the channel may go on.
func (st *channel) gate(r *ssh.Request, p program) bool {
	c := st.c
	rules := c.s.current().ApprovalRules
	// A shell has no command line: its lines are judged as they are
	// typed (shellhold.go); an sftp subsystem has none either.
	if rules == nil || len(rules.Rules) == 0 || p.kind == "shell" || p.kind == "sftp" {
		return false
	}
	v := rules.Decide(c.subject(), p.command)
	switch v.Action {
	case approval.Allow:
		return false
	case approval.Approve:
		if c.s.cfg.Approvals != nil {
			st.hold(r, p, v, rules)
			return true
		}
		// Rules ask for approval but nothing can hold: fail closed.
		v.Reason += "; this bastion cannot hold commands for approval"
	}
	msg := fmt.Sprintf("postern: refused by rule %s: %s", ruleName(v.Rule), v.Reason)
	st.rec.marker(logSafe(msg))
	audit.Record(c.log, audit.ProgramRefused, "channel", st.n, "rule", logSafe(ruleName(v.Rule)), "reason", logSafe(v.Reason))
	st.reply(r, true)
	st.endRefused(msg)
	st.setReady()
	return true
}

func ruleName(r *approval.Rule) string {
	if r == nil {
		return "(none)"
	}
	return r.Name
}

// endRefused ends a channel whose command did not run: msg on stderr, then
// exit status ExitRefused once the target's side closes.
func (st *channel) endRefused(msg string) {
	st.clientErr().Write([]byte(logSafe(msg) + "\r\n"))
	st.noticeSent.Store(true)
	st.mu.Lock()
	code := ExitRefused
	st.ownExit = &code
	st.mu.Unlock()
	st.uch.Close()
}

// hold submits p's command for approval, tells the user, and waits in a
// goroutine of the connection's for the decision; asked are the rules
// that held it.
func (st *channel) hold(r *ssh.Request, p program, v approval.Verdict, asked *approval.Policy) {
	c := st.c
	req, err := st.submit(p.command, v)
	if err != nil {
		st.reply(r, true)
		if !errors.Is(err, errUnrecorded) { // else the channel ends with the recording's cause
			st.endRefused("postern: not run: " + st.submitFailed(err))
		}
		st.setReady()
		return
	}
	st.reply(r, true)
	st.clientErr().Write([]byte(heldNotice(req, v) + "\r\n"))
	// Its user waits, told so: a drain or the duration's end is news.
	st.openNotices()
	c.goSafe(func() {
		defer st.setReady()
		st.awaitDecision(r, p, req.ID, asked)
	})
}

// errUnrecorded is submit's error when the recording could not take the
// request's marker (its cap): the request was withdrawn and the channel
// ended with the recording's cause, which teardown shows.
var errUnrecorded = errors.New("the approval request could not be recorded")

// submit asks the approvers of v's rule about line (an exec's command or
// a line typed in a shell) and notes the request in the recording. A
// request the recording cannot note could only fail once decided (its
// approval could not be recorded either): it is withdrawn at once and the
// channel ends (errUnrecorded), instead of the user waiting for approvers
// who are asked about a command that cannot run.
func (st *channel) submit(line string, v approval.Verdict) (approval.Request, error) {
	c := st.c
	rule := v.Rule
	req, err := c.s.cfg.Approvals.Submit(st.ctx, approval.Request{
		Kind: approval.KindCommand, Requester: c.identity.Name(), RequesterPrincipals: c.identity.Principals,
		Target: c.grant.Target.Name, Login: c.grant.Login, Session: st.rec.id(), Line: st.storedCommand(line),
		Reason: st.reason(), Why: logSafe(v.Reason), Rule: rule.Name, Approvers: rule.Approvers, Required: rule.Approvals(),
		Expires: time.Now().Add(rule.Wait()),
	})
	if err != nil {
		return req, err
	}
	if err := st.rec.marker(fmt.Sprintf("approval requested: %s, rule %s", req.ID, rule.Name)); err != nil {
		c.withdraw(req.ID, err)
		st.fail(err)
		return req, errUnrecorded
	}
	return req, nil
}

// withdraw cancels request id, which nobody will wait for because cause
// ended what it held: cancelled as when its requester leaves (Wait on an
// ended context), saved and audited, so that no approver is left with it.
// Decided meanwhile, it stays as decided; its requester acts on nothing.
func (c *conn) withdraw(id string, cause error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if _, err := c.s.cfg.Approvals.Wait(ctx, id); err != nil && !errors.Is(err, cause) {
		c.log.Error("approval request not withdrawn", "request", id, "err", err)
	}
}

// submitFailed is what the user is told when submit failed.
func (st *channel) submitFailed(err error) string {
	msg := userMessage(err, "")
	if msg == "" {
		st.c.log.Error("approval request not recorded", "err", err)
		msg = "the request for approval could not be recorded"
	}
	return msg
}

// heldNotice tells the user that req holds their command, and why.
func heldNotice(req approval.Request, v approval.Verdict) string {
	return fmt.Sprintf("postern: held for approval (request %s, rule %s, expires in %s): %s",
		req.ID, logSafe(v.Rule.Name), v.Rule.Wait().Round(time.Second), logSafe(v.Reason))
}

// awaitDecision waits for request id and runs p if it is approved while
// the rules asked are in force. The wait ends, cancelling the request,
// when the channel ends.
func (st *channel) awaitDecision(r *ssh.Request, p program, id string, asked *approval.Policy) {
	c := st.c
	ctx, cancel := context.WithCancelCause(st.ctx)
	defer cancel(nil)
	watch := make(chan struct{})
	defer close(watch)
	c.goSafe(func() {
		select {
		case <-st.done:
			cancel(errClientLeft)
		case <-watch:
		}
	})
	w, err := c.s.cfg.Approvals.Wait(ctx, id)
	if st.failure() != nil {
		// The channel failed while it waited (a notice its recording
		// could not take): nothing runs, and teardown shows why.
		return
	}
	if err != nil && w.State != approval.StateCancelled {
		c.log.Error("approval wait failed", "request", id, "err", err)
	}
	if w.State != approval.StateApproved {
		msg := fmt.Sprintf("postern: request %s %s%s; the command did not run", id, w.State, decisionText(w))
		st.rec.marker(logSafe(msg))
		st.endRefused(msg)
		return
	}
	if !sameApprovalRules(asked, c.s.current().ApprovalRules) {
		msg := voidedApproval(id, "command")
		st.rec.marker(msg)
		audit.Record(c.log, audit.ProgramRefused, "channel", st.n, "request", id, "reason", "approved under replaced rules")
		st.endRefused(msg)
		return
	}
	if err := st.rec.marker(fmt.Sprintf("approval granted: %s%s", id, decisionText(w))); err != nil {
		// The recording ended (its cap): what it cannot vouch for
		// does not run, and teardown shows why.
		st.fail(err)
		return
	}
	st.clientErr().Write([]byte(logSafe(fmt.Sprintf("postern: request %s approved%s; running", id, decisionText(w))) + "\r\n"))
	ok, err := st.uch.SendRequest(r.Type, true, p.payload)
	if !ok || err != nil {
		c.log.Info("target refused the session's program", "request", r.Type, "channel", st.n)
		st.endRefused("postern: the target refused to run the approved command")
	}
}

// decisionText says who decided w and why, for the user: " by bob: ok".
// The approver's words go to the requester's terminal: made visible, so
// that they cannot act on it or forge a line of the bastion's.
func decisionText(w approval.Request) string {
	if len(w.Decisions) == 0 {
		return ""
	}
	s := " by "
	for i, d := range w.Decisions {
		if i > 0 {
			s += " and "
		}
		s += listing.Visible(d.By)
	}
	if d := w.Decisions[len(w.Decisions)-1]; d.Reason != "" {
		s += ": " + listing.Visible(d.Reason)
	}
	return s
}

// storedCommand is command as the index and approvers see it: masked as
// the target's output is, and fully where its masking is off (invariant 1
// covers the index whatever a target's setting).
func (st *channel) storedCommand(command string) string {
	mode, ok := st.c.maskMode()
	if !ok {
		mode = mask.ModeFull
	}
	return maskText(command, mode, st.c.maskDetect())
}

// setReason keeps the requester's reason for a held command.
func (st *channel) setReason(s string) {
	if len(s) > maxReason {
		s = s[:maxReason]
	}
	st.mu.Lock()
	st.reasonText = logSafe(s)
	st.mu.Unlock()
}

func (st *channel) reason() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.reasonText
}
