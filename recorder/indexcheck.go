package recorder

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// IndexFile is the name of the index in the data directory.
const IndexFile = "postern.db"

// IndexReport is what CheckIndex found in an index file.
type IndexReport struct {
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	PageSize uint32 `json:"page_size,omitempty"`
	Pages    uint64 `json:"pages,omitempty"`
	// Entries counts the entries of each bucket, when the file could be
	// read that far.
	Entries map[string]int `json:"entries,omitempty"`
	// Problems are what is wrong, empty when nothing is.
	Problems []string `json:"problems"`
	// Took is how long the check took.
	Took time.Duration `json:"took_ns"`
}

// CheckIndex checks data directory dir's index file: its meta pages and
// length, every page as walkFile reads it (plain reads, no memory map),
// then bbolt's own consistency check (Tx.Check), then the index's own
// structure: the buckets it must have, chain entries under consecutive
// 8-byte sequence numbers from 0, each linking to the one before, records
// that decode under the key they name. It reads only, and waits up to
// timeout for a writer's lock (a running bastion's, which it does not
// get: stop the bastion to check its index). What is wrong is in the
// report's Problems; an error means the check could not run.
//
// It does not check signatures or recordings: that is Verify's job, on an
// index that holds together.
func CheckIndex(dir string, timeout time.Duration) (rep IndexReport, err error) {
	start := time.Now()
	path := filepath.Join(dir, IndexFile)
	rep = IndexReport{Path: path, Problems: []string{}}
	defer func() { rep.Took = time.Since(start) }()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("no session index at %s (has the bastion run with this data directory?)", path)
	}
	if err != nil {
		return rep, err
	}
	rep.Size = fi.Size()
	m, problems, err := scanFile(path, timeout)
	if errors.Is(err, berrors.ErrTimeout) {
		return rep, inUse(path)
	}
	if err != nil || len(problems) > 0 {
		rep.Problems = append(rep.Problems, problems...)
		return rep, err
	}
	rep.PageSize, rep.Pages = m.pageSize, m.pages
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: timeout, PreLoadFreelist: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return rep, inUse(path)
	}
	if err != nil {
		return rep, damage(&rep, err)
	}
	defer db.Close()
	err = guardedView(db, func(tx *bolt.Tx) error {
		// bbolt's check runs on a goroutine of its own, which a fault
		// would end the process on: safe only because scanFile found
		// every page it reads in place. A writer may have committed
		// since; what it wrote, bbolt wrote soundly.
		for err := range tx.Check() {
			if len(rep.Problems) < maxPageProblems {
				rep.Problems = append(rep.Problems, "bbolt check: "+err.Error())
			}
		}
		if len(rep.Problems) == 0 {
			rep.Entries, rep.Problems = structure(tx)
		}
		return nil
	})
	return rep, damage(&rep, err)
}

// inUse says that another process writes the index at path.
func inUse(path string) error {
	return fmt.Errorf("session index %s is in use by another process (a postern serve or demo with this data directory?): stop it to check the index", path)
}

// damage adds err to rep's problems when it is the file's damage, and
// returns it otherwise.
func damage(rep *IndexReport, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		rep.Problems = append(rep.Problems, ce.Detail)
		return nil
	}
	return err
}

// structure checks the index's own structure in tx and counts each
// bucket's entries.
func structure(tx *bolt.Tx) (map[string]int, []string) {
	entries := map[string]int{}
	problems := []string{}
	add := func(format string, a ...any) {
		if len(problems) < maxPageProblems {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	for _, name := range [][]byte{bucketSessions, bucketChain, bucketCerts} {
		if tx.Bucket(name) == nil {
			add("bucket %q missing", name)
		}
	}
	tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		check := recordCheck(name)
		n := 0
		prev := []byte(nil)
		b.ForEach(func(k, v []byte) error {
			n++
			if v == nil {
				add("bucket %q: key %x is a nested bucket", name, k)
				return nil
			}
			if check != nil {
				if why := check(k, v, prev); why != "" {
					add("bucket %q: key %x: %s", name, k, why)
				}
			}
			prev = v
			return nil
		})
		entries[string(bytes.ToValidUTF8(name, []byte("?")))] = n
		return nil
	})
	return entries, problems
}

// recordCheck returns the check of one entry of bucket name (k, v, and
// the previous entry's value), nil for a bucket it does not know (those
// other versions add are theirs to check). A check returns what is wrong,
// "" when nothing is.
func recordCheck(name []byte) func(k, v, prev []byte) string {
	decodes := func(v []byte, into any) string {
		if err := json.Unmarshal(v, into); err != nil {
			return "record does not decode: " + err.Error()
		}
		return ""
	}
	switch string(name) {
	case string(bucketChain):
		return chainCheck
	case string(bucketSessions):
		return func(k, v, _ []byte) string {
			var rec Session
			if why := decodes(v, &rec); why != "" || rec.ID == string(k) {
				return why
			}
			return "record names another ID"
		}
	case string(bucketCerts):
		return func(k, v, _ []byte) string {
			var c IssuedCert
			if why := decodes(v, &c); why != "" || len(k) == 8 && binary.BigEndian.Uint64(k) == c.Serial {
				return why
			}
			return "record names another serial"
		}
	case string(bucketApprovals), string(bucketRefusals):
		return func(k, v, _ []byte) string {
			var rec map[string]any
			return decodes(v, &rec)
		}
	}
	return nil
}

// chainCheck checks one chain entry: its key the sequence number it
// names, and its link to the entry before. The first key must be 0: a
// chain that starts later lost its beginning.
func chainCheck(k, v, prev []byte) string {
	var e ChainEntry
	if err := json.Unmarshal(v, &e); err != nil {
		return "entry does not decode: " + err.Error()
	}
	switch {
	case len(k) != 8 || binary.BigEndian.Uint64(k) != e.Seq:
		return fmt.Sprintf("entry %d stored under another key", e.Seq)
	case prev == nil && e.Seq != 0:
		return fmt.Sprintf("the chain starts at entry %d, not 0", e.Seq)
	case prev != nil && e.Prev != recordDigest(prev):
		return fmt.Sprintf("entry %d does not link to the entry before it", e.Seq)
	}
	return ""
}

// Consistent runs bbolt's consistency check on the open index (its pages were
// walked by OpenStore already, so the check's own goroutine cannot fault
// on them). It must run before anything writes: the bastion calls it when
// it starts. Damage is a *CorruptError, and s refuses all use after it.
func (s *Local) Consistent(ctx context.Context) error {
	var problems []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		return nil
	})
	if err != nil || len(problems) == 0 {
		return err
	}
	for i := range problems {
		problems[i] = "bbolt check: " + problems[i]
	}
	return s.damaged(&CorruptError{Path: s.db.Path(), Detail: summary(problems)})
}
