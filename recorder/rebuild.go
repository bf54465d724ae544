package recorder

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RebuildOptions configures RebuildIndex.
type RebuildOptions struct {
	// Key signs the rebuilt chain's new entries; its public half
	// checks the damaged chain's. Required.
	Key ed25519.PrivateKey
	// Now stamps the new entries and names the damaged file; nil means
	// time.Now.
	Now func() time.Time
}

// RebuildReport is what RebuildIndex did: the note it sealed, what it
// restored, and where the chain stands.
type RebuildReport struct {
	RebuildNote
	// Restored counts the records restored as they were, by bucket.
	Restored map[string]int `json:"restored"`
	// Head is the rebuilt chain's newest entry.
	Head ChainHead `json:"head"`
}

// RebuildIndex rebuilds the index of data directory dir from what
// survives: the audit chain's entries still whole in the damaged file
// (found by their signatures, not by bbolt's pages, which may be what is
// damaged), the records whose digests those entries name, and the
// recordings on disk. The caller must hold the directory's lock: no
// bastion may run meanwhile.
//
// The new chain begins with the damaged chain's unbroken beginning, as it
// was (so anchors taken in it still hold), then a KindRebuild entry
// stating what was found and lost, then the damaged chain's later entries
// carried over as stored (KindCarried), then a seal for each recording
// nothing else seals: sessions begun and never sealed, and files no entry
// names, sealed as found (StatusRebuilt). What was in entries that were
// not found (certificates issued, approvals, refusals, prunes, sessions)
// is lost, and the note says which entries those were.
//
// The damaged file is kept as postern.db.corrupt-TIME, never deleted; the
// new index replaces postern.db in one rename.
func RebuildIndex(ctx context.Context, dir string, o RebuildOptions) (RebuildReport, error) {
	if o.Key == nil {
		return RebuildReport{}, errors.New("rebuild the index: no audit key to sign it with")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	now := o.Now().UTC()
	file := filepath.Join(dir, IndexFile)
	pub := o.Key.Public().(ed25519.PublicKey)
	sv, note, aside, err := salvageFile(file, pub, now)
	if err != nil {
		return RebuildReport{}, err
	}
	p := newRebuildPlan(pub, sv)
	if aside != "" {
		f, err := os.Open(file)
		if err != nil {
			return RebuildReport{}, err
		}
		err = sv.salvageRecords(f, p.wanted())
		f.Close()
		if err != nil {
			return RebuildReport{}, fmt.Errorf("rebuild the index: read %s: %w", file, err)
		}
	}
	blobs := LocalBlobs(dir)
	files, err := blobs.Files(ctx)
	if err != nil {
		return RebuildReport{}, err
	}
	p.resolve(ctx, sv.records, files, blobs)
	note.RecordsLost, note.Sealed = p.lost, p.sealedIDs()
	rep := RebuildReport{RebuildNote: note, Restored: p.restored}
	tmp := file + ".rebuilding"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, err
	}
	if rep.Head, err = p.write(tmp, o.Key, now, note); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("rebuild the index: %w", err)
	}
	return rep, swapIndex(file, aside, tmp)
}

// salvageFile reads the damaged index at file, if there is one: its
// digest, the chain entries signed with pub, and the name it will be kept
// under (aside, "" when there is no file).
func salvageFile(file string, pub ed25519.PublicKey, now time.Time) (*salvaged, RebuildNote, string, error) {
	note := RebuildNote{Newest: -1}
	sv := &salvaged{entries: nil, records: map[string][]byte{}, newest: -1}
	fi, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return sv, note, "", nil
	}
	if err != nil {
		return nil, note, "", err
	}
	aside := file + ".corrupt-" + now.Format("20060102T150405Z")
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = file + ".corrupt-" + now.Format("20060102T150405Z") + fmt.Sprintf("-%d", i)
	}
	note.File, note.Size = filepath.Base(aside), fi.Size()
	if note.SHA256, _, err = fileDigest(file); err != nil {
		return nil, note, "", err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, note, "", err
	}
	defer f.Close()
	if sv, err = salvageChain(f, pub); err != nil {
		return nil, note, "", fmt.Errorf("rebuild the index: read %s: %w", file, err)
	}
	note.Kept, note.Carried, note.Newest = uint64(len(sv.kept)), len(sv.carried), sv.newest
	note.Missing, note.Dropped = sv.missing, sv.dropped
	return sv, note, aside, nil
}

