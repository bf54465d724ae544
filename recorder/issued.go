package recorder

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/certs"
)

// IssueCert implements Index: each serial is a random 63-bit number (top
// bit clear, for consumers that read serials as int64), never zero, and
// not yet in the register. It does not depend on the index file alone: an
// older copy of postern.db put back (a restore, a rollback) does not make
// the serials issued since come round again, as a counter kept in the file
// would.
func (s *Local) IssueCert(ctx context.Context, c IssuedCert) (IssuedCert, error) {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCerts)
		serial, err := newSerial(b)
		if err != nil {
			return err
		}
		c.Serial = serial
		data, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(serial), data); err != nil {
			return err
		}
		_, err = s.appendChain(tx, ChainEntry{Kind: KindCertificate, Serial: serial, Record: recordDigest(data)})
		return err
	})
	if err != nil {
		return IssuedCert{}, fmt.Errorf("record issued certificate: %w", err)
	}
	return c, nil
}

// newSerial draws a serial (certs.Serial) not in register b. A collision
// has odds of about n in 2^63; a few draws make a failure beyond practical
// reach.
func newSerial(b *bolt.Bucket) (uint64, error) {
	for range 8 {
		serial, err := certs.Serial()
		if err != nil {
			return 0, err
		}
		if b.Get(seqKey(serial)) == nil {
			return serial, nil
		}
	}
	return 0, errors.New("no unused certificate serial found")
}

// Issued implements Index, in order of issue (IssuedAt, then serial).
// Only records stored under their own serial are listed, as verify
// accepts them: one under another key, or naming another serial than its
// key, is not a certificate the register issued (verify reports it).
func (s *Local) Issued(ctx context.Context) ([]IssuedCert, error) {
	var out []IssuedCert
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCerts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			var c IssuedCert
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("issued certificate %x: %w", k, err)
			}
			if c.Serial == binary.BigEndian.Uint64(k) {
				out = append(out, c)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].IssuedAt.Equal(out[j].IssuedAt) {
			return out[i].IssuedAt.Before(out[j].IssuedAt)
		}
		return out[i].Serial < out[j].Serial
	})
	return out, err
}

// certificates checks each issued certificate's record against its seal.
func (v *verifier) certificates() {
	serials := make([]uint64, 0, len(v.certs))
	for serial := range v.certs {
		serials = append(serials, serial)
	}
	slices.Sort(serials)
	for _, serial := range serials {
		e := v.certs[serial]
		id := "certificate " + formatSerial(serial)
		rec, ok := v.snap.Certs[formatSerial(serial)]
		switch {
		case !ok:
			v.add(Problem{ID: id, Reason: "certificate record deleted"})
		case recordDigest(rec) != e.Record:
			v.add(Problem{ID: id, Reason: "certificate record edited"})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(v.snap.Certs)) {
		n, err := strconv.ParseUint(k, 10, 64)
		switch {
		case err != nil || formatSerial(n) != k:
			v.add(Problem{ID: "certificate " + k, Reason: "certificate record under a key that is not a serial"})
		case v.certs[n].Record == "":
			v.add(Problem{ID: "certificate " + k, Reason: "certificate record not sealed in the audit chain"})
		}
	}
}
