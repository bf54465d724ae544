package recorder

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRecordingFile(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	day := filepath.Join(dir, "recordings", "2026", "11", "25")
	os.MkdirAll(day, 0o700)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(day, "a.cast"), nil, 0o600)
	os.Symlink(filepath.Join(outside, "x"), filepath.Join(day, "out.cast"))    // to a file outside
	os.Symlink(outside, filepath.Join(dir, "recordings", "2027"))              // a directory outside
	os.Symlink("a.cast", filepath.Join(day, "in.cast"))                        // inside: allowed
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(day, "gone.cast")) // dangling
	os.WriteFile(filepath.Join(outside, "x"), []byte("victim"), 0o600)
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"recordings/2026/11/25/a.cast", true},
		{"recordings/2026/11/25/in.cast", true},
		{"recordings/2026/11/25/new.cast", true}, // not there (yet): inside
		{"recordings/2030/01/01/new.cast", true}, // no such directory either
		{"", false},
		{"/etc/passwd", false},
		{"../victim.txt", false},
		{"recordings/../postern.db", false},
		{"recordings/2026/../../x", false},
		{"recordings/./2026/11/25/a.cast", false},
		{"recordings/2026/11/25/a.cast/", false},
		{"recordings", false},
		{"postern.db", false},
		{"ca/audit_ed25519", false},
		{"recordings/2026/11/25/out.cast", false},
		{"recordings/2027/x", false},
		{"recordings/2027/new/y.cast", false},
		{"recordings/2026/11/25/gone.cast", false},
	} {
		got, err := s.RecordingFile(filepath.FromSlash(tt.path))
		if tt.ok && (err != nil || got != filepath.Join(dir, tt.path)) {
			t.Errorf("RecordingFile(%q) = %q, %v; want %q", tt.path, got, err, filepath.Join(dir, tt.path))
		}
		if !tt.ok && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("RecordingFile(%q) = %q, %v; want a refusal", tt.path, got, err)
		}
	}
}

// TestPruneVerifyRefuseOutside: an entry sealed with a path outside the
// recordings is reported by Verify without reading it and left alone by
// Prune, file and entry, while Prune deletes the rest.
func TestPruneVerifyRefuseOutside(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	victim := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-victim.cast")
	_, n := writeCast(t, victim, "victim")
	t.Cleanup(func() { os.Remove(victim) })
	rel := filepath.Join("..", filepath.Base(victim))
	rec := Session{ID: "01B-1", Start: time.Now(), Path: rel}
	s.Begin(t.Context(), rec)
	end := time.Now()
	rec.End, rec.SHA256, rec.Size = &end, sha256Hex(mustReadFile(t, victim)), n
	if _, err := s.Finish(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	kept := record(t, s, "01A-1", "ok\r\n")
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Reason != "path outside recordings" || rep.Problems[0].ID != "01B-1" {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
	pruned, head, err := Prune(t.Context(), s, time.Now().Add(time.Second))
	var re *RefusedError
	if !errors.As(err, &re) || len(re.Refused) != 1 || re.Refused[0].ID != "01B-1" || head == nil || len(pruned) != 1 || pruned[0].ID != kept.ID {
		t.Fatalf("prune: %v, head %v, error %v", pruned, head, err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("victim: %v", err)
	}
	if _, err := s.Get(t.Context(), "01B-1"); err != nil {
		t.Fatalf("the refused entry was removed: %v", err)
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
