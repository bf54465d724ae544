package recorder

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Session statuses in the index.
const (
	StatusActive      = "active"
	StatusClosed      = "closed"
	StatusInterrupted = "interrupted"
)

// Session is one recorded session channel in the index.
type Session struct {
	ID         string     `json:"id"`      // recording ID: SESSION-N, sortable, file-name safe
	Session    string     `json:"session"` // the connection's session ID
	Identity   string     `json:"identity"`
	Principals []string   `json:"principals,omitempty"`
	KeyID      string     `json:"key_id,omitempty"`
	Serial     uint64     `json:"serial,omitempty"`
	Client     string     `json:"client"`
	Target     string     `json:"target"`
	Login      string     `json:"login"`
	Kind       string     `json:"kind"` // shell, exec, or a transfer: sftp, scp, rsync
	Command    string     `json:"command,omitempty"`
	Start      time.Time  `json:"start"`
	End        *time.Time `json:"end,omitempty"`
	ExitStatus *int       `json:"exit_status,omitempty"`
	ExitSignal string     `json:"exit_signal,omitempty"`
	BytesIn    int64      `json:"bytes_in"`
	BytesOut   int64      `json:"bytes_out"`
	MaskedPANs int64      `json:"masked_pans"` // how many card numbers were masked (never the numbers)
	Path       string     `json:"path"`        // relative to the data directory
	SHA256     string     `json:"sha256,omitempty"`
	Size       int64      `json:"size,omitempty"`
	Status     string     `json:"status"`
	// Transfers are the files and file operations of a transfer
	// channel (Kind sftp, scp or rsync), in order; at most
	// MaxTransfers, the rest counted in TransfersOmitted (the
	// recording's markers list them all).
	Transfers        []Transfer `json:"transfers,omitempty"`
	TransfersOmitted int64      `json:"transfers_omitted,omitempty"`
}

// MaxTransfers caps the transfer records kept in one index entry.
const MaxTransfers = 10000

// Transfer is one file moved or changed by a transfer channel. Path and To
// are masked like log text.
type Transfer struct {
	Op      string `json:"op"` // download, upload, list, remove, rename, link, symlink, mkdir, rmdir, setstat, copy
	Path    string `json:"path"`
	To      string `json:"to,omitempty"`     // rename, link, symlink, copy
	Bytes   int64  `json:"bytes"`            // file bytes that reached the client (download) or target (upload)
	PANs    int64  `json:"pans"`             // card numbers found in a download
	Outcome string `json:"outcome"`          // ok, blocked, masked, allowed, failed, incomplete
	Detail  string `json:"detail,omitempty"` // the status text of a failure, masked
}

// ChainEntry is one link of the audit chain. Each entry names the hash of
// the one before it and is signed with the audit key, so removing,
// reordering or editing an entry breaks the chain.
type ChainEntry struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // "recording" or "prune"
	Recording string    `json:"recording,omitempty"`
	Path      string    `json:"path,omitempty"`
	SHA256    string    `json:"sha256,omitempty"` // of the recording file
	Size      int64     `json:"size,omitempty"`
	Record    string    `json:"record,omitempty"` // SHA-256 of the index record as stored
	Pruned    []string  `json:"pruned,omitempty"` // recording IDs deleted by retention
	Prev      string    `json:"prev"`
	Sig       string    `json:"sig"`
}

// ChainHead names one entry of the audit chain by its sequence number and
// the SHA-256 of the entry as stored. The newest entry's head, kept
// somewhere an attacker on the bastion cannot reach (a log shipped off the
// host, a ticket, an auditor's notes), anchors the chain: Verify with that
// anchor detects entries removed from the end or the chain rewritten with
// another key, which the chain alone cannot show.
type ChainHead struct {
	Seq    uint64 `json:"seq"`
	SHA256 string `json:"sha256"`
}

func (h ChainHead) String() string { return strconv.FormatUint(h.Seq, 10) + ":" + h.SHA256 }

// headOf names chain entry seq, stored as raw.
func headOf(seq uint64, raw []byte) ChainHead {
	sum := sha256.Sum256(raw)
	return ChainHead{Seq: seq, SHA256: hex.EncodeToString(sum[:])}
}

// ParseChainHead parses SEQ:SHA256, as ChainHead.String writes it.
func ParseChainHead(s string) (ChainHead, error) {
	seq, sum, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return ChainHead{}, fmt.Errorf("%q is not an audit chain anchor: want SEQ:SHA256, as 'postern verify' prints it", s)
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return ChainHead{}, fmt.Errorf("%q is not an audit chain anchor: %q is not a hex SHA-256", s, sum)
	}
	return ChainHead{Seq: n, SHA256: strings.ToLower(sum)}, nil
}

var (
	bucketSessions = []byte("sessions")
	bucketChain    = []byte("chain")
)

// ErrNotFound is returned for an unknown session ID.
var ErrNotFound = errors.New("no such session")

// Store is the session index and audit chain in DATA_DIR/postern.db. It
// opens the database for each operation and closes it after, so that admin
// commands in other processes can read it while the bastion runs. It is
// safe for concurrent use.
type Store struct {
	dir  string
	path string
	key  ed25519.PrivateKey
	mu   sync.Mutex // serialises this process's opens (bbolt's flock is per open file)
}

