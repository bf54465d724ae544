package recorder

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRebuildEditedKind: a sealed session's record is lost and its
// recording's header edited to name another kind: the rebuild does not
// take the header's word for a recording the chain seals (the session is
// named lost, not sealed anew from the header), and verify reports the
// file modified.
func TestRebuildEditedKind(t *testing.T) {
	t.Parallel()
	ev := newEvidence(t, 4)
	victim := ev.ids[2]
	s, _ := OpenStore(ev.dir, Options{ReadOnly: true})
	rec, err := s.Get(t.Context(), victim)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(ev.dir, rec.Path)
	data, _ := os.ReadFile(file)
	edited := bytes.Replace(data, []byte(`"postern":{`), []byte(`"postern":{"kind":"approval",`), 1)
	if bytes.Equal(edited, data) {
		t.Fatalf("no postern header in %s", data)
	}
	os.WriteFile(file, edited, 0o600)
	if n := damageAll(t, ev.dir, []byte(`{"id":"`+victim+`"`), 1); n == 0 {
		t.Fatal("the record is not in the file")
	}
	rep, ver, st := ev.rebuild(t)
	if !slices.Contains(rep.RecordsLost, "session "+victim) || slices.Contains(rep.Sealed, victim) {
		t.Fatalf("report %+v", rep)
	}
	if len(ver.Problems) != 1 || ver.Problems[0].ID != victim || ver.Problems[0].Reason != "modified" {
		t.Fatalf("verify: %v, want %s modified", ver.Problems, victim)
	}
	if got, err := st.Get(t.Context(), victim); err == nil {
		t.Fatalf("the lost record came back from the edited header: %+v", got)
	}
}
