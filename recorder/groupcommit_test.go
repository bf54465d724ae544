package recorder

import (
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

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
