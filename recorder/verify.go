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
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
)

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
		// The chain's path is checked before the file is read: an
		// entry signed with a stolen audit key could name any file.
		full, err := s.RecordingFile(e.Path)
		if err != nil {
			add(pathProblem(id, e.Path, err))
			continue
		}
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
		if _, err := s.RecordingFile(rec.Path); err != nil {
			add(pathProblem(id, rec.Path, err)) // what play and prune would refuse
		}
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
