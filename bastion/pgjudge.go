package bastion

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/mask"
	"github.com/postern/postern/pgproxy"
)

// The approval gate for the statements of postgres forwards. The relay asks
// judgeSQL about each Query, Execute and FunctionCall before it reaches the
// server; the SQL rules (approval.Policy.DecideSQL) decide: allowed, it
// goes on; denied, the client gets an ERROR with the rule and the reason,
// and its connection goes on; held, the client is sent a NOTICE with the
// request's ID and waits (its next messages wait in the relay) until
// approvers decide, the request expires, or the client leaves (which
// cancels it). Denied, expired or cancelled, it is refused as a denied
// one is.

// sqlJudge returns the Judge of f's postgres relay, or nil when no SQL rule
// in scope of f's connection could hold or refuse a statement.
func (f *forward) sqlJudge() func(context.Context, pgproxy.Statement) error {
	rules := f.c.s.current().ApprovalRules
	if !rules.JudgesSQL(f.c.subject()) {
		return nil
	}
	return f.judgeSQL
}

// judgeSQL decides st by the SQL rules.
func (f *forward) judgeSQL(ctx context.Context, st pgproxy.Statement) error {
	c := f.c
	rules := c.s.current().ApprovalRules
	var v approval.Verdict
	var lookupErr error
	switch {
	case st.Protocol == "function":
		v = rules.DecideSQLUnjudged(c.subject(), "a fast-path function call")
	case st.Text == "":
		v = rules.DecideSQLUnjudged(c.subject(), "a portal whose statement the bastion did not see")
	default:
		// The rules judge the text as sent (st.SQL), never its masked
		// record: masking's '*' could make a comment of /4111…; and
		// what an EXECUTE runs of the protocol's prepared statements.
		v = rules.DecideSQLPrepared(c.subject(), st.SQL, func(name string) (string, bool) {
			text, sql, ok, err := pgproxy.PreparedStatement(ctx, name)
			if err != nil && lookupErr == nil {
				lookupErr = err
			}
			if ok {
				st.Text += "\n-- EXECUTE " + name + " runs: " + text
			}
			return sql, ok
		})
	}
	// The reason quotes the statement as sent: masked as its record is.
	v.Reason = f.storedStatement(v.Reason)
	if lookupErr != nil {
		return &pgproxy.Denied{Message: "postern: not run: the statement an EXECUTE runs could not be looked up"}
	}
	switch v.Action {
	case approval.Allow:
		return nil
	case approval.Approve:
		if c.s.cfg.Approvals != nil {
			return f.holdSQL(ctx, st, v, rules)
		}
		// Rules ask for approval but nothing can hold: fail closed.
		v.Reason += "; this bastion cannot hold statements for approval"
	}
	msg := fmt.Sprintf("postern: refused by rule %s: %s", ruleName(v.Rule), v.Reason)
	f.rec.marker(logSafe(msg))
	audit.Record(f.log, audit.ProgramRefused, "forward", f.id, "statement", st.Seq, "rule", logSafe(ruleName(v.Rule)), "reason", logSafe(v.Reason))
	return &pgproxy.Denied{Message: logSafe(msg)}
}

// holdSQL asks the approvers of v's rule (among asked) about st and waits
// for them.
func (f *forward) holdSQL(ctx context.Context, st pgproxy.Statement, v approval.Verdict, asked *approval.Policy) error {
	c := f.c
	rule := v.Rule
	f.mu.Lock()
	db, user := f.pg.database, f.pg.user
	f.mu.Unlock()
	req, err := c.s.cfg.Approvals.Submit(ctx, approval.Request{
		Kind: approval.KindSQL, Requester: c.identity.Name(), RequesterPrincipals: c.identity.Principals,
		Target: c.grant.Target.Name, Login: c.grant.Login, Session: f.id, Line: f.storedStatement(st.Text),
		Database: db, DBUser: user, Why: logSafe(v.Reason), Rule: rule.Name, Approvers: rule.Approvers,
		Required: rule.Approvals(), Expires: time.Now().Add(rule.Wait()),
	})
	if err != nil {
		msg := userMessage(err, "")
		if msg == "" {
			c.log.Error("approval request not recorded", "err", err)
			msg = "the request for approval could not be recorded"
		}
		return &pgproxy.Denied{Message: "postern: not run: " + logSafe(msg)}
	}
	if err := f.rec.marker(fmt.Sprintf("approval requested: %s, rule %s", req.ID, rule.Name)); err != nil {
		// The recording ended (its cap): the statement could never
		// be run, so nobody is asked about it and the forward ends.
		c.withdraw(req.ID, err)
		return err
	}
	pgproxy.Notice(ctx, heldNotice(req, v)+"; the statement waits")
	w, err := c.s.cfg.Approvals.Wait(ctx, req.ID)
	if err != nil && w.State != approval.StateCancelled {
		c.log.Error("approval wait failed", "request", req.ID, "err", err)
	}
	if w.State != approval.StateApproved {
		why := decisionText(w)
		if errors.Is(err, pgproxy.ErrClientLeft) {
			why = ": the client closed the connection"
		}
		msg := fmt.Sprintf("postern: request %s %s%s; the statement did not run", req.ID, w.State, why)
		f.rec.marker(logSafe(msg))
		return &pgproxy.Denied{Message: logSafe(msg)}
	}
	if !sameApprovalRules(asked, c.s.current().ApprovalRules) {
		msg := voidedApproval(req.ID, "statement")
		f.rec.marker(msg)
		return &pgproxy.Denied{Message: msg}
	}
	if err := f.rec.marker(fmt.Sprintf("approval granted: %s%s", req.ID, decisionText(w))); err != nil {
		return err // the recording ended: the forward ends, the statement unsent
	}
	pgproxy.Notice(ctx, logSafe(fmt.Sprintf("postern: request %s approved%s; running", req.ID, decisionText(w))))
	return nil
}

// storedStatement is a statement's text as the index and approvers see
// it: masked as the target's output is, and fully where its masking is
// off (invariant 1 covers the index whatever a target's setting).
func (f *forward) storedStatement(text string) string {
	mode, ok := f.c.maskMode()
	if !ok {
		mode = mask.ModeFull
	}
	return maskText(text, mode, f.c.maskDetect())
}
