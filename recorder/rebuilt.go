package recorder

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Chain entry kinds an index rebuild writes (see RebuildIndex).
const (
	// KindRebuild states what a rebuild found in the damaged index and
	// what it could not restore (its Rebuild note). The entries before
	// it are the damaged chain's own, unbroken from entry 0.
	KindRebuild = "rebuild"
	// KindCarried holds, in Original, an entry of the damaged chain that
	// was found intact (signed with the audit key) but after a missing
	// one, so that it cannot stand where it stood: it is carried over as
	// stored, and Verify checks it, and what it seals, as the original.
	KindCarried = "carried"
)

// StatusRebuilt is the status of a session an index rebuild sealed
// itself: its seal was not found in the damaged index (lost with it, or
// the bastion stopped during the session), so how it ended is unknown;
// its recording is sealed as found at the rebuild.
const StatusRebuilt = "rebuilt"

// RebuildNote is what a KindRebuild entry states.
type RebuildNote struct {
	// File is the damaged index as the rebuild left it, relative to
	// the data directory (postern.db.corrupt-TIME); empty when there was
	// no index file.
	File   string `json:"file,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size"`
	// Kept is how many entries of the damaged chain precede this one,
	// as they were (entries 0 to Kept-1).
	Kept uint64 `json:"kept"`
	// Carried is how many entries of the damaged chain follow this
	// one, carried over (KindCarried).
	Carried int `json:"carried"`
	// Newest is the newest sequence number found, -1 for none: any
	// entries after it are unknown.
	Newest int64 `json:"newest"`
	// Missing are the sequence numbers (and ranges, "5-9") up to Newest
	// that were not found.
	Missing []string `json:"missing,omitempty"`
	// Dropped counts signed entries left out because another entry of
	// the same sequence number was kept (a write that never committed).
	Dropped int `json:"dropped,omitempty"`
	// RecordsLost names the records whose seal survived but whose
	// content was not found: "session ID", "certificate SERIAL",
	// "approval ID", "refusal ID", or "record of chain entry SEQ (kind
	// K)" for a kind this version does not place.
	RecordsLost []string `json:"records_lost,omitempty"`
	// Sealed are the recordings the rebuild sealed itself, as found
	// (their entries say why, in Rebuilt): nothing vouches for their
	// content before the rebuild.
	Sealed []string `json:"sealed,omitempty"`
}

// Rebuild is one index rebuild as Verify found it in the chain.
type Rebuild struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	RebuildNote
}

// String says in one line what the rebuild restored and what not.
func (r Rebuild) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "index rebuilt %s (chain entry %d)", r.Time.UTC().Format(time.RFC3339), r.Seq)
	if r.File != "" {
		fmt.Fprintf(&b, " from the damaged %s", r.File)
	} else {
		b.WriteString(" with no index file")
	}
	fmt.Fprintf(&b, ": %d earlier entries kept as they were, %d carried over", r.Kept, r.Carried)
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "; entries never found: %s", strings.Join(r.Missing, ", "))
	}
	b.WriteString("; entries after the newest found, if any, are unknown")
	if len(r.RecordsLost) > 0 {
		fmt.Fprintf(&b, "; records lost: %s", strings.Join(r.RecordsLost, ", "))
	}
	if len(r.Sealed) > 0 {
		fmt.Fprintf(&b, "; recordings sealed as found at the rebuild (not vouched for before it): %s", strings.Join(r.Sealed, ", "))
	}
	return b.String()
}

// rebuilt lets Verify read what a rebuild wrote: it notes a KindRebuild
// entry, and returns the entry a KindCarried one carries (and whether it
// is signed with pub) in its place. A seal without a begin entry is
// accepted after a rebuild when the rebuild wrote it (Rebuilt) or carried
// it: the begin entry may be among those lost, which the rebuild's note
// states. Any other entry is returned as it is.
func (v *verifier) rebuilt(pub ed25519.PublicKey, e ChainEntry, signed bool) (ChainEntry, bool) {
	after := len(v.rep.Rebuilds) > 0
	switch {
	case e.Kind == KindRebuild && signed && e.Rebuild != nil:
		v.rep.Rebuilds = append(v.rep.Rebuilds, Rebuild{Seq: e.Seq, Time: e.Time, RebuildNote: *e.Rebuild})
	case e.Kind == KindCarried:
		id := fmt.Sprintf("chain entry %d", e.Seq)
		orig, ok := verifyEntry(pub, []byte(e.Original))
		if !ok {
			v.add(Problem{ID: id, Reason: "bad signature", Detail: "the entry it carries over is not signed by this bastion's audit key"})
		}
		if !after {
			v.add(Problem{ID: id, Reason: "carried without a rebuild", Detail: "no rebuild entry before it"})
		}
		if orig.Kind == KindRebuild && signed && ok && orig.Rebuild != nil {
			// A rebuild of a rebuilt index carries the first one's note.
			v.rep.Rebuilds = append(v.rep.Rebuilds, Rebuild{Seq: orig.Seq, Time: orig.Time, RebuildNote: *orig.Rebuild})
		}
		v.exempt(orig, after && signed && ok)
		return orig, signed && ok
	case e.Kind == KindRecording && e.Rebuilt != "":
		v.exempt(e, after && signed)
	}
	return e, signed
}

// carriedOriginal returns the entry raw carries over when it is a
// KindCarried entry (its signatures are for the caller to check), and raw
// itself otherwise.
func carriedOriginal(raw []byte) []byte {
	if !bytes.Contains(raw, []byte(`"kind":"carried"`)) {
		return raw
	}
	if e := decodeEntry(raw); e.Kind == KindCarried {
		return []byte(e.Original)
	}
	return raw
}

// exempt lets seal e stand without a begin entry, when ok.
func (v *verifier) exempt(e ChainEntry, ok bool) {
	if _, begun := v.begun[e.Recording]; ok && e.Kind == KindRecording && !begun {
		v.begun[e.Recording] = e
	}
}

// lostReasons are the problems a rebuild's RecordsLost can account for,
// and how the record is named there.
var lostReasons = map[string]func(Problem) string{
	"index entry deleted":        func(p Problem) string { return "session " + p.ID },
	"certificate record deleted": func(p Problem) string { return p.ID },
	"approval record deleted":    func(p Problem) string { return p.ID },
	"refusal record deleted":     func(p Problem) string { return p.ID },
	"revocation record deleted":  func(p Problem) string { return p.ID },
}

// gaps takes out of the problems the records a rebuild found lost: they
// are not missing since, and the report's Rebuilds state them.
func (v *verifier) gaps() {
	var lost []string
	for _, r := range v.rep.Rebuilds {
		lost = append(lost, r.RecordsLost...)
	}
	if len(lost) == 0 {
		return
	}
	v.rep.Problems = slices.DeleteFunc(v.rep.Problems, func(p Problem) bool {
		name, ok := lostReasons[p.Reason]
		return ok && p.Detail == "" && slices.Contains(lost, name(p))
	})
}
