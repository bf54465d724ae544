package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// MarkInterrupted implements Index: the file of each session holds a valid
// prefix, and its digest as found is what the chain records.
//
// Only an entry the bastion began is sealed: one whose KindBegin chain
// entry, signed with the store's key, names it as stored. Any other active
// entry was written by someone else (or edited since); sealing it with the
// bastion's key would make a forgery look genuine. Such entries are left
// as they are, for verify to report, and logged (Options.Log, a warning
// each): they are no reason for the bastion not to start. A chain with no
// begin entry but sealed recordings was written before Begin sealed (see
// Verify): its active entries are sealed as before.
func (s *Local) MarkInterrupted(ctx context.Context) ([]string, error) {
	var ids []string
	var refused []Problem
	err := s.update(ctx, func(tx *bolt.Tx) error {
		ids, refused = nil, nil
		active, raw, err := activeEntries(tx)
		if err != nil || len(active) == 0 {
			return err
		}
		begun, legacy := s.begins(tx, raw)
		for _, rec := range active {
			if p, ok := beginProblem(rec, raw[rec.ID], begun, legacy); !ok {
				refused = append(refused, p)
				continue
			}
			rec.Status = StatusInterrupted
			if path, err := s.RecordingFile(rec.Path); err == nil {
				if sum, size, err := fileDigest(path); err == nil {
					rec.SHA256, rec.Size = sum, size
				}
			}
			if _, err := s.seal(tx, rec); err != nil {
				return err
			}
			ids = append(ids, rec.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, p := range refused {
		s.log.Warn("active index entry left unsealed: the bastion did not begin it as it stands",
			"recording", p.ID, "path", p.Path, "reason", p.Reason)
	}
	return ids, nil
}

// activeEntries returns the active sessions of the index and each one's
// record as stored (copied out of tx).
func activeEntries(tx *bolt.Tx) ([]Session, map[string][]byte, error) {
	var active []Session
	raw := map[string][]byte{}
	err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		var rec Session
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("index entry %s: %w", k, err)
		}
		if rec.Status == StatusActive {
			active = append(active, rec)
			raw[rec.ID] = bytes.Clone(v)
		}
		return nil
	})
	return active, raw, err
}

// begins finds the begin entries, signed with the store's key, of the
// sessions in want, reading the chain from its newest entry back and
// stopping when each is found. legacy reports a chain written before
// Begin sealed: no begin entry at all, and at least one recording sealed.
func (s *Local) begins(tx *bolt.Tx, want map[string][]byte) (begun map[string]ChainEntry, legacy bool) {
	begun = map[string]ChainEntry{}
	pub := s.PublicKey()
	anyBegin, anyRecording := false, false
	c := tx.Bucket(bucketChain).Cursor()
	for k, v := c.Last(); k != nil && len(begun) < len(want); k, v = c.Prev() {
		var head struct{ Kind, Recording string }
		if json.Unmarshal(v, &head) != nil {
			continue
		}
		anyBegin = anyBegin || head.Kind == KindBegin
		anyRecording = anyRecording || head.Kind == KindRecording
		if _, ok := want[head.Recording]; !ok || head.Kind != KindBegin {
			continue
		}
		if _, seen := begun[head.Recording]; seen {
			continue // the newest begin counts
		}
		if e, ok := verifyEntry(pub, v); ok {
			begun[e.Recording] = e
		}
	}
	return begun, !anyBegin && anyRecording
}

// beginProblem checks an active entry, stored as raw, against its begin
// entry; ok means the bastion began it as it stands.
func beginProblem(rec Session, raw []byte, begun map[string]ChainEntry, legacy bool) (p Problem, ok bool) {
	e, found := begun[rec.ID]
	switch {
	case !found && legacy:
		return Problem{}, true
	case !found:
		return Problem{Path: rec.Path, ID: rec.ID, Reason: "index entry not begun in the audit chain"}, false
	case e.Record != recordDigest(raw):
		return Problem{Path: rec.Path, ID: rec.ID, Reason: "index entry edited", Detail: "differs from its begin entry"}, false
	}
	return Problem{}, true
}
