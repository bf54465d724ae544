package recorder

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bigStore makes a store with n sealed sessions (no recordings), written
// in a few transactions, so that its buckets span branch pages; it is
// closed, and returns its directory and key.
func bigStore(t testing.TB, n int) (string, ed25519.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for b := 0; b < n; b += 500 {
		err := s.update(t.Context(), func(tx *bolt.Tx) error {
			for i := b; i < min(b+500, n); i++ {
				id := fmt.Sprintf("01BIG%021d-1", i)
				rec := Session{ID: id, Session: id, Identity: "alice@example.com", Target: "db01", Login: "root", Kind: "shell",
					Start: start.Add(time.Duration(i) * time.Minute), Path: RecordingName(id, start)}
				data, _ := json.Marshal(rec)
				if err := tx.Bucket(bucketSessions).Put([]byte(id), data); err != nil {
					return err
				}
				if _, err := s.appendChain(tx, ChainEntry{Kind: KindBegin, Recording: id, Path: rec.Path, Record: recordDigest(data)}); err != nil {
					return err
				}
				rec.Status, rec.SHA256, rec.Size = StatusClosed, strings.Repeat("ab", 32), 1234
				if _, err := s.seal(tx, rec, ""); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir, key
}

// metaOf returns the meta page bbolt uses of index file data.
func metaOf(t *testing.T, data []byte) boltMeta {
	t.Helper()
	m, err := readMeta(data)
	if err != nil {
		t.Fatal(err)
	}
	if m1, err := readMeta(data[m.pageSize:]); err == nil && m1.txid > m.txid {
		m = m1
	}
	return m
}

// pagesWith returns the page size and the number of every page in use of
// the index file data whose header has flags.
func pagesWith(t *testing.T, data []byte, flags uint16) (int, []uint64) {
	t.Helper()
	m := metaOf(t, data)
	ps := int(m.pageSize)
	var ids []uint64
	for id := uint64(2); id < m.pages; id++ {
		p := data[int(id)*ps:]
		if ne.Uint64(p) == id && ne.Uint16(p[8:]) == flags {
			ids = append(ids, id)
		}
	}
	return ps, ids
}

// TestFaultInMappedFileIsAnError: the index file is cut short under an
// open store, so that reading its mapped pages faults (SIGBUS): every
// read returns a *CorruptError naming the file and what to do, the
// process lives on, and the store refuses writes from then on.
func TestFaultInMappedFileIsAnError(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	for i := range 40 {
		record(t, s, fmt.Sprintf("01F%02d-1", i), "output\r\n")
	}
	path := filepath.Join(dir, IndexFile)
	if err := os.Truncate(path, 8192); err != nil {
		t.Fatal(err)
	}
	_, err := s.List(t.Context(), Filter{})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(err.Error(), "postern index rebuild") {
		t.Fatalf("list over a truncated mapped file: %v", err)
	}
	if _, err := s.Snapshot(t.Context()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snapshot after the damage: %v", err)
	}
	if err := s.Begin(t.Context(), Session{ID: "01Z-1", Path: "recordings/x/01Z-1.cast"}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("begin after the damage: %v", err)
	}
}

// TestPanicInTransactionGoesOn: a panic raised by the caller's own code in
// a transaction (a bug, not the index) is not taken for damage.
func TestPanicInTransactionGoesOn(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "a bug in the caller") {
			t.Fatalf("recovered %v, want the caller's panic", r)
		}
		if _, err := s.List(t.Context(), Filter{}); err != nil {
			t.Fatalf("store after a caller's panic: %v", err)
		}
	}()
	s.view(t.Context(), func(*bolt.Tx) error { panic(errors.New("a bug in the caller")) })
}

// TestOpenRefusesDamage: files bbolt would fault on, loop in, or assert
// about are refused by OpenStore, read-only or not, with a *CorruptError
// that names what is wrong, and are left exactly as they were.
func TestOpenRefusesDamage(t *testing.T) {
	t.Parallel()
	dir, key := bigStore(t, 300)
	path := filepath.Join(dir, IndexFile)
	sound, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps, branches := pagesWith(t, sound, flagBranch)
	if len(branches) == 0 {
		t.Fatal("no branch page in a store of 300 sessions")
	}
	cases := []struct {
		name, want string
		damage     func(b []byte) []byte
	}{
		{"truncated", "truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"empty", "empty", func([]byte) []byte { return nil }},
		{"both meta pages", "meta", func(b []byte) []byte { b[20] ^= 1; b[ps+20] ^= 1; return b }},
		{"branch leads to itself", "reached twice", func(b []byte) []byte {
			id := branches[0]
			ne.PutUint64(b[int(id)*ps+pageHeader+8:], id)
			return b
		}},
		{"element outside its page", "outside", func(b []byte) []byte {
			ne.PutUint32(b[int(branches[0])*ps+pageHeader:], 1<<30)
			return b
		}},
		{"child past the end", "outside the", func(b []byte) []byte {
			ne.PutUint64(b[int(branches[0])*ps+pageHeader+8:], 1<<40)
			return b
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			damaged := c.damage(append([]byte(nil), sound...))
			p := filepath.Join(d, IndexFile)
			os.WriteFile(p, damaged, 0o600)
			for _, o := range []Options{{ReadOnly: true}, {Key: key}} {
				done := make(chan error, 1)
				go func() {
					s, err := OpenStore(d, o)
					if err == nil {
						_, err = s.List(t.Context(), Filter{})
						s.Close()
					}
					done <- err
				}()
				select {
				case err := <-done:
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
						t.Fatalf("open (read-only %v): %v, want damage naming %q", o.ReadOnly, err, c.want)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("open (read-only %v) of a damaged index did not return", o.ReadOnly)
				}
			}
			if after, _ := os.ReadFile(p); string(after) != string(damaged) {
				t.Fatal("opening the damaged index changed it")
			}
			rep, err := CheckIndex(d, time.Second)
			if err != nil || len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), c.want) {
				t.Fatalf("check: %+v %v", rep, err)
			}
		})
	}
}

// TestCheckIndex: a sound index passes with its entries counted; bbolt's
// own check and the index's structure checks each find what they look
// for.
func TestCheckIndex(t *testing.T) {
	t.Parallel()
	dir, key := bigStore(t, 300)
	rep, err := CheckIndex(dir, time.Second)
	if err != nil || len(rep.Problems) != 0 || rep.Entries["chain"] != 600 || rep.Entries["sessions"] != 300 || rep.Pages == 0 {
		t.Fatalf("sound index: %+v %v", rep, err)
	}
	// A chain entry cut out with bbolt itself: the pages are sound, the
	// chain is not.
	s, err := OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketChain).Delete(seqKey(7)) })
	if err := s.Consistent(t.Context()); err != nil {
		t.Fatalf("bbolt check of a sound file: %v", err)
	}
	s.Close()
	rep, err = CheckIndex(dir, time.Second)
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "entry 8 does not link") {
		t.Fatalf("chain with a hole: %+v %v", rep, err)
	}
	// A page in use listed as free: bbolt would hand it out again.
	path := filepath.Join(dir, IndexFile)
	data, _ := os.ReadFile(path)
	m := metaOf(t, data)
	fl := data[m.freelist*uint64(m.pageSize):]
	if ne.Uint16(fl[10:]) == 0 {
		t.Fatal("the fixture's index has no free page to double: the test would check nothing")
	}
	first := ne.Uint64(fl[pageHeader:])
	_, leaves := pagesWith(t, data, flagLeaf)
	ne.PutUint64(fl[pageHeader:], leaves[len(leaves)-1])
	os.WriteFile(path, data, 0o600)
	rep, err = CheckIndex(dir, time.Second)
	if err != nil || len(rep.Problems) == 0 {
		t.Fatalf("a page in use listed as free (was %d): %+v %v", first, rep, err)
	}
}

// BenchmarkStartCheck measures what a bastion's start adds for an index
// of 20,000 sealed sessions (40,000 chain entries): OpenStore's page walk
// and bbolt's check (Consistent). Scale: 100,000 sessions, a 346 MB file,
// took about 90 ms for the walk and 80 ms for the check on a 2-core
// machine.
func BenchmarkStartCheck(b *testing.B) {
	dir, _ := bigStore(b, 20000)
	fi, _ := os.Stat(filepath.Join(dir, IndexFile))
	b.SetBytes(fi.Size())
	for b.Loop() {
		s, err := OpenStore(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Consistent(b.Context()); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
