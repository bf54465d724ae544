package recorder

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Refused certificate requests are stored and sealed; verify reports an
// edited, a deleted and a forged record.
func TestRefusalsSealedAndVerified(t *testing.T) {
	t.Parallel()
	put := func(t *testing.T, s *Local, k, v string) {
		t.Helper()
		if err := s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketRefusals).Put([]byte(k), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	tamper := []struct {
		name, reason string
		do           func(t *testing.T, s *Local, id string)
	}{
		{"none", "", func(*testing.T, *Local, string) {}},
		{"edited", "refusal record edited", func(t *testing.T, s *Local, id string) { put(t, s, id, `{"id":"`+id+`","status":200}`) }},
		{"deleted", "refusal record deleted", func(t *testing.T, s *Local, id string) {
			s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketRefusals).Delete([]byte(id)) })
		}},
		{"forged", "refusal record not sealed in the audit chain", func(t *testing.T, s *Local, _ string) { put(t, s, "forged", `{}`) }},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			var first string
			for i, reason := range []string{"token expired", "wrong audience"} {
				r, head, err := s.RefuseCert(t.Context(), CertRefusal{Client: "127.0.0.1", Status: 401, Reason: reason, Via: "test"})
				if err != nil || r.ID == "" || r.Time.IsZero() || head.Seq != uint64(i) {
					t.Fatalf("refuse: %+v %v %v", r, head, err)
				}
				if i == 0 {
					first = r.ID
				}
			}
			list, err := s.Refusals(t.Context())
			if err != nil || len(list) != 2 || list[0].ID != first || list[0].Reason != "token expired" {
				t.Fatalf("refusals %+v %v", list, err)
			}
			tt.do(t, s, first)
			rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil || rep.Refusals != 2 || rep.ChainEntries != 2 {
				t.Fatalf("report %+v %v", rep, err)
			}
			switch {
			case tt.reason == "" && len(rep.Problems) != 0:
				t.Fatalf("untouched: %v", rep.Problems)
			case tt.reason != "" && (len(rep.Problems) != 1 || rep.Problems[0].Reason != tt.reason):
				t.Fatalf("problems %v, want exactly one %q", rep.Problems, tt.reason)
			}
		})
	}
}

// A refusal ID given twice is an error, not a second record.
func TestRefuseCertRefusesDuplicateID(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	if _, _, err := s.RefuseCert(t.Context(), CertRefusal{ID: "x", Reason: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RefuseCert(t.Context(), CertRefusal{ID: "x", Reason: "b"}); err == nil {
		t.Fatal("second refusal under the same ID accepted")
	}
	list, _ := s.Refusals(t.Context())
	if len(list) != 1 || list[0].Reason != "a" {
		t.Fatalf("refusals %+v", list)
	}
}
