package recorder

import (
	"bytes"
	"context"
	"errors"
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
	// Approvals returns the requests' records, ordered by ID: only those
	// that the newest chain entry for their ID seals as stored, so that
	// a record written around the bastion (a forged grant) is never
	// acted on. The others are logged, and verify reports them.
	Approvals(ctx context.Context) ([]ApprovalRecord, error)
}

// ApprovalRecord is an approval request's record as stored under its ID.
type ApprovalRecord struct {
	ID   string
	Data []byte
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

// Approvals implements ApprovalIndex. It reads the whole chain for the
// seals: a cost paid once, when the bastion starts.
func (s *Local) Approvals(ctx context.Context) ([]ApprovalRecord, error) {
	var out []ApprovalRecord
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApprovals)
		if b == nil {
			return nil
		}
		seals, err := s.approvalSeals(tx)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if seal, ok := seals[string(k)]; !ok || seal != recordDigest(v) {
				s.log.Warn("approval request record not sealed as stored: ignored (postern verify reports it)", "request", string(bytes.ToValidUTF8(k, []byte("?"))))
				return nil
			}
			out = append(out, ApprovalRecord{ID: string(k), Data: bytes.Clone(v)})
			return nil
		})
	})
	return out, err
}

// approvalSeals returns the record digest of the newest approval entry per
// request ID among the chain entries signed with the store's key.
func (s *Local) approvalSeals(tx *bolt.Tx) (map[string]string, error) {
	seals := map[string]string{}
	pub := s.PublicKey()
	if pub == nil {
		return nil, errors.New("no audit key: cannot check approval requests against the audit chain")
	}
	err := tx.Bucket(bucketChain).ForEach(func(_, v []byte) error {
		if bytes.Contains(v, []byte(`"kind":"carried"`)) {
			if c, ok := verifyEntry(pub, v); ok && c.Kind == KindCarried {
				v = []byte(c.Original) // carried over by an index rebuild
			}
		}
		if !bytes.Contains(v, []byte(`"kind":"approval"`)) {
			return nil // not one: skip the signature check
		}
		if e, ok := verifyEntry(pub, v); ok && e.Kind == KindApproval {
			seals[e.Request] = e.Record
		}
		return nil
	})
	return seals, err
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
