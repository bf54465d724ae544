package recorder

import (
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A transfer channel's file records are sealed with its index entry:
// turning a blocked download into a clean one is caught by Verify.
func TestVerifyCoversTransferRecords(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rel := filepath.Join("recordings", "2026", "12", "05", "01X-1.cast")
	rec := Session{ID: "01X-1", Session: "01X", Identity: "alice", Target: "db01", Login: "root", Kind: "sftp", Start: time.Now(), Path: rel}
	if err := s.Begin(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	d, n := writeCast(t, filepath.Join(s.Dir(), rel), "")
	end := time.Now()
	rec.End, rec.SHA256, rec.Size = &end, hex.EncodeToString(d[:]), n
	rec.Transfers = []Transfer{{Op: "download", Path: "/srv/cards.csv", Bytes: 4096, PANs: 2, Outcome: "blocked"}}
	if _, err := s.Finish(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), rec.ID)
	if err != nil || len(got.Transfers) != 1 || got.Transfers[0] != rec.Transfers[0] {
		t.Fatalf("stored transfers %+v, %v", got.Transfers, err)
	}
	if rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("untouched: %+v %v", rep, err)
	}
	rec.Transfers[0].Outcome, rec.Transfers[0].PANs = "ok", 0
	if err := s.update(t.Context(), func(tx *bolt.Tx) error { return putJSON(tx, rec.ID, rec) }); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Reason != "index entry edited" {
		t.Fatalf("problems %v (%v); want the edited entry", rep.Problems, err)
	}
}
