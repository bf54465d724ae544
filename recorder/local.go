package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketSessions = []byte("sessions")
	bucketChain    = []byte("chain")
	bucketCerts    = []byte("certs")
)

// Options configures OpenStore. The zero value opens the index for reading
// and writing, creating it if needed, without an audit key.
type Options struct {
	// Key signs audit chain entries; without it Begin, Finish,
	// MarkInterrupted, Prune and IssueCert fail.
	Key ed25519.PrivateKey
	// ReadOnly opens an existing index for reading only (admin commands
	// that change nothing). Other processes may read it at the same time;
	// none may have it open for writing.
	ReadOnly bool
	// Timeout bounds the wait for another process's lock on the index;
	// zero means 2 seconds.
	Timeout time.Duration
	// Log receives what MarkInterrupted leaves alone; nil discards.
	Log *slog.Logger
	// Now stamps chain entries (the time prune judges age by); nil
	// means time.Now. Tests set it to seal sessions in the past.
	Now func() time.Time
	// AuditPublicKey checks chain signatures when there is no Key (a
	// read-only reader): Approvals returns only what it seals. With Key,
	// Key's public half is used.
	AuditPublicKey ed25519.PublicKey
}

// Local is the default Store: the index and audit chain in
// DATA_DIR/postern.db (bbolt), recordings as files under
// DATA_DIR/recordings. The database is opened once, by OpenStore, and stays
// open (and locked against other processes) until Close: a running bastion
// owns it, and admin commands reach it through the admin socket. It is safe
// for concurrent use.
type Local struct {
	dir   string
	db    *bolt.DB
	key   ed25519.PrivateKey
	pub   ed25519.PublicKey // checks signatures without key (read-only)
	group *groupCommit      // session starts and ends
	log   *slog.Logger
	now   func() time.Time
	// broken holds the *CorruptError the index gave, once it gave one:
	// from then on every read and write fails with it (see healthy).
	broken atomic.Pointer[CorruptError]
}

var _ Store = (*Local)(nil)

// OpenStore opens the store of dataDir. The caller must Close it.
func OpenStore(dataDir string, o Options) (*Local, error) {
	path := filepath.Join(dataDir, "postern.db")
	if o.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no session index at %s (has the bastion run with this data directory?)", path)
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	var db *bolt.DB
	err := preflight(path, o.Timeout)
	if err == nil {
		db, err = openBolt(path, &bolt.Options{Timeout: o.Timeout, ReadOnly: o.ReadOnly})
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open session index %s: in use by another process (a postern serve or demo with this data directory?)", path)
	}
	if errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open session index %s: %w", path, err)
	}
	if !o.ReadOnly {
		err = guardedUpdate(db, func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketSessions, bucketChain, bucketCerts} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, ErrCorrupt) {
			db.Close()
			return nil, err
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open session index %s: %w", path, err)
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Local{dir: dataDir, db: db, key: o.Key, pub: o.AuditPublicKey, group: &groupCommit{db: db}, log: o.Log, now: o.Now}, nil
}

// Close closes the index. Writers opened by Create are not affected.
func (s *Local) Close() error { return s.db.Close() }

// Dir is the data directory.
func (s *Local) Dir() string { return s.dir }

// PublicKey is the public half of the store's audit key (or
// Options.AuditPublicKey without one), nil without either.
func (s *Local) PublicKey() ed25519.PublicKey {
	if s.key == nil {
		return s.pub
	}
	return s.key.Public().(ed25519.PublicKey)
}

// batch runs fn in a write transaction shared with the other batch calls
// made at the same moment (see groupCommit).
func (s *Local) batch(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.healthy(ctx); err != nil {
		return err
	}
	return s.damaged(s.group.run(fn))
}

// update runs fn in a write transaction. A context already done stops it
// before it starts; a transaction, once begun, is not interrupted.
func (s *Local) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.healthy(ctx); err != nil {
		return err
	}
	return s.damaged(guardedUpdate(s.db, fn))
}

func (s *Local) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.healthy(ctx); err != nil {
		return err
	}
	return s.damaged(guardedView(s.db, fn))
}

// Begin implements Index: the entry is stored and sealed by a KindBegin
// chain entry in one transaction, so an active entry without one is not
// the bastion's.
func (s *Local) Begin(ctx context.Context, rec Session) error {
	rec.Status = StatusActive
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.batch(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b.Get([]byte(rec.ID)) != nil {
			return fmt.Errorf("session %s already in the index", rec.ID)
		}
		if err := b.Put([]byte(rec.ID), data); err != nil {
			return err
		}
		_, err := s.appendChain(tx, ChainEntry{Kind: KindBegin, Recording: rec.ID, Path: rec.Path, Record: recordDigest(data)})
		return err
	})
}

// Finish implements Index.
func (s *Local) Finish(ctx context.Context, rec Session) (ChainHead, error) {
	if rec.Status == "" || rec.Status == StatusActive {
		rec.Status = StatusClosed
	}
	var head ChainHead
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		var err error
		head, err = s.seal(tx, rec, "")
		return err
	})
	return head, err
}

