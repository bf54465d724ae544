package recorder

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// KindRevocation seals a certificate revocation as stored: by serial
// (ChainEntry.Serial) or by key ID (ChainEntry.KeyID). A revocation is
// never undone, as in an OpenSSH KRL.
const KindRevocation = "revocation"

var bucketRevocations = []byte("revocations")

// MaxRevokedKeyID caps the key ID a revocation names; MaxRevocationReason
// its reason.
const (
	MaxRevokedKeyID     = 1024
	MaxRevocationReason = 1024
)

// Revocation is the index's record of one revocation: of certificate
// serial Serial, or of every certificate whose key ID is KeyID (exactly
// one is set).
type Revocation struct {
	Serial    uint64    `json:"serial,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	Reason    string    `json:"reason"`
	RevokedAt time.Time `json:"revoked_at"`
	RevokedBy string    `json:"revoked_by"` // the OS user who ran ca revoke, as the admin socket's peer or the process says
	// Note, never stored, is set by Revocations on a revocation whose
	// record is not as the audit chain sealed it (deleted, edited or
	// never sealed): it is in force all the same (fail closed), and
	// verify reports it.
	Note string `json:"note,omitempty"`
}

// Key is the index key r is stored under: "serial/N" or "key-id/ID".
func (r Revocation) Key() string {
	if r.KeyID != "" {
		return "key-id/" + r.KeyID
	}
	return "serial/" + strconv.FormatUint(r.Serial, 10)
}

// check reports whether r may be stored.
func (r Revocation) check() error {
	if err := r.checkTarget(); err != nil {
		return err
	}
	if strings.TrimSpace(r.Reason) == "" || len(r.Reason) > MaxRevocationReason {
		return fmt.Errorf("a revocation needs a reason of at most %d bytes", MaxRevocationReason)
	}
	return nil
}

// checkTarget reports whether r names what it revokes as it must.
func (r Revocation) checkTarget() error {
	switch {
	case (r.Serial == 0) == (r.KeyID == ""):
		return errors.New("a revocation names a serial (not 0) or a key ID, not both")
	case len(r.KeyID) > MaxRevokedKeyID || !utf8.ValidString(r.KeyID):
		return fmt.Errorf("a revoked key ID is UTF-8 of at most %d bytes", MaxRevokedKeyID)
	}
	return nil
}

// fromKey is the revocation index key k stores, without its record.
func fromKey(k string) (Revocation, bool) {
	if id, ok := strings.CutPrefix(k, "key-id/"); ok && id != "" {
		return Revocation{KeyID: id}, true
	}
	if s, ok := strings.CutPrefix(k, "serial/"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		return Revocation{Serial: n}, err == nil && n != 0 && strconv.FormatUint(n, 10) == s
	}
	return Revocation{}, false
}

// RevocationIndex keeps certificate revocations, each stored and sealed in
// the audit chain in one transaction. *Local implements it, and so does
// the admin socket's client (which has the running server apply it).
type RevocationIndex interface {
	// Revoke stores r and seals it, unless what it revokes was revoked
	// already: then it returns that first revocation and false.
	Revoke(ctx context.Context, r Revocation) (Revocation, bool, error)
	// Revocations returns every revocation in force, oldest first: each
	// record stored, and each the chain seals whose record is gone,
	// the latter two with a Note (a revocation is honoured whatever
	// became of its record; verify reports what did).
	Revocations(ctx context.Context) ([]Revocation, error)
}

var _ RevocationIndex = (*Local)(nil)

// Revoke implements RevocationIndex. RevokedAt is the store's clock.
func (s *Local) Revoke(ctx context.Context, r Revocation) (Revocation, bool, error) {
	r.Note = ""
	if err := r.check(); err != nil {
		return Revocation{}, false, err
	}
	r.RevokedAt = s.now().UTC()
	fresh := true
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRevocations)
		if err != nil {
			return err
		}
		if old := b.Get([]byte(r.Key())); old != nil {
			fresh = false
			var first Revocation
			if json.Unmarshal(old, &first) != nil || first.Key() != r.Key() {
				first = Revocation{Serial: r.Serial, KeyID: r.KeyID, Note: "record unreadable or edited"}
			}
			r = first
			return nil
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(r.Key()), data); err != nil {
			return err
		}
		_, err = s.appendChain(tx, ChainEntry{Kind: KindRevocation, Serial: r.Serial, KeyID: r.KeyID, Record: recordDigest(data)})
		return err
	})
	if err != nil {
		return Revocation{}, false, fmt.Errorf("record revocation of %s: %w", r.Key(), err)
	}
	return r, fresh, nil
}

// Revocations implements RevocationIndex. It reads the whole chain for
// the seals: a cost paid when the bastion starts and when an admin lists
// them.
func (s *Local) Revocations(ctx context.Context) ([]Revocation, error) {
	var out []Revocation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		seals, err := s.revocationSeals(tx)
		if err != nil {
			return err
		}
		if b := tx.Bucket(bucketRevocations); b != nil {
			err = b.ForEach(func(k, v []byte) error {
				r, ok := storedRevocation(string(k), v, seals[string(k)])
				if !ok {
					s.log.Warn("revocation record under a key that names no certificate: ignored (postern verify reports it)", "key", string(bytes.ToValidUTF8(k, []byte("?"))))
					return nil
				}
				delete(seals, string(k))
				out = append(out, r)
				return nil
			})
		}
		for _, k := range slices.Sorted(maps.Keys(seals)) {
			e := seals[k]
			out = append(out, Revocation{Serial: e.Serial, KeyID: e.KeyID, RevokedAt: e.Time,
				Note: "record deleted from the index; revoked as audit chain entry " + strconv.FormatUint(e.Seq, 10) + " says"})
		}
		return err
	})
	slices.SortStableFunc(out, func(a, b Revocation) int {
		return cmp.Or(a.RevokedAt.Compare(b.RevokedAt), strings.Compare(a.Key(), b.Key()))
	})
	return out, err
}

// storedRevocation is the revocation stored as v under key k, which seal
// (the zero entry if none) sealed; false if k names no certificate. What
// is revoked is the key's to say, whatever the record says.
func storedRevocation(k string, v []byte, seal ChainEntry) (Revocation, bool) {
	r, ok := fromKey(k)
	if !ok {
		return r, false
	}
	var rec Revocation
	switch {
	case json.Unmarshal(v, &rec) != nil || rec.Key() != k:
		r.Note = "record unreadable or edited: it names another certificate than its key"
		return r, true
	case seal.Record == "":
		rec.Note = "record not sealed in the audit chain"
	case seal.Record != recordDigest(v):
		rec.Note = "record edited since audit chain entry " + strconv.FormatUint(seal.Seq, 10) + " sealed it"
	}
	rec.Serial, rec.KeyID = r.Serial, r.KeyID
	return rec, true
}

// revocationSeals returns the newest revocation entry per revocation key
// among the chain entries signed with the store's key.
func (s *Local) revocationSeals(tx *bolt.Tx) (map[string]ChainEntry, error) {
	pub := s.PublicKey()
	if pub == nil {
		return nil, errors.New("no audit key: cannot check revocations against the audit chain")
	}
	seals := map[string]ChainEntry{}
	err := tx.Bucket(bucketChain).ForEach(func(_, v []byte) error {
		if bytes.Contains(v, []byte(`"kind":"carried"`)) {
			if c, ok := verifyEntry(pub, v); ok && c.Kind == KindCarried {
				v = []byte(c.Original) // carried over by an index rebuild
			}
		}
		if !bytes.Contains(v, []byte(`"kind":"revocation"`)) {
			return nil // not one: skip the signature check
		}
		if e, ok := verifyEntry(pub, v); ok && e.Kind == KindRevocation {
			if r := (Revocation{Serial: e.Serial, KeyID: e.KeyID}); r.checkTarget() == nil {
				seals[r.Key()] = e
			}
		}
		return nil
	})
	return seals, err
}

// snapshotRevocations copies the revocation records into snap.
func snapshotRevocations(tx *bolt.Tx, snap *Snapshot) error {
	b := tx.Bucket(bucketRevocations)
	if b == nil {
		return nil
	}
	snap.Revocations = map[string][]byte{}
	return b.ForEach(func(k, v []byte) error {
		snap.Revocations[string(k)] = bytes.Clone(v)
		return nil
	})
}

// revocation collects chain entry e, a signed revocation seal, and
// reports a second seal of the same revocation: the store writes one, and
// another means the first record went missing.
func (v *verifier) revocation(e ChainEntry) {
	k := (Revocation{Serial: e.Serial, KeyID: e.KeyID}).Key()
	if first, ok := v.revoked[k]; ok {
		v.add(Problem{ID: "revocation " + k, Reason: "revoked twice", Detail: fmt.Sprintf("chain entries %d and %d", first.Seq, e.Seq)})
	}
	v.revoked[k] = e
}

// revocations checks each revocation record against its newest seal, and
// reports records nobody sealed.
func (v *verifier) revocations() {
	for _, k := range slices.Sorted(maps.Keys(v.revoked)) {
		e := v.revoked[k]
		rec, ok := v.snap.Revocations[k]
		switch {
		case !ok:
			v.add(Problem{ID: "revocation " + k, Reason: "revocation record deleted"})
		case recordDigest(rec) != e.Record:
			v.add(Problem{ID: "revocation " + k, Reason: "revocation record edited", Detail: "differs from chain entry " + strconv.FormatUint(e.Seq, 10)})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(v.snap.Revocations)) {
		if _, ok := v.revoked[k]; !ok {
			v.add(Problem{ID: "revocation " + k, Reason: "revocation record not sealed in the audit chain"})
		}
	}
	v.rep.Revocations = len(v.revoked)
}
