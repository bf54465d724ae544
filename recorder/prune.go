package recorder

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"time"
)

// Prunable reports whether retention deletes s at cutoff: it ended before
// cutoff, or it was interrupted and started before it.
func Prunable(s Session, cutoff time.Time) bool {
	return s.Status != StatusActive && s.End != nil && s.End.Before(cutoff) ||
		s.Status == StatusInterrupted && s.Start.Before(cutoff)
}

// PruneCandidates returns the sessions of st that Prune would delete at
// cutoff, and a *RefusedError for those it would leave alone (nil when
// none is).
//
// Age is judged by the chain, not by the index: a session is old enough
// when the newest chain entry sealing it (its end, or its interruption)
// was written before cutoff, and only an index entry that is the record
// that entry seals is deleted. Anyone who can write postern.db can
// back-date an entry; such an entry is left alone and reported, so
// retention never erases the evidence of an edit. When st has a public
// key (PublicKey, as Local does) the seal's signature is checked too.
// Refused too: an entry whose recording name Check refuses.
func PruneCandidates(ctx context.Context, st Store, cutoff time.Time) ([]Session, error) {
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var pub ed25519.PublicKey
	if k, ok := st.(interface{ PublicKey() ed25519.PublicKey }); ok {
		pub = k.PublicKey()
	}
	seals := recordingSeals(snap.Chain, pub)
	var out []Session
	var refused []Problem
	for _, id := range slices.Sorted(maps.Keys(snap.Sessions)) {
		raw := snap.Sessions[id]
		var s Session
		if err := json.Unmarshal(raw, &s); err != nil {
			refused = append(refused, Problem{ID: id, Reason: "unreadable", Detail: err.Error()})
			continue
		}
		seal, sealed := seals[id]
		old := sealed && seal.Time.Before(cutoff)
		if s.Status == StatusActive || !old && !Prunable(s, cutoff) {
			continue
		}
		switch {
		case !sealed:
			refused = append(refused, Problem{Path: s.Path, ID: id, Reason: "index entry not sealed in the audit chain"})
		case seal.Record != recordDigest(raw):
			refused = append(refused, Problem{Path: s.Path, ID: id, Reason: "index entry edited", Detail: "does not match its seal"})
		case !old:
			// Sealed as it stands, and younger than the cutoff.
		default:
			if err := st.Check(ctx, s.Path); err != nil {
				refused = append(refused, pathProblem(id, s.Path, err))
				continue
			}
			out = append(out, s)
		}
	}
	if len(refused) > 0 {
		return out, &RefusedError{Refused: refused}
	}
	return out, nil
}

// recordingSeals returns the newest seal of each session chain still has
// (one a later prune entry removes is gone), entries with a bad signature
// left out when pub is set.
func recordingSeals(chain []RawEntry, pub ed25519.PublicKey) map[string]ChainEntry {
	seals := map[string]ChainEntry{}
	for _, ent := range chain {
		val := carriedOriginal(ent.Value)
		var e ChainEntry
		if json.Unmarshal(val, &e) != nil {
			continue
		}
		switch e.Kind {
		case KindRecording:
			if pub != nil {
				if _, ok := verifyEntry(pub, val); !ok {
					continue
				}
			}
			seals[e.Recording] = e
		case KindPrune:
			for _, id := range e.Pruned {
				delete(seals, id)
			}
		}
	}
	return seals
}

// Prune deletes the recordings and index entries of sessions that ended
// before cutoff, and records what it deleted in the audit chain. It returns
// the chain entry it appended, nil when nothing was old enough.
//
// A session whose index entry does not match its seal, or whose recording
// name Check refuses, is not pruned: neither its file nor its index entry
// is touched, and Prune returns, with what it did prune, a *RefusedError
// naming it. Such an entry is evidence that the index was edited; deleting
// it under cover of retention would erase that.
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
