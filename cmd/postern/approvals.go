package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/listing"
	"github.com/postern/postern/recorder"
)

// approvalReader is a store that keeps approval requests: the running
// bastion's admin socket, or the data directory read directly.
type approvalReader interface {
	Approvals(ctx context.Context) ([]recorder.ApprovalRecord, error)
}

// cmdApprovals lists approval requests from the index: what the bastion
// holds now, or (--all) the whole history, as sealed in the audit chain.
// Deciding is done by approvers with their own certificate, over the admin
// connection (ssh postern@bastion approve ID): nobody decides as the
// bastion host's operator.
func cmdApprovals(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("approvals", "approvals [--all] [--json]", stdout)
	af := addAdminFlags(fs)
	all := fs.Bool("all", false, "list every request, decided ones too (the history)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("approvals: unexpected argument %q; approvers decide with 'ssh postern@BASTION approve ID'", fs.Arg(0))
	}
	store, _, closeStore, err := af.open(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore()
	ar, ok := store.(approvalReader)
	if !ok {
		return errors.New("this data directory's index keeps no approval requests")
	}
	recs, err := ar.Approvals(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	list := []approval.Request{}
	for _, rec := range recs {
		var r approval.Request
		if err := json.Unmarshal(rec.Data, &r); err != nil || r.ID != rec.ID {
			return fmt.Errorf("approval request %s: unreadable record (postern verify reports it)", listing.Visible(rec.ID))
		}
		// A request nobody looked at since its deadline is still
		// stored as pending: it can no longer be approved.
		if r.State == approval.StatePending && !now.Before(r.Expires) {
			r.State = approval.StateExpired
		}
		if *all || r.State == approval.StatePending {
			list = append(list, r)
		}
	}
	approval.Sort(list)
	if *asJSON {
		return listing.ApprovalJSON(stdout, list)
	}
	return listing.Approvals(stdout, list, now)
}
