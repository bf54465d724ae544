package recorder

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
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
	// Approvals counts the approval requests sealed in the chain.
	Approvals int `json:"approvals"`
	// Refusals counts the refused certificate requests sealed in the
	// chain.
	Refusals int `json:"refusals"`
	// Revocations counts the certificate revocations sealed in it.
	Revocations int `json:"revocations"`
	// Head is the newest chain entry, nil for an empty chain: record it
	// away from the bastion and pass it back as an anchor later.
	Head     *ChainHead `json:"head"`
	Problems []Problem  `json:"problems"`
	// Active are the recordings begun in the chain and not sealed yet:
	// still being written, or interrupted until the bastion's next
	// start seals them. Not problems, but not verified either.
	Active []Active `json:"active"`
	// Rebuilds are the index rebuilds the chain records, each with
	// what it could not restore: gaps in the evidence, stated rather
	// than hidden (see RebuildIndex).
	Rebuilds []Rebuild `json:"rebuilds,omitempty"`
}

// Active names a recording that Verify found begun and not yet sealed.
type Active struct {
	ID   string `json:"id"`
	Path string `json:"path"`
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
// recording against its digest and index record, every issued
// certificate's record, every approval request's and revocation's record,
// every refused certificate request's record, and the recordings named in
// files (a listing taken before snap) for ones nobody sealed. It only reads: blobs opens the
// recordings, and no private key is needed.
func Verify(ctx context.Context, snap *Snapshot, files []string, blobs Blobs, o VerifyOptions) (Report, error) {
	rep := Report{Problems: []Problem{}, Active: []Active{}}
	if len(o.Key) != ed25519.PublicKeySize {
		return rep, errors.New("verify needs the audit public key")
	}
	v := &verifier{ctx: ctx, snap: snap, blobs: blobs, rep: &rep, begun: map[string]ChainEntry{},
		sealed: map[string]ChainEntry{}, pruned: map[string]bool{}, certs: map[uint64]ChainEntry{}, requests: map[string]ChainEntry{},
		refused: map[string]ChainEntry{}, revoked: map[string]ChainEntry{}}
	v.chain(o.Key)
	v.anchors(o.Anchors)
	referenced := v.recordings()
	v.certificates()
	v.approvals()
	v.refusals()
	v.revocations()
	v.unsealed(referenced)
	v.added(files, referenced)
	v.gaps()
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	return rep, ctx.Err()
}

// verifier holds one Verify's state.
type verifier struct {
	ctx    context.Context
	snap   *Snapshot
	blobs  Blobs
	rep    *Report
	begun  map[string]ChainEntry // begin entry per session
	sealed map[string]ChainEntry // latest seal per recording
	pruned map[string]bool
	certs  map[uint64]ChainEntry // latest seal per certificate serial
	// requests holds the newest signed seal per approval request.
	requests map[string]ChainEntry
	// refused holds the seal per refused certificate request.
	refused map[string]ChainEntry
	// revoked holds the newest signed seal per revocation key.
	revoked map[string]ChainEntry
	// anyBegin says whether the chain so far (while chain runs) has a
	// begin entry signed with the key: the seals before the first were
	// written before Begin sealed, and need none.
	anyBegin bool
}

func (v *verifier) add(p Problem) { v.rep.Problems = append(v.rep.Problems, p) }

// chain checks links, sequence and signatures, and collects the seals.
func (v *verifier) chain(pub ed25519.PublicKey) {
	prevHash := ""
	for i, ent := range v.snap.Chain {
		raw := ent.Value
		var e ChainEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			v.add(Problem{ID: fmt.Sprintf("chain entry %d", i), Reason: "unreadable", Detail: err.Error()})
			continue
		}
		id := fmt.Sprintf("chain entry %d", e.Seq)
		if e.Seq != uint64(i) || len(ent.Key) != 8 || binary.BigEndian.Uint64(ent.Key) != e.Seq {
			v.add(Problem{ID: id, Reason: "chain out of sequence", Detail: fmt.Sprintf("expected seq %d at key %d", i, i)})
		}
		if e.Prev != prevHash {
			v.add(Problem{ID: id, Reason: "chain broken", Detail: "does not link to the previous entry"})
		}
		prevHash = recordDigest(raw)
		_, signed := verifyEntry(pub, raw)
		if !signed {
			v.add(Problem{ID: id, Reason: "bad signature", Detail: "entry edited or not signed by this bastion's audit key"})
		}
		v.entry(v.rebuilt(pub, e, signed))
	}
	v.rep.ChainEntries = len(v.snap.Chain)
	if n := len(v.snap.Chain); n > 0 {
		h := headOf(uint64(n-1), v.snap.Chain[n-1].Value)
		v.rep.Head = &h
	}
}