// swapIndex keeps the damaged index at aside (a hard link, so that
// postern.db is never missing; a rename where links fail) and puts the
// rebuilt one, tmp, in its place.
func swapIndex(file, aside, tmp string) error {
	if aside != "" {
		if err := os.Link(file, aside); err != nil {
			if err := os.Rename(file, aside); err != nil {
				return fmt.Errorf("rebuild the index: keep the damaged index as %s: %w", aside, err)
			}
		}
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("rebuild the index: put it in place: %w", err)
	}
	d, err := os.Open(filepath.Dir(file))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// place is where a record goes: its bucket and key.
type place struct {
	bucket string
	key    string
}

// placeOf says where the record chain entry e seals goes, and what to
// call it; ok false for an entry that seals no record, or one of a kind
// this version does not know (named in label then).
func placeOf(e ChainEntry) (p place, label string, ok bool) {
	switch e.Kind {
	case KindBegin, KindRecording:
		return place{string(bucketSessions), e.Recording}, "session " + e.Recording, true
	case KindCertificate:
		return place{string(bucketCerts), string(seqKey(e.Serial))}, "certificate " + formatSerial(e.Serial), true
	case KindApproval:
		return place{string(bucketApprovals), e.Request}, "approval " + e.Request, true
	case KindCertRefused:
		return place{string(bucketRefusals), e.Refusal}, "refusal " + e.Refusal, true
	case KindRevocation:
		k := Revocation{Serial: e.Serial, KeyID: e.KeyID}.Key()
		return place{string(bucketRevocations), k}, "revocation " + k, true
	}
	if e.Record != "" {
		return place{}, fmt.Sprintf("record of chain entry %d (kind %s)", e.Seq, e.Kind), false
	}
	return place{}, "", false
}

// session is what the salvaged chain says of one recording.
type session struct {
	path   string
	begun  bool // its newest entry is a begin entry: never sealed since
	pruned bool
}

// rebuildPlan is what a rebuild writes, worked out from the salvaged
// chain, then the records found and the recordings on disk.
type rebuildPlan struct {
	pub      ed25519.PublicKey
	sv       *salvaged
	records  map[place]string // the newest seal's record digest, by place
	labels   map[place]string
	sessions map[string]*session // by recording ID
	lost     []string
	puts     map[place][]byte // records restored as they were
	restored map[string]int   // count by bucket
	seals    []rebuiltSeal    // recordings the rebuild seals itself
}

// rebuiltSeal is a session record the rebuild seals, and its seal's Lost
// and Rebuilt.
type rebuiltSeal struct {
	rec           Session
	lost, rebuilt string
}

// newRebuildPlan reads the chain sv kept and carried, in order.
func newRebuildPlan(pub ed25519.PublicKey, sv *salvaged) *rebuildPlan {
	p := &rebuildPlan{pub: pub, sv: sv, records: map[place]string{}, labels: map[place]string{},
		sessions: map[string]*session{}, puts: map[place][]byte{}, restored: map[string]int{}}
	for _, raw := range slices.Concat(sv.kept, sv.carried) {
		p.entry(p.original(raw))
	}
	return p
}

// original returns the entry raw is, or the one it carries (a chain
// rebuilt before), as stored.
func (p *rebuildPlan) original(raw []byte) []byte {
	for range 8 {
		e := decodeEntry(raw)
		if e.Kind != KindCarried {
			break
		}
		if _, ok := verifyEntry(p.pub, []byte(e.Original)); !ok {
			break
		}
		raw = []byte(e.Original)
	}
	return raw
}

// entry notes what chain entry raw seals.
func (p *rebuildPlan) entry(raw []byte) {
	e := decodeEntry(raw)
	if e.Kind == KindPrune {
		for _, id := range e.Pruned {
			delete(p.records, place{string(bucketSessions), id})
			if s := p.sessions[id]; s != nil {
				s.pruned, s.begun = true, false
			}
		}
		return
	}
	pl, label, ok := placeOf(e)
	if !ok {
		if label != "" {
			p.lost = append(p.lost, label)
		}
		return
	}
	p.records[pl], p.labels[pl] = e.Record, label
	if e.Kind == KindBegin || e.Kind == KindRecording {
		s := p.sessions[e.Recording]
		if s == nil {
			s = &session{}
			p.sessions[e.Recording] = s
		}
		s.path, s.begun, s.pruned = e.Path, e.Kind == KindBegin, false
	}
}

// wanted is the record digests to look for.
func (p *rebuildPlan) wanted() map[string]bool {
	want := map[string]bool{}
	for _, d := range p.records {
		want[d] = true
	}
	return want
}

// sealedIDs names the recordings the rebuild seals itself.
func (p *rebuildPlan) sealedIDs() []string {
	var ids []string
	for _, s := range p.seals {
		ids = append(ids, s.rec.ID)
	}
	return ids
}

// resolve restores each sealed record found, counts the ones lost, and
// plans the seals of the sessions begun and never sealed and of the
// recordings in files no entry names.
func (p *rebuildPlan) resolve(ctx context.Context, found map[string][]byte, files []string, blobs Blobs) {
	places := slices.SortedFunc(maps.Keys(p.records), func(a, b place) int {
		return strings.Compare(a.bucket+"/"+a.key, b.bucket+"/"+b.key)
	})
	for _, pl := range places {
		rec := found[p.records[pl]]
		if s := p.sessions[pl.key]; pl.bucket == string(bucketSessions) && s != nil && s.begun {
			p.sealBegun(ctx, pl.key, s, rec, blobs)
			continue
		}
		if rec == nil {
			p.lost = append(p.lost, p.labels[pl])
			continue
		}
		p.puts[pl] = rec
		p.restored[pl.bucket]++
	}
	referenced := map[string]bool{}
	for _, s := range p.sessions {
		referenced[s.path] = true
	}
	for _, name := range files {
		id := strings.TrimSuffix(path.Base(name), ".cast")
		if referenced[name] || p.sessions[id] != nil || blobs.Check(ctx, name) != nil || !strings.HasSuffix(name, ".cast") {
			continue // verify reports what is left
		}
		rec := fromHeader(ctx, blobs, id, name)
		p.seal(ctx, rec, blobs, "no entry of the damaged index names it: sealed as found at the rebuild")
	}
}

// sealBegun plans the seal of session id, begun and never sealed as far
// as the salvaged chain goes: with its record as begun (raw), or, if that
// was not found, one made from its recording's header.
func (p *rebuildPlan) sealBegun(ctx context.Context, id string, s *session, raw []byte, blobs Blobs) {
	var rec Session
	why := "its seal was not found in the damaged index (lost, or the bastion stopped during the session): sealed as found at the rebuild"
	if raw == nil || json.Unmarshal(raw, &rec) != nil || rec.ID != id {
		rec = fromHeader(ctx, blobs, id, s.path)
		why += "; its index entry was not found either, and was made from the recording's header"
	}
	p.seal(ctx, rec, blobs, why)
}

// seal plans rec's seal with its recording's digest as found.
func (p *rebuildPlan) seal(ctx context.Context, rec Session, blobs Blobs, why string) {
	rec.Status, rec.SHA256, rec.Size = StatusRebuilt, "", 0
	lost := ""
	switch sum, size, err := Digest(ctx, blobs, rec.Path); {
	case err == nil:
		rec.SHA256, rec.Size = sum, size
	case errors.Is(err, fs.ErrNotExist):
		lost = "recording missing when the index was rebuilt"
	default:
		lost = "recording unreadable when the index was rebuilt: " + err.Error()
	}
	p.seals = append(p.seals, rebuiltSeal{rec: rec, lost: lost, rebuilt: why})
}

// fromHeader makes the index entry of recording name (session id) from
// what its header says; as little as the ID and path when it says
// nothing.
func fromHeader(ctx context.Context, blobs Blobs, id, name string) Session {
	rec := Session{ID: id, Path: name}
	r, err := blobs.Open(ctx, name)
	if err != nil {
		return rec
	}
	defer r.Close()
	cast, err := NewReader(r)
	if err != nil {
		return rec
	}
	h := cast.Header
	if h.Timestamp > 0 {
		rec.Start = time.Unix(h.Timestamp, 0).UTC()
	}
	if m := h.Postern; m != nil {
		rec.Session, rec.Identity, rec.Login, rec.Target, rec.Client, rec.Command = m.Session, m.Identity, m.Login, m.Target, m.Client, m.Command
		rec.Kind = m.Kind
	}
	return rec
}

// write writes the rebuilt index to the new file at file, in one
// transaction, and returns its chain's head.
func (p *rebuildPlan) write(file string, key ed25519.PrivateKey, now time.Time, note RebuildNote) (ChainHead, error) {
	db, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return ChainHead{}, err
	}
	defer db.Close()
	s := &Local{db: db, key: key, now: func() time.Time { return now }}
	var head ChainHead
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketChain, bucketCerts} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for i, raw := range p.sv.kept {
			if err := tx.Bucket(bucketChain).Put(seqKey(uint64(i)), raw); err != nil {
				return err
			}
		}
		for pl, rec := range p.puts {
			b, err := tx.CreateBucketIfNotExists([]byte(pl.bucket))
			if err == nil {
				err = b.Put([]byte(pl.key), rec)
			}
			if err != nil {
				return err
			}
		}
		if head, err = s.appendChain(tx, ChainEntry{Kind: KindRebuild, Rebuild: &note}); err != nil {
			return err
		}
		for _, raw := range p.sv.carried {
			if head, err = s.appendChain(tx, ChainEntry{Kind: KindCarried, Original: string(p.original(raw))}); err != nil {
				return err
			}
		}
		for _, r := range p.seals {
			if head, err = s.sealRebuilt(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ChainHead{}, err
	}
	return head, db.Close()
}

// sealRebuilt stores r's record and seals it, saying why the rebuild did.
func (s *Local) sealRebuilt(tx *bolt.Tx, r rebuiltSeal) (ChainHead, error) {
	data, err := json.Marshal(r.rec)
	if err != nil {
		return ChainHead{}, err
	}
	if err := tx.Bucket(bucketSessions).Put([]byte(r.rec.ID), data); err != nil {
		return ChainHead{}, err
	}
	return s.appendChain(tx, ChainEntry{
		Kind: KindRecording, Recording: r.rec.ID, Path: r.rec.Path, SHA256: r.rec.SHA256, Size: r.rec.Size,
		Record: recordDigest(data), Lost: r.lost, Rebuilt: r.rebuilt,
	})
}
