package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"slices"
)

// VerifyStore verifies st as it stands: it lists the recordings first and
// then takes a snapshot of the index, so that every file listed was begun
// before the snapshot (the bastion begins a session in the index before it
// creates its file) and a session starting meanwhile is never reported as
// added.
func VerifyStore(ctx context.Context, st Store, o VerifyOptions) (Report, error) {
	files, err := st.Files(ctx)
	if err != nil {
		return Report{Problems: []Problem{}, Active: []Active{}}, err
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return Report{Problems: []Problem{}, Active: []Active{}}, err
	}
	rep, err := Verify(ctx, snap, files, st, o)
	if err != nil || !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Reason == "deleted" }) {
		return rep, err
	}
	// Reading the files takes a while: a prune may have deleted one
	// since the snapshot. If the chain as it stands now extends the
	// snapshot's, and a prune entry it gained (linked and signed)
	// deletes that session, its file is gone as the chain says.
	later, err := st.Snapshot(ctx)
	if err != nil {
		return rep, err
	}
	gone := prunedSince(snap.Chain, later.Chain, o.Key)
	rep.Problems = slices.DeleteFunc(rep.Problems, func(p Problem) bool { return p.Reason == "deleted" && gone[p.ID] })
	return rep, nil
}

// prunedSince returns the sessions pruned by entries of later that follow
// the entries of earlier, when later begins with earlier unchanged; it
// stops at the first entry that does not link to the one before or is not
// signed with pub.
func prunedSince(earlier, later []RawEntry, pub ed25519.PublicKey) map[string]bool {
	gone := map[string]bool{}
	if len(later) < len(earlier) {
		return gone
	}
	for i, ent := range earlier {
		if !bytes.Equal(ent.Key, later[i].Key) || !bytes.Equal(ent.Value, later[i].Value) {
			return gone
		}
	}
	prev := ""
	if n := len(earlier); n > 0 {
		prev = recordDigest(earlier[n-1].Value)
	}
	for i, ent := range later[len(earlier):] {
		e, ok := verifyEntry(pub, ent.Value)
		seq := uint64(len(earlier) + i)
		if !ok || e.Prev != prev || e.Seq != seq || !bytes.Equal(ent.Key, seqKey(seq)) {
			break
		}
		prev = recordDigest(ent.Value)
		if e.Kind == KindPrune {
			for _, id := range e.Pruned {
				gone[id] = true
			}
		}
	}
	return gone
}
