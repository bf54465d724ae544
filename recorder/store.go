package recorder

import (
	"bytes"
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
	"sort"
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
			if sum, size, err := fileDigest(filepath.Join(s.dir, rec.Path)); err == nil {
				rec.SHA256, rec.Size = sum, size
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

// Prune deletes the recordings and index entries of sessions that ended
// before cutoff, and records what it deleted in the audit chain. It returns
// the chain entry it appended, nil when nothing was old enough.
func (s *Store) Prune(cutoff time.Time) ([]Session, *ChainHead, error) {
	var pruned []Session
	var head *ChainHead
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		err := b.ForEach(func(k, v []byte) error {
			var rec Session
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("index entry %s: %w", k, err)
			}
			if rec.Status != StatusActive && rec.End != nil && rec.End.Before(cutoff) {
				pruned = append(pruned, rec)
			} else if rec.Status == StatusInterrupted && rec.Start.Before(cutoff) {
				pruned = append(pruned, rec)
			}
			return nil
		})
		if err != nil || len(pruned) == 0 {
			return err
		}
		ids := make([]string, len(pruned))
		for i, rec := range pruned {
			ids[i] = rec.ID
			if err := b.Delete([]byte(rec.ID)); err != nil {
				return err
			}
		}
		h, err := s.appendChain(tx, ChainEntry{Kind: "prune", Pruned: ids})
		head = &h
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	// Files go after the chain says so: a crash in between leaves files
	// that verify reports as "pruned but present", never silent loss.
	for _, rec := range pruned {
		if err := os.Remove(filepath.Join(s.dir, rec.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return pruned, head, fmt.Errorf("delete %s: %w", rec.Path, err)
		}
	}
	return pruned, head, nil
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

// Problem is one finding of Verify, naming the file or entry concerned.
type Problem struct {
	Path   string `json:"path,omitempty"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"` // modified, truncated, deleted, added, index edited, ...
	Detail string `json:"detail,omitempty"`
}

func (p Problem) String() string {
	s := p.Reason
	if p.Path != "" {
		s = p.Path + ": " + s
	} else if p.ID != "" {
		s = p.ID + ": " + s
	}
	if p.Detail != "" {
		s += " (" + p.Detail + ")"
	}
	return s
}

// Report is the outcome of Verify.
type Report struct {
	ChainEntries int `json:"chain_entries"`
	Recordings   int `json:"recordings"`
	// Head is the newest chain entry, nil for an empty chain: record it
	// away from the bastion and pass it back as an anchor later.
	Head     *ChainHead `json:"head"`
	Problems []Problem  `json:"problems"`
}

// VerifyOptions says what Verify checks the data against.
type VerifyOptions struct {
	// Key checks the chain's signatures. Required.
	Key ed25519.PublicKey
	// Anchors are chain heads recorded earlier; each must still be in
	// the chain, unchanged.
	Anchors []ChainHead
}

// Verify checks the audit chain's links and signatures, every sealed
// recording against its digest and index record, and the recordings
// directory for files nobody sealed. It only reads: the store needs no
// private key for it.
func (s *Store) Verify(o VerifyOptions) (Report, error) {
	rep := Report{Problems: []Problem{}}
	if len(o.Key) != ed25519.PublicKeySize {
		return rep, errors.New("verify needs the audit public key")
	}
	pub := o.Key
	index := map[string][]byte{}
	var chain [][]byte
	var keys [][]byte // chain's bbolt keys: big-endian seq
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSessions); b != nil {
			b.ForEach(func(k, v []byte) error {
				index[string(k)] = bytes.Clone(v)
				return nil
			})
		}
		if b := tx.Bucket(bucketChain); b != nil {
			b.ForEach(func(k, v []byte) error {
				chain = append(chain, bytes.Clone(v))
				keys = append(keys, bytes.Clone(k))
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }

	sealed := map[string]ChainEntry{} // latest seal per recording
	pruned := map[string]bool{}
	prevHash := ""
	for i, raw := range chain {
		var e ChainEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			add(Problem{ID: fmt.Sprintf("chain entry %d", i), Reason: "unreadable", Detail: err.Error()})
			continue
		}
		id := fmt.Sprintf("chain entry %d", e.Seq)
		if e.Seq != uint64(i) || len(keys[i]) != 8 || binary.BigEndian.Uint64(keys[i]) != e.Seq {
			add(Problem{ID: id, Reason: "chain out of sequence", Detail: fmt.Sprintf("expected seq %d at key %d", i, i)})
		}
		if e.Prev != prevHash {
			add(Problem{ID: id, Reason: "chain broken", Detail: "does not link to the previous entry"})
		}
		sum := sha256.Sum256(raw)
		prevHash = hex.EncodeToString(sum[:])
		sig, _ := base64.StdEncoding.DecodeString(e.Sig)
		e2 := e
		e2.Sig = ""
		unsigned, _ := json.Marshal(e2)
		if !ed25519.Verify(pub, unsigned, sig) {
			add(Problem{ID: id, Reason: "bad signature", Detail: "entry edited or not signed by this bastion's audit key"})
		}
		switch e.Kind {
		case "recording":
			// A session is sealed once, when it ends (or at the next
			// start, if the bastion died). A second seal re-signs a
			// recording after the fact: with the audit key, someone
			// could seal an edited file anew.
			if first, ok := sealed[e.Recording]; ok {
				add(Problem{Path: e.Path, ID: e.Recording, Reason: "sealed twice", Detail: fmt.Sprintf("chain entries %d and %d", first.Seq, e.Seq)})
			}
			sealed[e.Recording] = e
			delete(pruned, e.Recording)
		case "prune":
			for _, r := range e.Pruned {
				pruned[r] = true
				delete(sealed, r)
			}
		}
	}
	rep.ChainEntries = len(chain)
	if n := len(chain); n > 0 {
		h := headOf(uint64(n-1), chain[n-1])
		rep.Head = &h
	}
	for _, a := range o.Anchors {
		id := fmt.Sprintf("chain entry %d", a.Seq)
		if a.Seq >= uint64(len(chain)) {
			add(Problem{ID: id, Reason: "chain truncated", Detail: fmt.Sprintf("anchored entry is gone; the chain has %d entries", len(chain))})
			continue
		}
		if sum := sha256.Sum256(chain[a.Seq]); hex.EncodeToString(sum[:]) != a.SHA256 {
			add(Problem{ID: id, Reason: "chain rewritten", Detail: "entry differs from its anchor " + a.String()})
		}
	}

	referenced := map[string]bool{}
	ids := make([]string, 0, len(sealed))
	for id := range sealed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := sealed[id]
		rep.Recordings++
		referenced[e.Path] = true
		rec, ok := index[id]
		switch {
		case !ok:
			add(Problem{Path: e.Path, ID: id, Reason: "index entry deleted"})
		default:
			sum := sha256.Sum256(rec)
			if hex.EncodeToString(sum[:]) != e.Record {
				add(Problem{Path: e.Path, ID: id, Reason: "index entry edited"})
			}
		}
		full := filepath.Join(s.dir, e.Path)
		digest, size, err := fileDigest(full)
		switch {
		case e.SHA256 == "" && errors.Is(err, fs.ErrNotExist):
			// Sealed without a file (it could not be created, or
			// the bastion died first), and there still is none.
		case errors.Is(err, fs.ErrNotExist):
			add(Problem{Path: e.Path, ID: id, Reason: "deleted"})
		case err != nil:
			add(Problem{Path: e.Path, ID: id, Reason: "unreadable", Detail: err.Error()})
		case e.SHA256 == "":
			// Sealed when no file existed: any file there now was
			// put there later.
			add(Problem{Path: e.Path, ID: id, Reason: "added", Detail: "sealed without a file"})
		case size < e.Size:
			add(Problem{Path: e.Path, ID: id, Reason: "truncated", Detail: fmt.Sprintf("%d bytes, sealed with %d", size, e.Size)})
		case digest != e.SHA256:
			add(Problem{Path: e.Path, ID: id, Reason: "modified", Detail: "content does not match the sealed SHA-256"})
		}
	}
	for id, raw := range index {
		if _, ok := sealed[id]; ok {
			continue
		}
		var rec Session
		json.Unmarshal(raw, &rec)
		referenced[rec.Path] = true
		if rec.Status == StatusActive {
			continue // in progress (or interrupted, until the bastion restarts)
		}
		add(Problem{Path: rec.Path, ID: id, Reason: "index entry not sealed in the audit chain"})
	}
	root := filepath.Join(s.dir, "recordings")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(s.dir, p)
		if referenced[rel] {
			return nil
		}
		id := strings.TrimSuffix(d.Name(), ".cast")
		if pruned[id] {
			add(Problem{Path: rel, ID: id, Reason: "pruned but still present"})
			return nil
		}
		add(Problem{Path: rel, Reason: "added", Detail: "not in the index or the audit chain"})
		return nil
	})
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	return rep, nil
}
