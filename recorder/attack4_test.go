package recorder

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// RecordingFile says only a regular file is a recording, but lets a
// directory through (directly, or through a link inside recordings): an
// edited index entry naming an empty day directory has Prune remove it,
// and play and verify open it.
func TestAttack4RecordingFileAcceptsDirectory(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	day := filepath.Join(dir, "recordings", "2026", "11", "25")
	if err := os.MkdirAll(day, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Symlink("25", filepath.Join(dir, "recordings", "2026", "11", "link.cast"))
	for _, rel := range []string{"recordings/2026/11/25", "recordings/2026/11/link.cast"} {
		if got, err := s.RecordingFile(filepath.FromSlash(rel)); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("RecordingFile(%q) = %q, %v: a directory passed as a recording", rel, got, err)
		}
	}
}
