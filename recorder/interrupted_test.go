package recorder

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MarkInterrupted seals an active entry only when the newest chain entry
// naming it is its begin entry, signed and linked to the head: a session
// the chain has sealed or pruned since, put back as active as Begin stored
// it (from a backup), is not sealed again, even when the entry that settled
// it was edited or cut out of the chain; nor is one whose begin entry is
// not signed with the store's key. Each stays active, and verify reports it.
func TestMarkInterruptedSettledSessions(t *testing.T) {
	t.Parallel()
	prune := func(t *testing.T, s *Local) {
		if pruned, _, err := Prune(t.Context(), s, time.Now().Add(time.Hour)); err != nil || len(pruned) != 1 {
			t.Fatalf("prune: %v %v", pruned, err)
		}
	}
	editChain := func(t *testing.T, s *Local, fn func(c *bolt.Bucket, k, v []byte) error) {
		err := s.update(t.Context(), func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketChain)
			return c.ForEach(func(k, v []byte) error { return fn(c, bytes.Clone(k), bytes.Clone(v)) })
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		do   func(t *testing.T, s *Local)
	}{
		{"sealed", func(t *testing.T, s *Local) {}},
		{"pruned, prune entry's kind edited", func(t *testing.T, s *Local) {
			prune(t, s)
			editChain(t, s, func(c *bolt.Bucket, k, v []byte) error {
				return c.Put(k, bytes.Replace(v, []byte(`"kind":"prune"`), []byte(`"kind":"prunE"`), 1))
			})
		}},
		{"pruned, prune entry cut out", func(t *testing.T, s *Local) {
			prune(t, s)
			record(t, s, "01H-1", "later\r\n")
			editChain(t, s, func(c *bolt.Bucket, k, v []byte) error {
				if bytes.Contains(v, []byte(`"kind":"prune"`)) {
					return c.Delete(k)
				}
				return nil
			})
		}},
		{"begin entry not signed", func(t *testing.T, s *Local) {
			prune(t, s) // and its begin entry is the only one naming it
			editChain(t, s, func(c *bolt.Bucket, k, v []byte) error {
				if bytes.Contains(v, []byte(`"kind":"prune"`)) {
					return c.Delete(k)
				}
				if bytes.Contains(v, []byte(`"kind":"recording"`)) {
					return c.Delete(k)
				}
				if bytes.Contains(v, []byte(`"kind":"begin"`)) {
					return c.Put(k, bytes.Replace(v, []byte(`"sig":"`), []byte(`"sig":"A`), 1))
				}
				return nil
			})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newStore(t)
			g := record(t, s, "01G-1", "genuine\r\n")
			tc.do(t, s)
			begun := g
			begun.End, begun.SHA256, begun.Size, begun.Status = nil, "", 0, StatusActive
			if err := s.update(t.Context(), func(tx *bolt.Tx) error { return putJSON(tx, begun.ID, begun) }); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, begun.Path))
			writeCast(t, filepath.Join(dir, begun.Path), "alice@db01:~# uptime\r\n")
			ids, err := s.MarkInterrupted(t.Context())
			if err != nil || slices.Contains(ids, g.ID) {
				t.Fatalf("MarkInterrupted sealed %v (%v)", ids, err)
			}
			if got, _ := s.Get(t.Context(), g.ID); got.Status != StatusActive {
				t.Fatalf("the entry was sealed: %+v", got)
			}
			rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil || !attack3Problems(rep, g.ID) {
				t.Fatalf("verify: %v %v", rep.Problems, err)
			}
		})
	}
}
