package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// CorruptError reports a damaged index file: one that bbolt cannot open,
// that is shorter than its own pages say, whose pages do not hold
// together, or whose reading faulted or tripped one of bbolt's
// assertions. Nothing of the index is trusted once it is seen: the
// store that met it refuses every later read and write (see Local).
type CorruptError struct {
	// Path is the index file.
	Path string
	// Detail says what was found.
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("session index %s is damaged (%s): 'postern index check' shows what is wrong; "+
		"with postern stopped, 'postern index rebuild' rebuilds it from the recordings and what survives of the audit chain, "+
		"keeping the damaged file", e.Path, e.Detail)
}

// ErrCorrupt is what a *CorruptError matches with errors.Is.
var ErrCorrupt = errors.New("session index damaged")

// Is makes a *CorruptError match ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// RecordError reports an index record that does not decode: the index
// was damaged or edited in a way bbolt's pages do not show. Unlike a
// *CorruptError it is not ErrCorrupt: the rest of the index stays usable.
type RecordError struct {
	Bucket string // the record's bucket: sessions, certs, …
	Key    string // its key
	Err    error  // the decoder's error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("session index: %s entry %s does not decode (%v): 'postern index check' shows what is wrong; "+
		"with postern stopped, 'postern index rebuild' rebuilds the index from the recordings and what survives of the audit chain, "+
		"keeping the damaged file", e.Bucket, e.Key, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// decodeSession decodes the sessions record v stored under key k.
func decodeSession(k, v []byte) (Session, error) {
	var rec Session
	if err := json.Unmarshal(v, &rec); err != nil {
		return Session{}, &RecordError{Bucket: string(bucketSessions), Key: string(k), Err: err}
	}
	return rec, nil
}

// openErrorCorrupt reports whether err, from bolt.Open, says the file is
// not a sound bbolt database (as opposed to a lock held, or a permission).
func openErrorCorrupt(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || strings.Contains(err.Error(), "file size too small")
}

// guarded runs op, a bbolt call on the index file at path, so that a
// damaged file makes it fail rather than end the process: a fault in the
// mapped file (a SIGBUS past the end of a truncated file, a SIGSEGV at a
// page number read from a flipped bit) becomes a panic for this goroutine
// (debug.SetPanicOnFault), and such a panic, or one raised inside bbolt
// (its assertions, or a slice it built from a damaged page), becomes a
// *CorruptError. A panic that did not come from the index (a bug in op's
// own code) goes on up.
//
// bbolt reads the map only on the calling goroutine, except in Tx.Check,
// which starts its own: CheckIndex walks the file safely before it calls
// that.
func guarded(path string, op func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if !fromIndex(r) {
			panic(r)
		}
		err = &CorruptError{Path: path, Detail: fmt.Sprintf("reading it failed: %v", r)}
	}()
	return op()
}

// fromIndex reports whether r, a value being recovered, was raised by the
// index: a memory fault at a real address (a nil dereference has none,
// and is a bug), or a panic whose first frame outside the runtime is in
// bbolt. It must be called from the deferred function that recovers.
func fromIndex(r any) bool {
	if re, ok := r.(runtime.Error); ok {
		if _, fault := re.(interface{ Addr() uintptr }); fault {
			return true
		}
	}
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(f.Function, "runtime."):
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}

// openBolt opens the index file at path, guarded: a file bbolt refuses as
// invalid, or whose opening faults, is a *CorruptError.
func openBolt(path string, opts *bolt.Options) (*bolt.DB, error) {
	var db *bolt.DB
	err := guarded(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	if err != nil && !errors.Is(err, ErrCorrupt) && openErrorCorrupt(err) {
		return nil, &CorruptError{Path: path, Detail: "bbolt cannot open it: " + err.Error()}
	}
	return db, err
}

// guardedView is db.View, guarded (see guarded).
func guardedView(db *bolt.DB, fn func(*bolt.Tx) error) error {
	return guarded(db.Path(), func() error { return db.View(fn) })
}

// guardedUpdate is db.Update, guarded (see guarded). A transaction that
// panics is rolled back by bbolt before the panic reaches guarded.
func guardedUpdate(db *bolt.DB, fn func(*bolt.Tx) error) error {
	return guarded(db.Path(), func() error { return db.Update(fn) })
}

// healthy returns the error a call on s must fail with before it starts:
// ctx's, or the damage s met earlier.
func (s *Local) healthy(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ce := s.broken.Load(); ce != nil {
		return ce
	}
	return nil
}

// damaged passes err on, and remembers a *CorruptError among it: the
// index is not read or written again (fail closed: a session that cannot
// be recorded is refused), and the first such error is logged.
func (s *Local) damaged(err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) && s.broken.CompareAndSwap(nil, ce) {
		s.log.Error("session index damaged: every index read and write fails from now on", "path", ce.Path, "detail", ce.Detail)
	}
	return err
}
