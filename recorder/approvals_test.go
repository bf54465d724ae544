package recorder

import (
	"bytes"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Approval requests are stored and sealed at each change; verify holds the
// stored record to the newest seal, and reports an edit, a deletion and a
// record nobody sealed.
func TestApprovalsSealedAndVerified(t *testing.T) {
	t.Parallel()
	put := func(t *testing.T, s *Local, k, v string) {
		t.Helper()
		if err := s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketApprovals).Put([]byte(k), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	tamper := []struct {
		name, reason string
		do           func(t *testing.T, s *Local)
	}{
		{"none", "", func(*testing.T, *Local) {}},
		// Put back as it was when requested: the newest seal says approved.
		{"rolled back", "approval record edited", func(t *testing.T, s *Local) { put(t, s, "req1", `{"state":"pending"}`) }},
		{"deleted", "approval record deleted", func(t *testing.T, s *Local) {
			s.update(t.Context(), func(tx *bolt.Tx) error { return tx.Bucket(bucketApprovals).Delete([]byte("req1")) })
		}},
		{"forged", "approval record not sealed in the audit chain", func(t *testing.T, s *Local) { put(t, s, "req9", `{"state":"approved"}`) }},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			for _, ev := range []struct{ id, event, rec string }{
				{"req1", "requested", `{"state":"pending"}`},
				{"req2", "requested", `{"state":"pending"}`},
				{"req1", "approved", `{"state":"approved"}`},
			} {
				if _, err := s.SaveApproval(t.Context(), ev.id, ev.event, []byte(ev.rec)); err != nil {
					t.Fatal(err)
				}
			}
			recs, err := s.Approvals(t.Context())
			if err != nil || len(recs) != 2 || recs[0].ID != "req1" || !bytes.Equal(recs[0].Data, []byte(`{"state":"approved"}`)) {
				t.Fatalf("approvals %q %v", recs, err)
			}
			tt.do(t, s)
			// What the bastion would act on: only records sealed as
			// stored.
			recs, err = s.Approvals(t.Context())
			if want := map[string]int{"none": 2, "rolled back": 1, "deleted": 1, "forged": 2}[tt.name]; err != nil || len(recs) != want {
				t.Fatalf("after tampering, Approvals gives %d records (%v), want %d", len(recs), err, want)
			}
			for _, r := range recs {
				if r.ID == "req9" || r.ID == "req1" && tt.name == "rolled back" {
					t.Fatalf("tampered record %s returned", r.ID)
				}
			}
			rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil || rep.Approvals != 2 || rep.ChainEntries != 3 {
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

func TestSaveApprovalRefusesBadKeys(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	for _, id := range []string{"", string(bytes.Repeat([]byte("x"), maxRequestID+1))} {
		if _, err := s.SaveApproval(t.Context(), id, "requested", []byte("{}")); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	if _, err := s.SaveApproval(t.Context(), "req1", "", []byte("{}")); err == nil {
		t.Error("empty event accepted")
	}
}
