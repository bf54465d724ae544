package bastion

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// ApprovalStore keeps approval requests in the session index, each change
// sealed in the audit chain. log receives a warning for a stored record
// that cannot be read (verify reports it as edited or unsealed).
func ApprovalStore(idx recorder.ApprovalIndex, log *slog.Logger) approval.Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return approvalStore{idx: idx, log: log}
}

type approvalStore struct {
	idx recorder.ApprovalIndex
	log *slog.Logger
}

func (s approvalStore) SaveRequest(ctx context.Context, event string, r approval.Request) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	head, err := s.idx.SaveApproval(ctx, r.ID, event, data)
	if err != nil {
		return err
	}
	s.log.Debug("approval request sealed", "request", r.ID, "event", event, "chain_head", head.String())
	return nil
}

// Requests skips a record that does not decode, or names another ID than
// the one it is stored under, rather than refusing to start: nothing in it can be trusted, and it is
// not approved by being skipped.
func (s approvalStore) Requests(ctx context.Context) ([]approval.Request, error) {
	recs, err := s.idx.Approvals(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]approval.Request, 0, len(recs))
	for _, rec := range recs {
		var r approval.Request
		if err := json.Unmarshal(rec.Data, &r); err != nil || r.ID != rec.ID || !approval.ValidID(r.ID) {
			s.log.Warn("approval request record unreadable; ignored (postern verify reports edits)", "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// ApprovalAudit returns the Broker's audit hook: one audit record per
// change to a request (the index seals the change itself).
func ApprovalAudit(log *slog.Logger) func(context.Context, approval.Change) error {
	return func(_ context.Context, c approval.Change) error {
		r := c.Request
		attrs := []any{"change", c.Event, "request", r.ID, "kind", r.Kind, "state", r.State, "requester", logSafe(r.Requester),
			"target", logSafe(r.Target), "login", logSafe(r.Login), "rule", logSafe(r.Rule), "approvals_required", r.Required}
		if r.Session != "" {
			attrs = append(attrs, "session", r.Session)
		}
		if r.Line != "" {
			attrs = append(attrs, "command_line", logSafe(r.Line))
		}
		if r.Kind == approval.KindSQL {
			attrs = append(attrs, "database", logSafe(r.Database), "db_user", logSafe(r.DBUser))
		}
		if c.Event == "requested" {
			attrs = append(attrs, "request_reason", logSafe(r.Reason), "why", logSafe(r.Why))
			if r.Kind == approval.KindAccess {
				attrs = append(attrs, "for", r.For.String())
			}
		}
		if d := c.Decision; d != nil {
			attrs = append(attrs, "by", logSafe(d.By), "approve", d.Approve, "reason", logSafe(d.Reason))
		}
		audit.Record(log, audit.Approval, attrs...)
		return nil
	}
}
