package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	tamper := []struct {
		name   string
		do     func(t *testing.T, s *Local, rec Session)
		reason string
	}{
		{"byte flipped", func(t *testing.T, s *Local, rec Session) {
			p := filepath.Join(s.Dir(), rec.Path)
			data, _ := os.ReadFile(p)
			i := bytes.Index(data, []byte("secret"))
			data[i] ^= 1
			os.WriteFile(p, data, 0o600)
		}, "modified"},
		{"truncated", func(t *testing.T, s *Local, rec Session) {
			p := filepath.Join(s.Dir(), rec.Path)
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-10)
		}, "truncated"},
		{"deleted", func(t *testing.T, s *Local, rec Session) {
			os.Remove(filepath.Join(s.Dir(), rec.Path))
		}, "deleted"},
		{"added", func(t *testing.T, s *Local, rec Session) {
			writeCast(t, filepath.Join(s.Dir(), "recordings", "2026", "11", "25", "ZZZ-1.cast"), "forged")
		}, "added"},
		{"index entry edited", func(t *testing.T, s *Local, rec Session) {
			rec.Identity = "mallory"
			if err := s.update(t.Context(), func(tx *bolt.Tx) error { return putJSON(tx, rec.ID, rec) }); err != nil {
				t.Fatal(err)
			}
		}, "index entry edited"},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			record(t, s, "01A-1", "nothing to see\r\n")
			rec := record(t, s, "01B-1", "the secret output\r\n")
			rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil || len(rep.Problems) != 0 || rep.Recordings != 2 || rep.ChainEntries != 4 { // each: begin and seal
				t.Fatalf("untouched store: %+v %v", rep, err)
			}
			tt.do(t, s, rec)
			rep, err = VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 1 || rep.Problems[0].Reason != tt.reason {
				t.Fatalf("problems %v, want exactly one %q", rep.Problems, tt.reason)
			}
			if tt.reason != "added" && rep.Problems[0].Path != rec.Path {
				t.Fatalf("problem names %q, want %q", rep.Problems[0].Path, rec.Path)
			}
		})
	}
}

func TestInterruptedAndPrune(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	old := record(t, s, "01A-1", "old\r\n")
	// A session the bastion was killed in: Begin, a partial file, no Finish.
	rel := filepath.Join("recordings", "x", "01C-1.cast")
	s.Begin(t.Context(), Session{ID: "01C-1", Start: time.Now(), Path: rel})
	w, _ := Create(filepath.Join(dir, rel), Header{})
	w.Output([]byte("partial"))
	w.Close()
	ids, err := s.MarkInterrupted(t.Context())
	if err != nil || len(ids) != 1 || ids[0] != "01C-1" {
		t.Fatalf("interrupted %v %v", ids, err)
	}
	got, _ := s.Get(t.Context(), "01C-1")
	if got.Status != StatusInterrupted || got.SHA256 == "" {
		t.Fatalf("interrupted record %+v", got)
	}
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); len(rep.Problems) != 0 {
		t.Fatalf("verify after interruption: %v", rep.Problems)
	}
	// Prune what ended before now+1s: both go, the chain says so, and
	// verify stays clean.
	pruned, head, err := Prune(t.Context(), s, time.Now().Add(time.Second))
	if err != nil || len(pruned) != 2 {
		t.Fatalf("pruned %v %v", pruned, err)
	}
	if h, _ := s.Head(t.Context()); head == nil || h == nil || *head != *h {
		t.Fatalf("prune returned head %v, the chain's is %v", head, h)
	}
	if _, err := os.Stat(filepath.Join(dir, old.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pruned file still there: %v", err)
	}
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify after prune: %v %v", rep.Problems, err)
	}
	// Nothing newer is pruned.
	record(t, s, "01D-1", "new\r\n")
	if pruned, head, _ := Prune(t.Context(), s, time.Now().Add(-time.Hour)); len(pruned) != 0 || head != nil {
		t.Fatalf("pruned a recent session: %v (head %v)", pruned, head)
	}
}

