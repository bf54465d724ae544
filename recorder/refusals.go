package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// KindCertRefused seals a refused certificate request (a login the
// bastion turned down): the record stored under its ID.
const KindCertRefused = "cert_refused"

var bucketRefusals = []byte("cert_refusals")

// maxRefusalID bounds the key a refusal is stored under.
const maxRefusalID = 64

// CertRefusal is the record of a certificate request the bastion refused.
// Its text fields come from the bastion, never verbatim from the request:
// the caller states the reason in its own words.
type CertRefusal struct {
	// ID names the refusal; RefuseCert sets a fresh, time-ordered one
	// when it is empty.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Client is the requester's address.
	Client string `json:"client"`
	// Identity is who the request's token names, when it was verified
	// far enough to say (its signature checked); empty otherwise.
	Identity string `json:"identity,omitempty"`
	// Subject is the provider's subject (sub) of the account whose
	// token it was, when its signature verified; empty otherwise.
	Subject string `json:"subject,omitempty"`
	// Key is the SHA256 fingerprint of the key to be certified, when it
	// parsed.
	Key string `json:"key,omitempty"`
	// TTL is the validity asked for, when the request named one.
	TTL string `json:"ttl,omitempty"`
	// Status is the HTTP status the requester got (400, 401, 403, 413,
	// 429, 500, 503).
	Status int `json:"status"`
	// Reason says why, for an auditor.
	Reason string `json:"reason"`
	// Via names what refused it, like IssuedCert.IssuedBy.
	Via string `json:"via"`
}

// RefusalIndex keeps refused certificate requests, each stored and sealed
// in the audit chain in one transaction. *Local implements it.
type RefusalIndex interface {
	// RefuseCert stores r (with ID set, if it was empty) and seals it in
	// the audit chain. It returns the stored record and the chain's new
	// head.
	RefuseCert(ctx context.Context, r CertRefusal) (CertRefusal, ChainHead, error)
}

var _ RefusalIndex = (*Local)(nil)

// RefuseCert implements RefusalIndex. Concurrent refusals share a
// transaction (see groupCommit).
func (s *Local) RefuseCert(ctx context.Context, r CertRefusal) (CertRefusal, ChainHead, error) {
	if r.ID == "" {
		r.ID = ulid.Make().String()
	}
	if len(r.ID) > maxRefusalID {
		return CertRefusal{}, ChainHead{}, fmt.Errorf("record refused certificate request: ID %q too long", r.ID)
	}
	if r.Time.IsZero() {
		r.Time = s.now().UTC()
	}
	data, err := json.Marshal(r)
	if err != nil {
		return CertRefusal{}, ChainHead{}, err
	}
	var head ChainHead
	err = s.batch(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRefusals)
		if err != nil {
			return err
		}
		if b.Get([]byte(r.ID)) != nil {
			return fmt.Errorf("refusal %s already recorded", r.ID)
		}
		if err := b.Put([]byte(r.ID), data); err != nil {
			return err
		}
		head, err = s.appendChain(tx, ChainEntry{Kind: KindCertRefused, Refusal: r.ID, Record: recordDigest(data)})
		return err
	})
	if err != nil {
		return CertRefusal{}, ChainHead{}, fmt.Errorf("record refused certificate request: %w", err)
	}
	return r, head, nil
}

// Refusals lists the refused certificate requests recorded, in ID order
// (the order they were refused in).
func (s *Local) Refusals(ctx context.Context) ([]CertRefusal, error) {
	var out []CertRefusal
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRefusals)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r CertRefusal
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("refused certificate request %q: %w", bytes.ToValidUTF8(k, []byte("?")), err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// snapshotRefusals copies the refusal records into snap.
func snapshotRefusals(tx *bolt.Tx, snap *Snapshot) error {
	b := tx.Bucket(bucketRefusals)
	if b == nil {
		return nil
	}
	snap.Refusals = map[string][]byte{}
	return b.ForEach(func(k, v []byte) error {
		snap.Refusals[string(k)] = bytes.Clone(v)
		return nil
	})
}

// refusals checks each refusal's record against its seal, and reports
// records nobody sealed.
func (v *verifier) refusals() {
	for _, id := range slices.Sorted(maps.Keys(v.refused)) {
		e := v.refused[id]
		rec, ok := v.snap.Refusals[id]
		switch {
		case !ok:
			v.add(Problem{ID: "refusal " + id, Reason: "refusal record deleted"})
		case recordDigest(rec) != e.Record:
			v.add(Problem{ID: "refusal " + id, Reason: "refusal record edited", Detail: "differs from chain entry " + fmt.Sprint(e.Seq)})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(v.snap.Refusals)) {
		if _, ok := v.refused[id]; !ok {
			v.add(Problem{ID: "refusal " + id, Reason: "refusal record not sealed in the audit chain"})
		}
	}
	v.rep.Refusals = len(v.refused)
}
