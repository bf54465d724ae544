package recorder

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A chain written before Begin sealed (recordings sealed, no begin entry):
// its seals verify clean, but an active entry in it is reported and left
// active by MarkInterrupted, not sealed as it once was. Whether a chain is
// of the old format cannot be told from the chain itself: anyone who can
// write postern.db can cut a new chain back to its old part, or edit the
// kind of its begin entries, and have the bastion seal a forged entry
// (TestAttack3LegacyDowngradeByTruncation, TestAttack3LegacyByEditedBeginKind).
// The sessions begun after it are checked.
func TestBeginLegacyChain(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	record(t, s, "01A-1", "old format\r\n")
	active := Session{ID: "01B-1", Start: time.Now(), Path: filepath.Join("recordings", "2026", "11", "25", "01B-1.cast"), Status: StatusActive}
	err := s.update(t.Context(), func(tx *bolt.Tx) error {
		// The old format: drop the begin entry (the first) and
		// re-link the rest, as an old bastion would have written it.
		c := tx.Bucket(bucketChain)
		last := c.Get(seqKey(1))
		var e ChainEntry
		if err := json.Unmarshal(last, &e); err != nil {
			return err
		}
		c.Delete(seqKey(0))
		c.Delete(seqKey(1))
		k, v, _, err := nextEntry(nil, 0, ChainEntry{Kind: KindRecording, Recording: e.Recording, Path: e.Path, SHA256: e.SHA256, Size: e.Size, Record: e.Record}, s.key, time.Now())
		if err != nil {
			return err
		}
		if err := c.Put(k, v); err != nil {
			return err
		}
		return putJSON(tx, active.ID, active)
	})
	if err != nil {
		t.Fatal(err)
	}
	unbegun := func(rep Report) bool {
		return len(rep.Problems) == 1 && rep.Problems[0].ID == active.ID && rep.Problems[0].Reason == "index entry not begun in the audit chain"
	}
	if rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); err != nil || !unbegun(rep) || rep.ChainEntries != 1 {
		t.Fatalf("old-format chain with an active entry: %+v %v", rep, err)
	}
	if ids, err := s.MarkInterrupted(t.Context()); err != nil || len(ids) != 0 {
		t.Fatalf("MarkInterrupted on an old-format chain: %v %v", ids, err)
	}
	if got, _ := s.Get(t.Context(), active.ID); got.Status != StatusActive {
		t.Fatalf("the unbegun entry was sealed: %+v", got)
	}
	record(t, s, "01C-1", "new format\r\n")
	if rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); err != nil || !unbegun(rep) {
		t.Fatalf("old and new format together: %+v %v", rep, err)
	}
}

// An active entry edited after Begin (here: whose session it was) is
// reported by verify and left unsealed, and logged, by MarkInterrupted;
// one begun as it stands is sealed.
func TestMarkInterruptedRefusesEdited(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s, dir := newStore(t)
	s.Close()
	s, err := OpenStore(dir, Options{Key: s.key, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"01A-1", "01B-1"} {
		if err := s.Begin(t.Context(), Session{ID: id, Identity: "mallory", Start: time.Now(), Path: filepath.Join("recordings", "x", id+".cast")}); err != nil {
			t.Fatal(err)
		}
	}
	edited := Session{ID: "01B-1", Identity: "alice", Start: time.Now(), Path: filepath.Join("recordings", "x", "01B-1.cast"), Status: StatusActive}
	if err := s.update(t.Context(), func(tx *bolt.Tx) error { return putJSON(tx, edited.ID, edited) }); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].ID != "01B-1" || rep.Problems[0].Reason != "index entry edited" {
		t.Fatalf("edited active entry: %v %v", rep.Problems, err)
	}
	ids, err := s.MarkInterrupted(t.Context())
	if err != nil || len(ids) != 1 || ids[0] != "01A-1" {
		t.Fatalf("MarkInterrupted: %v %v", ids, err)
	}
	if got, _ := s.Get(t.Context(), "01B-1"); got.Status != StatusActive {
		t.Fatalf("the edited entry was sealed: %+v", got)
	}
	if !strings.Contains(logs.String(), "recording=01B-1") {
		t.Fatalf("refusal not logged: %s", logs.String())
	}
}
