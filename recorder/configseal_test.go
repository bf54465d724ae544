package recorder

import (
	"encoding/json"
	"strings"
	"testing"
)

// A reload's config digest is sealed as a chain entry of its own, which
// verify accepts as part of the chain; a malformed digest is refused.
func TestSealConfig(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	digest := strings.Repeat("ab", 32)
	head, err := s.SealConfig(t.Context(), digest, "reload")
	if err != nil || head.Seq != 0 {
		t.Fatalf("seal: %v %v", head, err)
	}
	if _, err := s.SealConfig(t.Context(), "not-hex", "reload"); err == nil {
		t.Fatal("a malformed digest was sealed")
	}
	snap, err := s.Snapshot(t.Context())
	if err != nil || len(snap.Chain) != 1 {
		t.Fatalf("snapshot: %d entries, %v", len(snap.Chain), err)
	}
	var e ChainEntry
	if err := json.Unmarshal(snap.Chain[0].Value, &e); err != nil || e.Kind != KindConfig || e.Config != digest || e.Event != "reload" {
		t.Fatalf("entry %+v %v", e, err)
	}
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || rep.ChainEntries != 1 || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