// entry collects what chain entry e seals, and reports a second seal of
// the same thing; signed says whether e's signature verifies.
func (v *verifier) entry(e ChainEntry, signed bool) {
	switch e.Kind {
	case KindBegin:
		// A session begins once, before it is sealed.
		if first, ok := v.begun[e.Recording]; ok {
			v.add(Problem{Path: e.Path, ID: e.Recording, Reason: "begun twice", Detail: fmt.Sprintf("chain entries %d and %d", first.Seq, e.Seq)})
		} else if seal, ok := v.sealed[e.Recording]; ok {
			v.add(Problem{Path: e.Path, ID: e.Recording, Reason: "begun after its seal", Detail: fmt.Sprintf("chain entries %d and %d", seal.Seq, e.Seq)})
		}
		if !signed {
			// Reported as a bad signature, and begins
			// nothing, as for MarkInterrupted: anyone can
			// write (or edit the kind of) an entry, and the
			// old format must not be claimed, or denied, by
			// the chain's editable parts.
			break
		}
		v.begun[e.Recording] = e
		v.anyBegin = true
	case KindRecording:
		// A session is sealed once, when it ends (or at the next
		// start, if the bastion died). A second seal re-signs a
		// recording after the fact: with the audit key, someone
		// could seal an edited file anew.
		if first, ok := v.sealed[e.Recording]; ok {
			v.add(Problem{Path: e.Path, ID: e.Recording, Reason: "sealed twice", Detail: fmt.Sprintf("chain entries %d and %d", first.Seq, e.Seq)})
		}
		// Once a chain has begin entries, every session the
		// bastion seals was begun: MarkInterrupted seals no
		// other. A seal from before is old data, taken as such
		// only when signed.
		if _, ok := v.begun[e.Recording]; !ok && (v.anyBegin || !signed) {
			v.add(Problem{Path: e.Path, ID: e.Recording, Reason: "sealed without a begin entry", Detail: fmt.Sprintf("chain entry %d", e.Seq)})
		}
		v.sealed[e.Recording] = e
		delete(v.pruned, e.Recording)
	case KindPrune:
		for _, r := range e.Pruned {
			v.pruned[r] = true
			delete(v.sealed, r)
			delete(v.begun, r)
		}
	case KindCertificate:
		// A certificate is issued, and sealed, once: a second
		// seal re-signs an edited record after the fact.
		if first, ok := v.certs[e.Serial]; ok {
			v.add(Problem{ID: "certificate " + formatSerial(e.Serial), Reason: "sealed twice", Detail: fmt.Sprintf("chain entries %d and %d", first.Seq, e.Seq)})
		}
		v.certs[e.Serial] = e
	case KindApproval:
		// Sealed at every change; the newest signed seal is the one
		// the record must match. An unsigned one seals nothing.
		if signed {
			v.requests[e.Request] = e
		}
	case KindCertRefused:
		// A refusal is sealed once, when it happens.
		if first, ok := v.refused[e.Refusal]; ok {
			v.add(Problem{ID: "refusal " + e.Refusal, Reason: "sealed twice", Detail: fmt.Sprintf("chain entries %d and %d", first.Seq, e.Seq)})
		}
		v.refused[e.Refusal] = e
	case KindRevocation:
		if signed { // an unsigned one seals nothing
			v.revocation(e)
		}
	}
}

func (v *verifier) anchors(anchors []ChainHead) {
	chain := v.snap.Chain
	for _, a := range anchors {
		id := fmt.Sprintf("chain entry %d", a.Seq)
		if a.Seq >= uint64(len(chain)) {
			v.add(Problem{ID: id, Reason: "chain truncated", Detail: fmt.Sprintf("anchored entry is gone; the chain has %d entries", len(chain))})
			continue
		}
		if recordDigest(chain[a.Seq].Value) != a.SHA256 {
			v.add(Problem{ID: id, Reason: "chain rewritten", Detail: "entry differs from its anchor " + a.String()})
		}
	}
}

// recordings checks each sealed recording's index record and file, and
// returns the names the index and chain refer to.
func (v *verifier) recordings() map[string]bool {
	referenced := map[string]bool{}
	ids := make([]string, 0, len(v.sealed))
	for id := range v.sealed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := v.sealed[id]
		v.rep.Recordings++
		referenced[e.Path] = true
		rec, ok := v.snap.Sessions[id]
		switch {
		case !ok:
			v.add(Problem{Path: e.Path, ID: id, Reason: "index entry deleted"})
		case recordDigest(rec) != e.Record:
			v.add(Problem{Path: e.Path, ID: id, Reason: "index entry edited"})
		}
		v.file(id, e)
	}
	return referenced
}