// TestVerifyAnchorsAndKey: anchors catch a chain cut short or rewritten,
// and signatures are checked with the key given, not the store's own.
func TestVerifyAnchorsAndKey(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	record(t, s, "01A-1", "one\r\n")
	record(t, s, "01B-1", "two\r\n")
	key := VerifyOptions{Key: s.PublicKey()}
	rep, err := VerifyStore(t.Context(), s, key)
	if err != nil || len(rep.Problems) != 0 || rep.Head == nil || rep.Head.Seq != 3 {
		t.Fatalf("clean: %+v %v", rep, err)
	}
	head := *rep.Head
	if h, err := ParseChainHead(head.String()); err != nil || h != head {
		t.Fatalf("ParseChainHead(%q) = %v, %v", head.String(), h, err)
	}
	if _, err := VerifyStore(t.Context(), s, VerifyOptions{}); err == nil {
		t.Fatal("verify without a key succeeded")
	}
	// A read-only store verifies with the public key alone.
	if rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: []ChainHead{head, {Seq: 0, SHA256: rep.Head.SHA256}}}); err != nil ||
		len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain rewritten" || rep.Problems[0].ID != "chain entry 0" {
		t.Fatalf("anchor on the wrong entry: %+v %v", rep, err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	// Every entry's signature is bad, and then no begin entry vouches
	// for either session: both are named too.
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: other}); len(rep.Problems) != 6 || rep.Problems[0].Reason != "bad signature" || rep.Problems[3].Reason != "bad signature" ||
		rep.Problems[4].Reason != "sealed without a begin entry" || rep.Problems[5].Reason != "sealed without a begin entry" {
		t.Fatalf("another key: %v", rep.Problems)
	}
	// The chain grows: the old head still anchors it.
	record(t, s, "01C-1", "three\r\n")
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: key.Key, Anchors: []ChainHead{head}}); len(rep.Problems) != 0 || rep.Head.Seq != 5 {
		t.Fatalf("grown chain: %+v", rep)
	}
	// The last entry moved to another key, its value untouched.
	move := func(from, to uint64) {
		t.Helper()
		err := s.update(t.Context(), func(tx *bolt.Tx) error {
			var kf, kt [8]byte
			binary.BigEndian.PutUint64(kf[:], from)
			binary.BigEndian.PutUint64(kt[:], to)
			b := tx.Bucket(bucketChain)
			v := bytes.Clone(b.Get(kf[:]))
			if err := b.Delete(kf[:]); err != nil {
				return err
			}
			return b.Put(kt[:], v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	move(5, 1000)
	if rep, _ := VerifyStore(t.Context(), s, key); len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain out of sequence" {
		t.Fatalf("entry under the wrong key: %v", rep.Problems)
	}
	move(1000, 5)
	// Cut back to one session (its begin and seal), index and file included.
	err = s.update(t.Context(), func(tx *bolt.Tx) error {
		for _, id := range []string{"01B-1", "01C-1"} {
			tx.Bucket(bucketSessions).Delete([]byte(id))
			os.Remove(filepath.Join(dir, "recordings", "2026", "11", "25", id+".cast"))
		}
		c := tx.Bucket(bucketChain).Cursor()
		for k, _ := c.Last(); len(k) == 8 && k[7] > 1; k, _ = c.Last() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := VerifyStore(t.Context(), s, key); len(rep.Problems) != 0 {
		t.Fatalf("a consistent cut passes without an anchor, by design: %v", rep.Problems)
	}
	rep, _ = VerifyStore(t.Context(), s, VerifyOptions{Key: key.Key, Anchors: []ChainHead{head}})
	if len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain truncated" || rep.Problems[0].ID != "chain entry 3" {
		t.Fatalf("cut chain with its anchor: %v", rep.Problems)
	}
	for _, bad := range []string{"", "1", "x:" + head.SHA256, "1:abc", "-1:" + head.SHA256} {
		if _, err := ParseChainHead(bad); err == nil {
			t.Errorf("ParseChainHead(%q) accepted", bad)
		}
	}
}

// TestVerifyFlagsSecondSeal: an old recording edited and sealed anew with
// the audit key passes its anchor (the chain only grew) but not verify: a
// session is sealed once.
func TestVerifyFlagsSecondSeal(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	rec := record(t, s, "01A-1", "genuine\r\n")
	record(t, s, "01B-1", "later\r\n")
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("clean: %v %v", rep.Problems, err)
	}
	anchor := *rep.Head
	path := filepath.Join(dir, rec.Path)
	os.Remove(path)
	d, n := writeCast(t, path, "forged\r\n")
	rec.SHA256, rec.Size = hex.EncodeToString(d[:]), n
	if _, err := s.Finish(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	rep, _ = VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: []ChainHead{anchor}})
	if len(rep.Problems) != 1 || rep.Problems[0].Reason != "sealed twice" || rep.Problems[0].Path != rec.Path {
		t.Fatalf("re-sealed recording: %v", rep.Problems)
	}
}
