package recorder

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// evidence is a closed store with sealed sessions, certificates, an
// approval request and a session the bastion died in (begun, its
// recording on disk, never sealed).
type evidence struct {
	dir     string
	key     ed25519.PrivateKey
	ids     []string    // the sealed sessions, in order
	anchors []ChainHead // the chain head after each sealed session
	active  string      // the unsealed session
}

func newEvidence(t *testing.T, sessions int) *evidence {
	t.Helper()
	s, dir := newStore(t)
	ev := &evidence{dir: dir, key: s.key}
	for i := range sessions {
		id := fmt.Sprintf("01E%02d-1", i)
		record(t, s, id, fmt.Sprintf("output of session %d\r\n", i))
		h, _ := s.Head(t.Context())
		ev.ids, ev.anchors = append(ev.ids, id), append(ev.anchors, *h)
		if i == 1 {
			for _, k := range []string{"alice", "bob"} {
				if _, err := s.IssueCert(t.Context(), IssuedCert{KeyID: k, Principals: []string{k}, IssuedBy: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			s.SaveApproval(t.Context(), "req1", "requested", []byte(`{"id":"req1","state":"pending"}`))
			s.SaveApproval(t.Context(), "req1", "approved", []byte(`{"id":"req1","state":"approved"}`))
			if _, _, err := s.Revoke(t.Context(), Revocation{KeyID: "bob", Reason: "left", RevokedAt: time.Now(), RevokedBy: "test"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ev.active = "01EZZ-1"
	rel := filepath.Join("recordings", "2026", "11", "25", ev.active+".cast")
	if err := s.Begin(t.Context(), Session{ID: ev.active, Identity: "carol", Target: "db02", Start: time.Now(), Path: rel}); err != nil {
		t.Fatal(err)
	}
	writeCast(t, filepath.Join(dir, rel), "cut short")
	s.Close()
	return ev
}

// rebuild rebuilds ev's index and verifies it with anchors.
func (ev *evidence) rebuild(t *testing.T, anchors ...ChainHead) (RebuildReport, Report, *Local) {
	t.Helper()
	rep, err := RebuildIndex(t.Context(), ev.dir, RebuildOptions{Key: ev.key})
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(ev.dir, Options{ReadOnly: true, AuditPublicKey: ev.key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatalf("open the rebuilt index: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ver, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: anchors})
	if err != nil {
		t.Fatal(err)
	}
	return rep, ver, s
}

// damageAll flips a byte at offset off of every copy of pattern in the
// index file (bbolt leaves older copies in free pages), and returns how
// many there were.
func damageAll(t *testing.T, dir string, pattern []byte, off int) int {
	t.Helper()
	path := filepath.Join(dir, IndexFile)
	data, _ := os.ReadFile(path)
	n := 0
	for i := 0; ; n++ {
		j := bytes.Index(data[i:], pattern)
		if j < 0 {
			break
		}
		data[i+j+off] ^= 0x20
		i += j + 1
	}
	os.WriteFile(path, data, 0o600)
	return n
}

// TestRebuildTruncated: an index cut short (at the page that first holds
// the newest anchored entry, which is then lost) is refused; the rebuild
// keeps the damaged file byte for byte, keeps the chain's unbroken
// beginning (the anchors taken in it still hold; how much of it the cut
// left depends on where bbolt put the pages), seals the sessions whose
// seals were lost as found, and verify passes, stating the gaps.
func TestRebuildTruncated(t *testing.T) {
	t.Parallel()
	ev := newEvidence(t, 12)
	path := filepath.Join(ev.dir, IndexFile)
	last := ev.anchors[len(ev.anchors)-1]
	data, _ := os.ReadFile(path)
	cut := bytes.Index(data, fmt.Appendf(nil, `{"seq":%d,`, last.Seq)) / 4096 * 4096
	if cut <= 0 {
		t.Fatalf("chain entry %d not found in the file", last.Seq)
	}
	os.Truncate(path, int64(cut))
	damaged, _ := os.ReadFile(path)
	if _, err := OpenStore(ev.dir, Options{ReadOnly: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open a truncated index: %v", err)
	}
	rep, ver, s := ev.rebuild(t)
	if kept, err := os.ReadFile(filepath.Join(ev.dir, rep.File)); err != nil || !bytes.Equal(kept, damaged) || !strings.HasPrefix(rep.File, "postern.db.corrupt-") {
		t.Fatalf("damaged index not kept as it was: %s %v", rep.File, err)
	}
	if rep.Kept > last.Seq || rep.Kept > uint64(rep.Newest+1) {
		t.Fatalf("report %+v", rep)
	}
	if len(ver.Problems) != 0 || len(ver.Rebuilds) != 1 || ver.Rebuilds[0].Kept != rep.Kept || !strings.Contains(ver.Rebuilds[0].String(), rep.File) {
		t.Fatalf("verify after the rebuild: %+v", ver)
	}
	var kept []ChainHead
	for _, a := range ev.anchors {
		if a.Seq < rep.Kept {
			kept = append(kept, a)
		}
	}
	if v, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: kept}); err != nil || len(v.Problems) != 0 {
		t.Fatalf("verify with the %d anchors in what was kept: %v %v", len(kept), v.Problems, err)
	}
	// An anchor taken after what was kept no longer holds: the auditor
	// who kept it learns the chain was rebuilt.
	if v, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: []ChainHead{last}}); err != nil || len(v.Problems) != 1 || !strings.HasPrefix(v.Problems[0].Reason, "chain ") {
		t.Fatalf("verify --anchor %s after the rebuild: %v %v", last, v.Problems, err)
	}
	// Every session is back, but those whose seal survived and whose
	// record did not, which the rebuild names.
	list, err := s.List(t.Context(), Filter{})
	lost := 0
	for _, l := range rep.RecordsLost {
		if id, ok := strings.CutPrefix(l, "session "); ok && slices.Contains(ev.ids, id) {
			lost++
		}
	}
	if err != nil || len(list)+lost != len(ev.ids)+1 {
		t.Fatalf("sessions after the rebuild: %d, %d lost (%v) %v", len(list), lost, rep.RecordsLost, err)
	}
	for _, rec := range list {
		sealedByRebuild := slices.Contains(rep.Sealed, rec.ID)
		if rec.SHA256 == "" || sealedByRebuild != (rec.Status == StatusRebuilt) || rec.ID == ev.active && !sealedByRebuild {
			t.Fatalf("session after the rebuild: %+v (sealed by it: %v)", rec, sealedByRebuild)
		}
	}
}

// TestRebuildCarriesSeals: one chain entry destroyed in the middle; the
// entries after it are carried over, and still protect what they seal: a
// recording changed before the rebuild is reported as modified, not sealed
// anew; the approval request they seal is acted on again.
func TestRebuildCarriesSeals(t *testing.T) {
	t.Parallel()
	ev := newEvidence(t, 6)
	if n := damageAll(t, ev.dir, []byte(`{"seq":3,`), 10); n == 0 {
		t.Fatal("chain entry 3 not found in the file")
	}
	// Session 5's seal is carried over: change its recording now.
	s, _ := OpenStore(ev.dir, Options{ReadOnly: true})
	rec, err := s.Get(t.Context(), ev.ids[5])
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(ev.dir, rec.Path)
	data, _ := os.ReadFile(file)
	os.WriteFile(file, bytes.Replace(data, []byte("session 5"), []byte("session 6"), 1), 0o600)

	rep, ver, st := ev.rebuild(t, ev.anchors[0])
	if rep.Kept != 3 || rep.Carried == 0 || !slices.Equal(rep.Missing, []string{"3"}) {
		t.Fatalf("report %+v", rep)
	}
	if len(ver.Problems) != 1 || ver.Problems[0].Reason != "modified" || ver.Problems[0].ID != ev.ids[5] {
		t.Fatalf("verify: %v, want session 5's recording modified", ver.Problems)
	}
	if len(ver.Rebuilds) != 1 || !slices.Equal(ver.Rebuilds[0].Missing, []string{"3"}) {
		t.Fatalf("rebuilds %+v", ver.Rebuilds)
	}
	recs, err := st.Approvals(t.Context())
	if err != nil || len(recs) != 1 || !bytes.Contains(recs[0].Data, []byte("approved")) {
		t.Fatalf("approvals after the rebuild: %q %v", recs, err)
	}
	if issued, err := st.Issued(t.Context()); err != nil || len(issued) != 2 {
		t.Fatalf("certificates after the rebuild: %v %v", issued, err)
	}
	if revs, err := st.Revocations(t.Context()); err != nil || len(revs) != 1 || revs[0].KeyID != "bob" || revs[0].Note != "" {
		t.Fatalf("revocations after the rebuild: %+v %v", revs, err)
	}
	// Retention finds the carried seals: every session can be pruned.
	if old, err := PruneCandidates(t.Context(), st, time.Now().Add(time.Hour)); err != nil || len(old) != len(ev.ids)+1 {
		t.Fatalf("prune candidates after the rebuild: %d %v", len(old), err)
	}
}

// TestRebuildRecordLost: a session's record destroyed while its seal
// survives; the rebuild names it lost, and verify states it as a gap, not
// a problem; a record deleted after the rebuild is a problem again.
func TestRebuildRecordLost(t *testing.T) {
	t.Parallel()
	ev := newEvidence(t, 4)
	victim := ev.ids[2]
	if n := damageAll(t, ev.dir, []byte(`{"id":"`+victim+`"`), 1); n == 0 {
		t.Fatal("the record is not in the file")
	}
	rep, ver, st := ev.rebuild(t)
	if !slices.Contains(rep.RecordsLost, "session "+victim) || len(ver.Problems) != 0 {
		t.Fatalf("report %+v, verify %v", rep, ver.Problems)
	}
	if _, err := st.Get(t.Context(), victim); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the lost record: %v", err)
	}
	st.Close()
	w, err := OpenStore(ev.dir, Options{Key: ev.key})
	if err != nil {
		t.Fatal(err)
	}
	w.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(ev.ids[1])) })
	ver, err = VerifyStore(t.Context(), w, VerifyOptions{Key: w.PublicKey()})
	w.Close()
	if err != nil || len(ver.Problems) != 1 || ver.Problems[0].ID != ev.ids[1] || ver.Problems[0].Reason != "index entry deleted" {
		t.Fatalf("a record deleted after the rebuild: %v %v", ver.Problems, err)
	}
}

// TestRebuildWithoutIndex: no index file at all: every recording is sealed
// as found, and said to be.
func TestRebuildWithoutIndex(t *testing.T) {
	t.Parallel()
	ev := newEvidence(t, 3)
	os.Remove(filepath.Join(ev.dir, IndexFile))
	rep, ver, _ := ev.rebuild(t)
	if rep.File != "" || len(rep.Sealed) != 4 || len(ver.Problems) != 0 || len(ver.Rebuilds) != 1 || ver.Rebuilds[0].Newest != -1 {
		t.Fatalf("report %+v, verify %+v", rep, ver)
	}
}

// TestVerifyCarriedChecked: a carried entry is no way around the chain's
// rules: one not after a rebuild is reported, and so is one whose original
// another key signed (and what it claims to seal, as for any entry).
func TestVerifyCarriedChecked(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rec := record(t, s, "01C-1", "hello\r\n")
	other, _ := newStore(t)
	forged := record(t, other, "01C-1", "forged\r\n")
	snap, _ := other.Snapshot(t.Context())
	orig := snap.Chain[len(snap.Chain)-1].Value
	err := s.update(t.Context(), func(tx *bolt.Tx) error {
		_, err := s.appendChain(tx, ChainEntry{Kind: KindCarried, Original: string(orig)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	reasons := map[string]bool{}
	for _, p := range ver.Problems {
		reasons[p.Reason] = true
	}
	if err != nil || !reasons["bad signature"] || !reasons["carried without a rebuild"] || forged.SHA256 == rec.SHA256 {
		t.Fatalf("verify with a forged carried entry: %v %v", ver.Problems, err)
	}
}
