package recorder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Prune deletes the recordings and index entries of sessions that ended
// before cutoff, and records what it deleted in the audit chain. It returns
// the chain entry it appended, nil when nothing was old enough.
//
// A session whose index path RecordingFile refuses is not pruned: neither
// its file nor its index entry is touched, and Prune returns, with what it
// did prune, a *RefusedError naming it. Such an entry is evidence that the
// index was edited; deleting it under cover of retention would erase that.
func (s *Store) Prune(cutoff time.Time) ([]Session, *ChainHead, error) {
	var pruned []Session
	var files []string // pruned's files, checked
	var refused []Problem
	var head *ChainHead
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		err := b.ForEach(func(k, v []byte) error {
			var rec Session
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("index entry %s: %w", k, err)
			}
			old := rec.Status != StatusActive && rec.End != nil && rec.End.Before(cutoff) ||
				rec.Status == StatusInterrupted && rec.Start.Before(cutoff)
			if !old {
				return nil
			}
			path, err := s.RecordingFile(rec.Path)
			if err != nil {
				refused = append(refused, pathProblem(rec.ID, rec.Path, err))
				return nil
			}
			pruned = append(pruned, rec)
			files = append(files, path)
			return nil
		})
		if err != nil || len(pruned) == 0 {
			return err
		}
		ids := make([]string, len(pruned))
		for i, rec := range pruned {
			ids[i] = rec.ID
			if err := b.Delete([]byte(rec.ID)); err != nil {
				return err
			}
		}
		h, err := s.appendChain(tx, ChainEntry{Kind: "prune", Pruned: ids})
		head = &h
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	var rerr error
	if len(refused) > 0 {
		rerr = &RefusedError{Refused: refused}
	}
	// Files go after the chain says so: a crash in between leaves files
	// that verify reports as "pruned but present", never silent loss.
	for i, rec := range pruned {
		if err := os.Remove(files[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return pruned, head, errors.Join(fmt.Errorf("delete %s: %w", rec.Path, err), rerr)
		}
	}
	return pruned, head, rerr
}