// OpenStore returns the store of dataDir. key signs audit chain entries; it
// may be nil for read-only use (listing, Verify).
func OpenStore(dataDir string, key ed25519.PrivateKey) *Store {
	return &Store{dir: dataDir, path: filepath.Join(dataDir, "postern.db"), key: key}
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// PublicKey is the public half of the store's audit key, nil without one.
func (s *Store) PublicKey() ed25519.PublicKey {
	if s.key == nil {
		return nil
	}
	return s.key.Public().(ed25519.PublicKey)
}

func (s *Store) open(readOnly bool) (*bolt.DB, error) {
	if readOnly {
		if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no session index at %s (has the bastion run with this data directory?)", s.path)
		}
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 10 * time.Second, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("open session index %s: %w", s.path, err)
	}
	return db, nil
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, err := s.open(false)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketSessions); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketChain); err != nil {
			return err
		}
		return fn(tx)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, err := s.open(true)
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Begin records a session as active.
func (s *Store) Begin(rec Session) error {
	rec.Status = StatusActive
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b.Get([]byte(rec.ID)) != nil {
			return fmt.Errorf("session %s already in the index", rec.ID)
		}
		return putJSON(b, rec.ID, rec)
	})
}

// Finish stores the final record (with digest, size, end) and appends its
// seal to the audit chain, in one transaction. It returns the chain's new
// head, for the caller to log.
func (s *Store) Finish(rec Session) (ChainHead, error) {
	if rec.Status == "" || rec.Status == StatusActive {
		rec.Status = StatusClosed
	}
	var head ChainHead
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		head, err = s.sealLocked(tx, rec)
		return err
	})
	return head, err
}

func (s *Store) sealLocked(tx *bolt.Tx, rec Session) (ChainHead, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return ChainHead{}, err
	}
	if err := tx.Bucket(bucketSessions).Put([]byte(rec.ID), data); err != nil {
		return ChainHead{}, err
	}
	sum := sha256.Sum256(data)
	return s.appendChain(tx, ChainEntry{
		Kind: "recording", Recording: rec.ID, Path: rec.Path, SHA256: rec.SHA256, Size: rec.Size,
		Record: hex.EncodeToString(sum[:]),
	})
}

func (s *Store) appendChain(tx *bolt.Tx, e ChainEntry) (ChainHead, error) {
	if s.key == nil {
		return ChainHead{}, errors.New("no audit key: cannot append to the audit chain")
	}
	b := tx.Bucket(bucketChain)
	k, last := b.Cursor().Last()
	if k != nil {
		e.Seq = binary.BigEndian.Uint64(k) + 1
		sum := sha256.Sum256(last)
		e.Prev = hex.EncodeToString(sum[:])
	}
	e.Time = time.Now().UTC()
	e.Sig = ""
	unsigned, err := json.Marshal(e)
	if err != nil {
		return ChainHead{}, err
	}
	e.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, unsigned))
	data, err := json.Marshal(e)
	if err != nil {
		return ChainHead{}, err
	}
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], e.Seq)
	return headOf(e.Seq, data), b.Put(key[:], data)
}

// Head returns the audit chain's newest entry, nil while the chain is
// empty.
func (s *Store) Head() (*ChainHead, error) {
	var head *ChainHead
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChain)
		if b == nil {
			return nil
		}
		k, v := b.Cursor().Last()
		if k == nil {
			return nil
		}
		h := headOf(binary.BigEndian.Uint64(k), v)
		head = &h
		return nil
	})
	return head, err
}

// MarkInterrupted seals every session still marked active, which after a
// restart means the bastion died during it: the file holds a valid prefix,
// and its digest as found is what the chain records.
func (s *Store) MarkInterrupted() ([]string, error) {
	var ids []string
	err := s.update(func(tx *bolt.Tx) error {
		var active []Session
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var rec Session
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("index entry %s: %w", k, err)
			}
			if rec.Status == StatusActive {
				active = append(active, rec)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, rec := range active {
			rec.Status = StatusInterrupted
			if path, err := s.RecordingFile(rec.Path); err == nil {
				if sum, size, err := fileDigest(path); err == nil {
					rec.SHA256, rec.Size = sum, size
				}
			}
			if _, err := s.sealLocked(tx, rec); err != nil {
				return err
			}
			ids = append(ids, rec.ID)
		}
		return nil
	})
	return ids, err
}

// Get returns one session.
func (s *Store) Get(id string) (Session, error) {
	var rec Session
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &rec)
	})
	return rec, err
}

// Filter selects sessions in List. Zero fields match everything.
type Filter struct {
	User, Target string
	Since, Until time.Time
	Active       bool
}

func (f Filter) match(r Session) bool {
	if f.User != "" && r.Identity != f.User && !containsString(r.Principals, f.User) {
		return false
	}
	if f.Target != "" && r.Target != f.Target {
		return false
	}
	if !f.Since.IsZero() && r.Start.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.Start.Before(f.Until) {
		return false
	}
	if f.Active && r.Status != StatusActive {
		return false
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// List returns the sessions that match f, oldest first (IDs sort by time).
func (s *Store) List(f Filter) ([]Session, error) {
	var out []Session
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec Session
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("index entry %s: %w", k, err)
			}
			if f.match(rec) {
				out = append(out, rec)
			}
			return nil
		})
	})
	return out, err
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// FileDigest returns the hex SHA-256 and size of the file at path.
func FileDigest(path string) (string, int64, error) { return fileDigest(path) }

func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
