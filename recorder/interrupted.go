package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	bolt "go.etcd.io/bbolt"
)

// MarkInterrupted implements Index: the file of each session holds a valid
// prefix, and its digest as found is what the chain records.
//
// Only an entry the bastion began is sealed: one whose KindBegin chain
// entry, signed with the store's key, names it as stored, and that no
// later entry has sealed or pruned. Any other active entry was written by
// someone else (or edited, or put back after its end); sealing it with the
// bastion's key would make a forgery look genuine. Such entries are left as
// they are, for verify to report, and logged (Options.Log, a warning each):
// they are no reason for the bastion not to start. That includes the active
// entries of a chain written before Begin sealed: whether a chain is of the
// old format cannot be told from the chain, which anyone who can write
// postern.db can cut back or edit.
//
// A begun session whose recording cannot be read (the bastion creates it
// right after Begin, so one missing at restart was most likely deleted
// while the bastion was down) is sealed with the reason in the seal's Lost,
// which verify reports for as long as the seal is kept.
func (s *Local) MarkInterrupted(ctx context.Context) ([]string, error) {
	var ids []string
	var refused []Problem
	err := s.update(ctx, func(tx *bolt.Tx) error {
		ids, refused = nil, nil
		active, raw, err := activeEntries(tx)
		if err != nil || len(active) == 0 {
			return err
		}
		begun, why := s.begins(tx, raw)
		for _, rec := range active {
			if p, ok := beginProblem(rec, raw[rec.ID], begun, why); !ok {
				refused = append(refused, p)
				continue
			}
			rec.Status = StatusInterrupted
			lost := ""
			if sum, size, err := s.digestRecording(rec.Path); err == nil {
				rec.SHA256, rec.Size = sum, size
			} else {
				lost = "recording unreadable when the bastion restarted after an interruption: " + err.Error()
				if errors.Is(err, fs.ErrNotExist) {
					lost = "recording missing when the bastion restarted after an interruption"
				}
			}
			if _, err := s.seal(tx, rec, lost); err != nil {
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
			"recording", p.ID, "path", p.Path, "reason", p.Reason, "detail", p.Detail)
	}
	return ids, nil
}

// digestRecording digests the recording file named rel.
func (s *Local) digestRecording(rel string) (string, int64, error) {
	path, err := s.RecordingFile(rel)
	if err != nil {
		return "", 0, err
	}
	return fileDigest(path)
}

// activeEntries returns the active sessions of the index and each one's
// record as stored (copied out of tx).
func activeEntries(tx *bolt.Tx) ([]Session, map[string][]byte, error) {
	var active []Session
	raw := map[string][]byte{}
	err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		rec, err := decodeSession(k, v)
		if err != nil {
			return err
		}
		if rec.Status == StatusActive {
			active = append(active, rec)
			raw[rec.ID] = bytes.Clone(v)
		}
		return nil
	})
	return active, raw, err
}

// begins finds the sessions of want that the chain began and has neither
// sealed nor pruned since: the newest chain entry naming each one (as its
// recording or among those pruned) is a begin entry signed with the store's
// key. It reads the chain from its newest entry back, stopping when each
// session is settled, or at the first entry that does not decode or that
// the entry after it does not link to: the bastion cannot vouch for what
// lies before a break. why says, of each session settled otherwise, what
// settled it.
func (s *Local) begins(tx *bolt.Tx, want map[string][]byte) (begun map[string]ChainEntry, why map[string]string) {
	begun, why = map[string]ChainEntry{}, map[string]string{}
	pub := s.PublicKey()
	c := tx.Bucket(bucketChain).Cursor()
	newest, next := true, "" // next: the Prev of the entry after k
	for k, v := c.Last(); k != nil && len(begun)+len(why) < len(want); k, v = c.Prev() {
		var e ChainEntry
		if !newest && recordDigest(v) != next || json.Unmarshal(v, &e) != nil {
			break
		}
		newest, next = false, e.Prev
		for _, id := range append([]string{e.Recording}, e.Pruned...) {
			if _, ok := want[id]; !ok || begun[id].Recording != "" || why[id] != "" {
				continue
			}
			switch ve, signed := verifyEntry(pub, v); {
			case e.Kind == KindBegin && e.Recording == id && signed:
				begun[id] = ve
			case e.Kind == KindBegin && e.Recording == id:
				why[id] = fmt.Sprintf("its begin entry, chain entry %d, is not signed with the audit key", e.Seq)
			default:
				why[id] = fmt.Sprintf("the newest chain entry naming it, %d, is not its begin entry but of kind %q", e.Seq, e.Kind)
			}
		}
	}
	return begun, why
}

// beginProblem checks an active entry, stored as raw, against its begin
// entry; ok means the bastion began it as it stands.
func beginProblem(rec Session, raw []byte, begun map[string]ChainEntry, why map[string]string) (p Problem, ok bool) {
	e, found := begun[rec.ID]
	switch {
	case why[rec.ID] != "":
		return Problem{Path: rec.Path, ID: rec.ID, Reason: "index entry not begun in the audit chain", Detail: why[rec.ID]}, false
	case !found:
		return Problem{Path: rec.Path, ID: rec.ID, Reason: "index entry not begun in the audit chain"}, false
	case e.Record != recordDigest(raw):
		return Problem{Path: rec.Path, ID: rec.ID, Reason: "index entry edited", Detail: "differs from its begin entry"}, false
	}
	return Problem{}, true
}