// seal stores rec and appends its KindRecording entry; lost, when set, says
// why the recording could not be digested (see ChainEntry.Lost).
func (s *Local) seal(tx *bolt.Tx, rec Session, lost string) (ChainHead, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return ChainHead{}, err
	}
	if err := tx.Bucket(bucketSessions).Put([]byte(rec.ID), data); err != nil {
		return ChainHead{}, err
	}
	return s.appendChain(tx, ChainEntry{
		Kind: KindRecording, Recording: rec.ID, Path: rec.Path, SHA256: rec.SHA256, Size: rec.Size,
		Record: recordDigest(data), Lost: lost,
	})
}

func (s *Local) appendChain(tx *bolt.Tx, e ChainEntry) (ChainHead, error) {
	b := tx.Bucket(bucketChain)
	lastSeq, last, err := newestEntry(b)
	if err != nil {
		return ChainHead{}, err
	}
	key, val, head, err := nextEntry(last, lastSeq, e, s.key, s.now())
	if err != nil {
		return ChainHead{}, err
	}
	return head, b.Put(key, val)
}

// Head implements Index.
func (s *Local) Head(ctx context.Context) (*ChainHead, error) {
	var head *ChainHead
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChain)
		if b == nil {
			return nil
		}
		seq, v, err := newestEntry(b)
		if err != nil || v == nil {
			return err
		}
		h := headOf(seq, v)
		head = &h
		return nil
	})
	return head, err
}

// newestEntry returns the sequence number and value of the newest entry of
// chain bucket b, a nil value when it is empty. A newest key that is not
// an 8-byte sequence number (an edited or torn index) is an error, not a
// guess: the chain cannot be extended or named until it is repaired.
func newestEntry(b *bolt.Bucket) (seq uint64, val []byte, err error) {
	k, v := b.Cursor().Last()
	if k == nil {
		return 0, nil, nil
	}
	if len(k) != 8 {
		return 0, nil, fmt.Errorf("audit chain corrupt: its newest key is %x (%d bytes), not an 8-byte sequence number; run 'postern verify'", k, len(k))
	}
	return binary.BigEndian.Uint64(k), v, nil
}

// Get implements Index.
func (s *Local) Get(ctx context.Context, id string) (Session, error) {
	var rec Session
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		rec, err = decodeSession([]byte(id), v)
		return err
	})
	return rec, err
}

// List implements Index (IDs sort by time).
func (s *Local) List(ctx context.Context, f Filter) ([]Session, error) {
	var out []Session
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = sessions(tx, f)
		return err
	})
	return out, err
}

func sessions(tx *bolt.Tx, f Filter) ([]Session, error) {
	var out []Session
	b := tx.Bucket(bucketSessions)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		rec, err := decodeSession(k, v)
		if err != nil {
			return err
		}
		if f.Match(rec) {
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// Prune implements Index.
func (s *Local) Prune(ctx context.Context, ids []string) ([]Session, *ChainHead, error) {
	var pruned []Session
	var head *ChainHead
	err := s.update(ctx, func(tx *bolt.Tx) error {
		pruned = nil
		b := tx.Bucket(bucketSessions)
		var gone []string
		for _, id := range ids {
			v := b.Get([]byte(id))
			if v == nil {
				continue
			}
			rec, err := decodeSession([]byte(id), v)
			if err != nil {
				return err
			}
			if rec.Status == StatusActive {
				continue
			}
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
			pruned = append(pruned, rec)
			gone = append(gone, id)
		}
		if len(gone) == 0 {
			return nil
		}
		h, err := s.appendChain(tx, ChainEntry{Kind: KindPrune, Pruned: gone})
		head = &h
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return pruned, head, nil
}

// Snapshot implements Index: one read transaction, copied out of it.
func (s *Local) Snapshot(ctx context.Context) (*Snapshot, error) {
	snap := &Snapshot{Sessions: map[string][]byte{}, Certs: map[string][]byte{}}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		copyBucket := func(name []byte, put func(k, v []byte)) error {
			b := tx.Bucket(name)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				put(bytes.Clone(k), bytes.Clone(v))
				return nil
			})
		}
		if err := copyBucket(bucketSessions, func(k, v []byte) { snap.Sessions[string(k)] = v }); err != nil {
			return err
		}
		// Every key, a serial or not: verify reports the others.
		if err := copyBucket(bucketCerts, func(k, v []byte) { snap.Certs[certKeyName(k)] = v }); err != nil {
			return err
		}
		if err := snapshotApprovals(tx, snap); err != nil {
			return err
		}
		if err := snapshotRefusals(tx, snap); err != nil {
			return err
		}
		if err := snapshotRevocations(tx, snap); err != nil {
			return err
		}
		return copyBucket(bucketChain, func(k, v []byte) { snap.Chain = append(snap.Chain, RawEntry{Key: k, Value: v}) })
	})
	return snap, err
}
