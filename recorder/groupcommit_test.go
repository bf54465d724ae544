package recorder

import (
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommit: concurrent calls each get their own result, a failing
// call rolls back only itself, and every other call's write is committed.
func TestGroupCommit(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("b")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	g := &groupCommit{db: db}
	errOdd := errors.New("refused")
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = g.run(func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucket).Put([]byte(strconv.Itoa(i)), []byte("v")); err != nil {
					return err
				}
				if i%7 == 0 {
					return errOdd // its Put must not survive
				}
				return nil
			})
		})
	}
	wg.Wait()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for i := range n {
			present := b.Get([]byte(strconv.Itoa(i))) != nil
			switch {
			case i%7 == 0 && (!errors.Is(errs[i], errOdd) || present):
				t.Errorf("call %d: err %v, write present %v; want its error and no write", i, errs[i], present)
			case i%7 != 0 && (errs[i] != nil || !present):
				t.Errorf("call %d: err %v, write present %v; want success", i, errs[i], present)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leading || len(g.queue) != 0 {
		t.Fatalf("after the last call: leading %v, %d queued", g.leading, len(g.queue))
	}
}

// TestGroupCommitPanic: a transaction function that panics fails the
// calls that shared its group, and the next call still commits: the group
// commit is not left with a leader that will never come back.
func TestGroupCommitPanic(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := &groupCommit{db: db}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		g.run(func(*bolt.Tx) error { panic("boom") })
	}()
	done := make(chan error, 1)
	go func() {
		done <- g.run(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the call after a panic: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call after a panic never committed")
	}
}
