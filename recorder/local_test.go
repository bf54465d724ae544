package recorder

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/mask"
)

// IssueCert never hands out a serial twice: not to concurrent callers,
// not after the store is closed and opened again; Issued lists them all,
// and each is sealed in the chain, which verify checks.
func TestIssueCertSerials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	seen := map[uint64]bool{}
	for round := range 2 {
		s, err := OpenStore(dir, Options{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				c, err := s.IssueCert(t.Context(), IssuedCert{KeyID: "k", Principals: []string{"alice"}})
				mu.Lock()
				defer mu.Unlock()
				if err != nil || c.Serial == 0 || seen[c.Serial] {
					t.Errorf("round %d: serial %d (%v): zero or given before", round, c.Serial, err)
				}
				seen[c.Serial] = true
			})
		}
		wg.Wait()
		list, err := s.Issued(t.Context())
		if err != nil || len(list) != len(seen) {
			t.Fatalf("Issued: %d records (%v), %d serials handed out", len(list), err, len(seen))
		}
		rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
		if err != nil || len(rep.Problems) != 0 || rep.ChainEntries != len(seen) {
			t.Fatalf("verify: %+v %v", rep, err)
		}
		s.Close()
	}
}

// TestNewSerialNeverCardShaped draws register serials in one transaction:
// none may be card-shaped, or a revocation notice and the log would show
// the serial as asterisks. Without the filter about 200 of 2000 would be.
func TestNewSerialNeverCardShaped(t *testing.T) {
	t.Parallel()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := OpenStore(t.TempDir(), Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.update(t.Context(), func(tx *bolt.Tx) error {
		for range 2000 {
			serial, err := newSerial(tx.Bucket(bucketCerts))
			if err != nil {
				return err
			}
			if mask.CardShaped(serial) {
				t.Fatalf("serial %d is card-shaped", serial)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// putJSON stores rec as session id's index entry, as an editor of the
// database would.
func putJSON(tx *bolt.Tx, id string, rec Session) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSessions).Put([]byte(id), data)
}
