package recorder

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Revoke stores and seals a revocation once: again, it returns the first.
// Revocations lists them after a reopen, and bad revocations are refused
// without a trace in the chain.
func TestRevokeIdempotentAndDurable(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	ctx := t.Context()
	first, fresh, err := s.Revoke(ctx, Revocation{Serial: 42, Reason: "laptop stolen", RevokedBy: "root"})
	if err != nil || !fresh || first.RevokedAt.IsZero() || first.Key() != "serial/42" {
		t.Fatalf("first revoke: %+v %v %v", first, fresh, err)
	}
	again, fresh, err := s.Revoke(ctx, Revocation{Serial: 42, Reason: "other", RevokedBy: "bob"})
	if err != nil || fresh || again.Reason != "laptop stolen" || again.RevokedBy != "root" || !again.RevokedAt.Equal(first.RevokedAt) {
		t.Fatalf("second revoke: %+v %v %v", again, fresh, err)
	}
	if _, fresh, err := s.Revoke(ctx, Revocation{KeyID: "bob@example.com", Reason: "left the company"}); err != nil || !fresh {
		t.Fatalf("key ID revoke: %v %v", fresh, err)
	}
	for _, bad := range []Revocation{
		{Reason: "nothing named"},
		{Serial: 1, KeyID: "x", Reason: "both"},
		{Serial: 3, Reason: "  "},
		{KeyID: strings.Repeat("x", MaxRevokedKeyID+1), Reason: "long"},
		{KeyID: "\xff", Reason: "not UTF-8"},
	} {
		if _, _, err := s.Revoke(ctx, bad); err == nil {
			t.Errorf("Revoke(%+v) accepted", bad)
		}
	}
	head, _ := s.Head(ctx)
	if head == nil || head.Seq != 1 {
		t.Fatalf("chain head %v: want two entries, one per revocation", head)
	}
	key := s.key
	s.Close()
	s2, err := OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	list, err := s2.Revocations(ctx)
	if err != nil || len(list) != 2 || list[0].Serial != 42 || list[1].KeyID != "bob@example.com" || list[0].Note != "" || list[1].Note != "" {
		t.Fatalf("after reopen: %+v %v", list, err)
	}
	rep, err := VerifyStore(ctx, s2, VerifyOptions{Key: s2.PublicKey()})
	if err != nil || rep.Revocations != 2 || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// A revocation stays in force whatever is done to its record around the
// bastion (fail closed), and verify reports each change: edited, deleted,
// forged, sealed twice.
func TestRevocationsTamper(t *testing.T) {
	t.Parallel()
	put := func(t *testing.T, s *Local, k, v string) {
		t.Helper()
		if err := s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketRevocations).Put([]byte(k), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	del := func(t *testing.T, s *Local, k string) {
		t.Helper()
		if err := s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketRevocations).Delete([]byte(k)) }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		do      func(t *testing.T, s *Local)
		serials []uint64 // in force afterwards
		note    string   // a note on serial 7's revocation
		problem string   // the one problem verify reports
	}{
		{"untouched", func(*testing.T, *Local) {}, []uint64{7}, "", ""},
		{"edited", func(t *testing.T, s *Local) {
			put(t, s, "serial/7", `{"serial":7,"reason":"mistake","revoked_at":"2020-01-01T00:00:00Z","revoked_by":"x"}`)
		}, []uint64{7}, "record edited", "revocation record edited"},
		{"retargeted", func(t *testing.T, s *Local) {
			put(t, s, "serial/7", `{"serial":8,"reason":"x","revoked_at":"2020-01-01T00:00:00Z","revoked_by":"x"}`)
		}, []uint64{7}, "names another certificate", "revocation record edited"},
		{"deleted", func(t *testing.T, s *Local) { del(t, s, "serial/7") }, []uint64{7}, "record deleted from the index", "revocation record deleted"},
		{"forged", func(t *testing.T, s *Local) {
			put(t, s, "serial/9", `{"serial":9,"reason":"x","revoked_at":"2030-01-01T00:00:00Z","revoked_by":"x"}`)
		}, []uint64{7, 9}, "", "revocation record not sealed in the audit chain"},
		{"deleted and revoked again", func(t *testing.T, s *Local) {
			del(t, s, "serial/7")
			if _, fresh, err := s.Revoke(t.Context(), Revocation{Serial: 7, Reason: "again"}); err != nil || !fresh {
				t.Fatal(fresh, err)
			}
		}, []uint64{7}, "", "revoked twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if _, _, err := s.Revoke(t.Context(), Revocation{Serial: 7, Reason: "compromised"}); err != nil {
				t.Fatal(err)
			}
			tt.do(t, s)
			list, err := s.Revocations(t.Context())
			if err != nil || len(list) != len(tt.serials) {
				t.Fatalf("revocations %+v %v, want serials %v", list, err, tt.serials)
			}
			for i, r := range list {
				if r.Serial != tt.serials[i] {
					t.Fatalf("revocations %+v, want serials %v", list, tt.serials)
				}
			}
			if i := 0; !strings.Contains(list[i].Note, tt.note) || tt.note == "" && list[i].Note != "" {
				t.Fatalf("note %q, want %q", list[i].Note, tt.note)
			}
			rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.problem == "" && len(rep.Problems) != 0:
				t.Fatalf("untouched: %v", rep.Problems)
			case tt.problem != "" && (len(rep.Problems) != 1 || rep.Problems[0].Reason != tt.problem || rep.Problems[0].ID != "revocation serial/"+map[bool]string{true: "9", false: "7"}[tt.name == "forged"]):
				t.Fatalf("problems %v, want exactly one %q", rep.Problems, tt.problem)
			}
		})
	}
}

// Revocations needs the audit key to read the seals: a reader without it
// is refused, not shown unchecked records.
func TestRevocationsNeedAuditKey(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	if _, _, err := s.Revoke(t.Context(), Revocation{Serial: 5, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	key := s.key
	s.Close()
	ro, err := OpenStore(dir, Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Revocations(t.Context()); err == nil || !strings.Contains(err.Error(), "no audit key") {
		t.Fatalf("without a key: %v", err)
	}
	ro.Close()
	ro, err = OpenStore(dir, Options{ReadOnly: true, AuditPublicKey: key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if list, err := ro.Revocations(t.Context()); err != nil || len(list) != 1 {
		t.Fatalf("with the public key: %v %v", list, err)
	}
}
