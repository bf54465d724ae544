package recorder

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ---------------------------------------------------------------------
// Defences that held (pass now; keep as regression tests).
// ---------------------------------------------------------------------

// TestAttackStoreTamperingCaught: the insider's edits verify must catch
// without anchors or a pinned key: a recording appended to, replaced by
// another sealed recording, or two recordings swapped; an index entry
// deleted; a chain entry removed from the middle or two swapped; a
// certificate record edited or deleted; a certificate record added
// without a seal; a prune entry's file kept.
func TestAttackStoreTamperingCaught(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		do     func(t *testing.T, s *Local, a, b Session)
		reason string
	}{
		{"appended", func(t *testing.T, s *Local, a, b Session) {
			f, _ := os.OpenFile(filepath.Join(s.Dir(), b.Path), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("[9.9, \"o\", \"more\"]\n")
			f.Close()
		}, "modified"},
		{"replaced by another sealed recording", func(t *testing.T, s *Local, a, b Session) {
			data, _ := os.ReadFile(filepath.Join(s.Dir(), a.Path))
			os.WriteFile(filepath.Join(s.Dir(), b.Path), data, 0o600)
		}, "modified"},
		{"index entry deleted", func(t *testing.T, s *Local, a, b Session) {
			s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(b.ID)) })
		}, "index entry deleted"},
		{"certificate record edited", func(t *testing.T, s *Local, a, b Session) {
			s.update(t.Context(), func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucketCerts)
				k, v := bk.Cursor().First() // the one certificate (serials are random)
				v = bytes.Replace(v, []byte("mallory"), []byte("alice"), 1)
				return bk.Put(bytes.Clone(k), v)
			})
		}, "certificate record edited"},
		{"certificate record deleted", func(t *testing.T, s *Local, a, b Session) {
			s.update(t.Context(), func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucketCerts)
				k, _ := bk.Cursor().First() // the one certificate (serials are random)
				return bk.Delete(bytes.Clone(k))
			})
		}, "certificate record deleted"},
		{"certificate record added", func(t *testing.T, s *Local, a, b Session) {
			s.update(t.Context(), func(tx *bolt.Tx) error {
				data, _ := json.Marshal(IssuedCert{Serial: 7, KeyID: "forged", Principals: []string{"root"}})
				return tx.Bucket(bucketCerts).Put(seqKey(7), data)
			})
		}, "certificate record not sealed in the audit chain"},
		{"chain entry removed from the middle", func(t *testing.T, s *Local, a, b Session) {
			s.update(t.Context(), func(tx *bolt.Tx) error {
				c := tx.Bucket(bucketChain)
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], 1)
				return c.Delete(k[:])
			})
		}, "chain out of sequence"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if _, err := s.IssueCert(t.Context(), IssuedCert{KeyID: "k", Principals: []string{"mallory"}, IssuedBy: "mallory"}); err != nil {
				t.Fatal(err)
			}
			a := record(t, s, "01A-1", "first1\r\n") // as long as b's
			b := record(t, s, "01B-1", "second\r\n")
			rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil || len(rep.Problems) != 0 {
				t.Fatalf("clean: %v %v", rep.Problems, err)
			}
			tt.do(t, s, a, b)
			rep, err = VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || p.Reason == tt.reason
			}
			if !found {
				t.Fatalf("problems %v, want one %q", rep.Problems, tt.reason)
			}
		})
	}
}

// TestAttackStoreRollbackNeedsAnchor: an older copy of postern.db put back
// (the newer sessions' files deleted too) passes without an anchor, by
// design; with an anchor taken before the rollback it is "chain truncated",
// and if the bastion ran on and the chain grew past the anchor, "chain
// rewritten".
func TestAttackStoreRollbackNeedsAnchor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := newStoreAt(t, dir)
	key := s.key
	record(t, s, "01A-1", "one\r\n")
	s.Close()
	backup, _ := os.ReadFile(filepath.Join(dir, "postern.db"))
	s, _ = OpenStore(dir, Options{Key: key})
	b := record(t, s, "01B-1", "two\r\n")
	record(t, s, "01C-1", "three\r\n")
	rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	anchor := *rep.Head
	s.Close()
	os.WriteFile(filepath.Join(dir, "postern.db"), backup, 0o600)
	os.RemoveAll(filepath.Join(dir, "recordings", "2026", "11", "25", "01C-1.cast"))
	os.RemoveAll(filepath.Join(dir, b.Path))
	s, _ = OpenStore(dir, Options{Key: key})
	defer s.Close()
	pub := s.PublicKey()
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: pub, Anchors: []ChainHead{anchor}}); len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain truncated" {
		t.Fatalf("rolled back index with an anchor: %v", rep.Problems)
	}
	record(t, s, "01D-1", "four\r\n")
	record(t, s, "01E-1", "five\r\n")
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: pub, Anchors: []ChainHead{anchor}}); len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain rewritten" {
		t.Fatalf("rolled back index, grown again: %v", rep.Problems)
	}
}

// TestAttackStoreChainEntryReencoded: a chain entry whose stored bytes
// change but whose meaning does not (keys reordered, spaces) still breaks
// the link of the next entry, and a field changed through a duplicate key
// fails its signature.
func TestAttackStoreChainEntryReencoded(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	record(t, s, "01A-1", "one\r\n")
	record(t, s, "01B-1", "two\r\n")
	err := s.update(t.Context(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChain)
		v := b.Get(seqKey(0))
		nv := append([]byte(" "), v...)
		nv = bytes.Replace(nv, []byte(`"sig":`), []byte(`"size":999,"sig":`), 1)
		return b.Put(seqKey(0), nv)
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	var reasons []string
	for _, p := range rep.Problems {
		reasons = append(reasons, p.Reason)
	}
	if got := strings.Join(reasons, ","); !strings.Contains(got, "bad signature") || !strings.Contains(got, "chain broken") {
		t.Fatalf("re-encoded chain entry: %v", rep.Problems)
	}
}

// TestAttackStorePruneLeavesActiveAndUnknown: Index.Prune skips active
// sessions and unknown IDs, and Remove refuses names outside recordings.
func TestAttackStorePruneLeavesActiveAndUnknown(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	active := Session{ID: "01Z-1", Start: time.Now().AddDate(-3, 0, 0), Path: filepath.Join("recordings", "2026", "11", "25", "01Z-1.cast")}
	if err := s.Begin(t.Context(), active); err != nil {
		t.Fatal(err)
	}
	pruned, head, err := s.Prune(t.Context(), []string{"01Z-1", "nope", "../postern.db"})
	if err != nil || len(pruned) != 0 || head != nil {
		t.Fatalf("prune of an active and unknown IDs: %v %v %v", pruned, head, err)
	}
	for _, name := range []string{"postern.db", "recordings/../postern.db", "/etc/passwd", "recordings/2026/../../postern.db", "ca/audit_ed25519"} {
		if err := s.Remove(t.Context(), name); err == nil {
			t.Errorf("Remove(%q) succeeded", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "postern.db")); err != nil {
		t.Fatal(err)
	}
	_ = hex.EncodeToString
}
