package recorder

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// KindApproval seals an approval request as stored after one change: its
// submission, a decision, its end. The newest such entry for a request
// seals the record the index holds.
const KindApproval = "approval"

var bucketApprovals = []byte("approvals")

// maxRequestID bounds the key an approval request is stored under.
const maxRequestID = 64

// ApprovalIndex keeps approval requests: each change is stored and sealed
// in the audit chain in one transaction. The records are opaque here (the
// approval package encodes them). *Local implements it; the admin
// socket's client does not, since requests are decided by the running
// bastion, not written around it.
type ApprovalIndex interface {
	// SaveApproval stores record as request id's and appends an entry
	// for event (what changed) to the audit chain. It returns the
	// chain's new head.
	SaveApproval(ctx context.Context, id, event string, record []byte) (ChainHead, error)
	// Approvals returns every request's record, ordered by ID.
	Approvals(ctx context.Context) ([][]byte, error)
}

var _ ApprovalIndex = (*Local)(nil)

// SaveApproval implements ApprovalIndex.
func (s *Local) SaveApproval(ctx context.Context, id, event string, record []byte) (ChainHead, error) {
	if id == "" || len(id) > maxRequestID || event == "" {
		return ChainHead{}, fmt.Errorf("save approval request %q: bad ID or event", id)
	}
	var head ChainHead
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketApprovals)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(id), record); err != nil {
			return err
		}
		head, err = s.appendChain(tx, ChainEntry{Kind: KindApproval, Request: id, Event: event, Record: recordDigest(record)})
		return err
	})
	if err != nil {
		return ChainHead{}, fmt.Errorf("save approval request %s: %w", id, err)
	}
	return head, nil
}

// Approvals implements ApprovalIndex.
func (s *Local) Approvals(ctx context.Context) ([][]byte, error) {
	var out [][]byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApprovals)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			out = append(out, bytes.Clone(v))
			return nil
		})
	})
	return out, err
}

// snapshotApprovals copies the approval records into snap.
func snapshotApprovals(tx *bolt.Tx, snap *Snapshot) error {
	b := tx.Bucket(bucketApprovals)
	if b == nil {
		return nil
	}
	snap.Approvals = map[string][]byte{}
	return b.ForEach(func(k, v []byte) error {
		snap.Approvals[string(k)] = bytes.Clone(v)
		return nil
	})
}

// approvals checks each approval request's record against the newest
// chain entry that sealed it, and reports records nobody sealed.
func (v *verifier) approvals() {
	for _, id := range slices.Sorted(maps.Keys(v.requests)) {
		e := v.requests[id]
		rec, ok := v.snap.Approvals[id]
		switch {
		case !ok:
			v.add(Problem{ID: "approval " + id, Reason: "approval record deleted"})
		case recordDigest(rec) != e.Record:
			v.add(Problem{ID: "approval " + id, Reason: "approval record edited", Detail: "differs from chain entry " + fmt.Sprint(e.Seq)})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(v.snap.Approvals)) {
		if _, ok := v.requests[id]; !ok {
			v.add(Problem{ID: "approval " + id, Reason: "approval record not sealed in the audit chain"})
		}
	}
	v.rep.Approvals = len(v.requests)
}