// file checks one sealed recording against its seal. The blob store checks
// the chain's name before it reads: an entry signed with a stolen audit key
// could name any file.
func (v *verifier) file(id string, e ChainEntry) {
	digest, size, err := Digest(v.ctx, v.blobs, e.Path)
	if e.Lost != "" {
		// Signed, so it stays reported as long as the seal is kept.
		v.add(Problem{Path: e.Path, ID: id, Reason: "recording lost", Detail: e.Lost})
	}
	var pe *PathError
	switch {
	case errors.As(err, &pe):
		v.add(pathProblem(id, e.Path, err))
	case e.SHA256 == "" && errors.Is(err, fs.ErrNotExist):
		// Sealed without a file (it could not be created, or
		// the bastion died first), and there still is none.
	case errors.Is(err, fs.ErrNotExist):
		v.add(Problem{Path: e.Path, ID: id, Reason: "deleted"})
	case err != nil:
		v.add(Problem{Path: e.Path, ID: id, Reason: "unreadable", Detail: err.Error()})
	case e.SHA256 == "":
		// Sealed when no file existed: any file there now was
		// put there later.
		v.add(Problem{Path: e.Path, ID: id, Reason: "added", Detail: "sealed without a file"})
	case size < e.Size:
		v.add(Problem{Path: e.Path, ID: id, Reason: "truncated", Detail: fmt.Sprintf("%d bytes, sealed with %d", size, e.Size)})
	case digest != e.SHA256:
		v.add(Problem{Path: e.Path, ID: id, Reason: "modified", Detail: "content does not match the sealed SHA-256"})
	}
}

// unsealed checks index entries the chain does not seal: in progress, as
// their begin entry says, or evidence of an edit; and sessions begun and
// neither sealed nor pruned, whose index entry must still be there.
func (v *verifier) unsealed(referenced map[string]bool) {
	for _, id := range slices.Sorted(maps.Keys(v.begun)) {
		_, sealed := v.sealed[id]
		if _, ok := v.snap.Sessions[id]; !ok && !sealed {
			e := v.begun[id]
			referenced[e.Path] = true
			v.add(Problem{Path: e.Path, ID: id, Reason: "index entry deleted", Detail: "begun and never sealed"})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(v.snap.Sessions)) {
		raw := v.snap.Sessions[id]
		if _, ok := v.sealed[id]; ok {
			continue
		}
		var rec Session
		json.Unmarshal(raw, &rec)
		if err := v.blobs.Check(v.ctx, rec.Path); err != nil {
			v.add(pathProblem(id, rec.Path, err)) // what play and prune would refuse
		}
		if rec.Status != StatusActive {
			referenced[rec.Path] = true
			v.add(Problem{Path: rec.Path, ID: id, Reason: "index entry not sealed in the audit chain"})
			continue
		}
		// In progress (or interrupted, until the bastion restarts),
		// if the bastion began it: otherwise its file is no
		// session's, and is reported as added too. Even in a chain
		// of the old format, which MarkInterrupted does not seal
		// either: whether a chain is old cannot be told from it.
		begin, begun := v.begun[id]
		if !begun {
			v.add(Problem{Path: rec.Path, ID: id, Reason: "index entry not begun in the audit chain"})
			continue
		}
		referenced[rec.Path] = true
		if begin.Record != recordDigest(raw) {
			v.add(Problem{Path: rec.Path, ID: id, Reason: "index entry edited", Detail: "differs from its begin entry"})
			continue
		}
		v.rep.Active = append(v.rep.Active, Active{ID: id, Path: rec.Path})
	}
}

// added reports files nobody sealed. A file gone by now (pruned since the
// listing) is neither.
func (v *verifier) added(files []string, referenced map[string]bool) {
	for _, name := range files {
		if referenced[name] {
			continue
		}
		if err := v.blobs.Check(v.ctx, name); err == nil {
			if r, err := v.blobs.Open(v.ctx, name); errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err == nil {
				r.Close()
			}
		}
		id := strings.TrimSuffix(path.Base(name), ".cast")
		if v.pruned[id] {
			v.add(Problem{Path: name, ID: id, Reason: "pruned but still present"})
			continue
		}
		v.add(Problem{Path: name, Reason: "added", Detail: "not in the index or the audit chain"})
	}
}
