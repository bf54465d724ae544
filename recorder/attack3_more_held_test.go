package recorder

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ---------------------------------------------------------------------
// Defences that held.
// ---------------------------------------------------------------------

// attack3LaterChain is a Store whose second Snapshot (the one VerifyStore
// takes after finding a recording deleted) shows a chain the test made.
type attack3LaterChain struct {
	*Local
	n     int
	later func(snap *Snapshot)
}

func (a *attack3LaterChain) Snapshot(ctx context.Context) (*Snapshot, error) {
	snap, err := a.Local.Snapshot(ctx)
	a.n++
	if err == nil && a.n == 2 {
		a.later(snap)
	}
	return snap, err
}

// attack3Sign makes the chain entry that follows snap's chain, signed with
// key.
func attack3Sign(t *testing.T, chain []RawEntry, e ChainEntry, key ed25519.PrivateKey) RawEntry {
	t.Helper()
	var last []byte
	var lastSeq uint64
	if n := len(chain); n > 0 {
		last, lastSeq = chain[n-1].Value, uint64(n-1)
	}
	k, v, _, err := nextEntry(last, lastSeq, e, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return RawEntry{Key: k, Value: v}
}

// TestAttack3VerifyLaterPruneForgeries: a recording deleted by hand stays
// "deleted" however the chain verify re-reads claims it was pruned: a
// prune entry signed with another key, a genuinely signed one appended to
// a chain that does not extend the one verified (an entry edited in
// between), one whose sequence key is wrong, and one that skips a link.
func TestAttack3VerifyLaterPruneForgeries(t *testing.T) {
	t.Parallel()
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name  string
		later func(t *testing.T, s *Local, snap *Snapshot)
	}{
		{"other key", func(t *testing.T, s *Local, snap *Snapshot) {
			snap.Chain = append(snap.Chain, attack3Sign(t, snap.Chain, ChainEntry{Kind: KindPrune, Pruned: []string{"01B-1"}}, other))
		}},
		{"prefix edited", func(t *testing.T, s *Local, snap *Snapshot) {
			snap.Chain[0].Value = append([]byte(" "), snap.Chain[0].Value...)
			snap.Chain = append(snap.Chain, attack3Sign(t, snap.Chain, ChainEntry{Kind: KindPrune, Pruned: []string{"01B-1"}}, s.key))
		}},
		{"wrong key", func(t *testing.T, s *Local, snap *Snapshot) {
			e := attack3Sign(t, snap.Chain, ChainEntry{Kind: KindPrune, Pruned: []string{"01B-1"}}, s.key)
			e.Key = seqKey(99)
			snap.Chain = append(snap.Chain, e)
		}},
		{"skipped link", func(t *testing.T, s *Local, snap *Snapshot) {
			mid := attack3Sign(t, snap.Chain, ChainEntry{Kind: KindCertificate, Serial: 7}, s.key)
			e := attack3Sign(t, append(slices.Clone(snap.Chain), mid), ChainEntry{Kind: KindPrune, Pruned: []string{"01B-1"}}, s.key)
			snap.Chain = append(snap.Chain, e)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newStore(t)
			record(t, s, "01A-1", "one\r\n")
			b := record(t, s, "01B-1", "two\r\n")
			os.Remove(filepath.Join(dir, b.Path))
			st := &attack3LaterChain{Local: s, later: func(snap *Snapshot) { tc.later(t, s, snap) }}
			rep, err := VerifyStore(t.Context(), st, VerifyOptions{Key: s.PublicKey()})
			if err != nil {
				t.Fatal(err)
			}
			if st.n != 2 || !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.ID == b.ID && p.Reason == "deleted" }) {
				t.Fatalf("deleted recording with a forged later prune (%d snapshots): %v", st.n, rep.Problems)
			}
		})
	}
}

// TestAttack3GroupCommitBeginsConcurrently: concurrent Begins through the
// group commit, one of them for an ID already in the index: only that one
// fails, each other is stored with its begin entry, and the chain verifies
// clean.
func TestAttack3GroupCommitBeginsConcurrently(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	record(t, s, "01A-0", "first\r\n")
	const n = 24
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := "01A-" + strconv.Itoa(i)
			errs[i] = s.Begin(context.Background(), Session{ID: id, Start: time.Now(), Path: filepath.Join("recordings", "2026", "11", "25", id+".cast")})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 0) != (err != nil) {
			t.Errorf("Begin %d: %v", i, err)
		}
		// The bastion creates each recording right after Begin: a
		// begun session whose file is missing at restart is
		// reported (TestAttack3InterruptedRecordingDeletedWhileDown).
		if id := "01A-" + strconv.Itoa(i); i > 0 {
			writeCast(t, filepath.Join(s.Dir(), "recordings", "2026", "11", "25", id+".cast"), "session "+id+"\r\n")
		}
	}
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 0 || rep.ChainEntries != 2+n-1 {
		t.Fatalf("after concurrent Begins: %d entries, %v %v", rep.ChainEntries, rep.Problems, err)
	}
	// And the bastion's restart seals them all, each against its begin.
	ids, err := s.MarkInterrupted(t.Context())
	if err != nil || len(ids) != n-1 {
		t.Fatalf("MarkInterrupted: %v %v", ids, err)
	}
	if rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("after MarkInterrupted: %v %v", rep.Problems, err)
	}
}

// TestAttack3PruneRefusesSealOfOtherKey: PruneCandidates judges age only
// by seals signed with the store's key: an old-looking seal written by
// someone without it (here: signed with another key, with the time a year
// back, for an entry edited to match) does not make a recent session
// prunable; it is refused and reported.
func TestAttack3PruneRefusesSealOfOtherKey(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rec := record(t, s, "01A-1", "keep me\r\n")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	old := time.Now().AddDate(-2, 0, 0)
	rec.End = &old
	rec.Status = StatusClosed
	err := s.update(t.Context(), func(tx *bolt.Tx) error {
		data, _ := json.Marshal(rec)
		if err := tx.Bucket(bucketSessions).Put([]byte(rec.ID), data); err != nil {
			return err
		}
		c := tx.Bucket(bucketChain)
		k, last := c.Cursor().Last()
		key, val, _, err := nextEntry(last, binary.BigEndian.Uint64(k), ChainEntry{Kind: KindRecording, Recording: rec.ID, Path: rec.Path, SHA256: rec.SHA256, Size: rec.Size, Record: recordDigest(data)}, other, old)
		if err != nil {
			return err
		}
		return c.Put(key, val)
	})
	if err != nil {
		t.Fatal(err)
	}
	cands, err := PruneCandidates(t.Context(), s, time.Now().AddDate(-1, 0, 0))
	var refused *RefusedError
	if len(cands) != 0 || !errors.As(err, &refused) {
		t.Fatalf("seal of another key, a year old: candidates %v, %v", cands, err)
	}
}
