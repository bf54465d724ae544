package recorder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Prunable reports whether retention deletes s at cutoff: it ended before
// cutoff, or it was interrupted and started before it.
func Prunable(s Session, cutoff time.Time) bool {
	return s.Status != StatusActive && s.End != nil && s.End.Before(cutoff) ||
		s.Status == StatusInterrupted && s.Start.Before(cutoff)
}

// PruneCandidates returns the sessions of st that Prune would delete at
// cutoff, and a *RefusedError for those it would leave alone because their
// recording's name is refused (nil when none is).
func PruneCandidates(ctx context.Context, st Store, cutoff time.Time) ([]Session, error) {
	all, err := st.List(ctx, Filter{Until: cutoff})
	if err != nil {
		return nil, err
	}
	var out []Session
	var refused []Problem
	for _, s := range all {
		if !Prunable(s, cutoff) {
			continue
		}
		if err := st.Check(ctx, s.Path); err != nil {
			refused = append(refused, pathProblem(s.ID, s.Path, err))
			continue
		}
		out = append(out, s)
	}
	if len(refused) > 0 {
		return out, &RefusedError{Refused: refused}
	}
	return out, nil
}

// Prune deletes the recordings and index entries of sessions that ended
// before cutoff, and records what it deleted in the audit chain. It returns
// the chain entry it appended, nil when nothing was old enough.
//
// A session whose recording name Check refuses is not pruned: neither its
// file nor its index entry is touched, and Prune returns, with what it did
// prune, a *RefusedError naming it. Such an entry is evidence that the
// index was edited; deleting it under cover of retention would erase that.
func Prune(ctx context.Context, st Store, cutoff time.Time) ([]Session, *ChainHead, error) {
	cands, rerr := PruneCandidates(ctx, st, cutoff)
	var refused *RefusedError
	if rerr != nil && !errors.As(rerr, &refused) {
		return nil, nil, rerr
	}
	if len(cands) == 0 {
		return nil, nil, rerr
	}
	ids := make([]string, len(cands))
	for i, s := range cands {
		ids[i] = s.ID
	}
	pruned, head, err := st.Prune(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	// Files go after the chain says so: a crash in between leaves files
	// that verify reports as "pruned but present", never silent loss.
	for _, rec := range pruned {
		if err := st.Remove(ctx, rec.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return pruned, head, errors.Join(fmt.Errorf("delete %s: %w", rec.Path, err), rerr)
		}
	}
	return pruned, head, rerr
}
