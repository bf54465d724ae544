package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/recorder"
)

// sealSession seals rec in store as ended at end; with text, it first
// writes the recording to file (a path of the test's choosing, which may
// lie anywhere), otherwise the file at file is sealed as it is.
func sealSession(t *testing.T, store *testStore, rec recorder.Session, file, text string, end time.Time) {
	t.Helper()
	rec.Session, rec.Start = rec.ID, end.Add(-time.Minute)
	if rec.Kind == "" {
		rec.Kind = "exec"
	}
	if err := store.Begin(rec); err != nil {
		t.Fatal(err)
	}
	if text != "" {
		w, err := recorder.Create(file, recorder.Header{})
		if err != nil {
			t.Fatal(err)
		}
		w.Output([]byte(text))
		if _, _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	digest, size, err := recorder.FileDigest(file)
	if err != nil {
		t.Fatal(err)
	}
	rec.End, rec.SHA256, rec.Size = &end, digest, size
	if _, err := store.Finish(rec); err != nil {
		t.Fatal(err)
	}
}

// TestIndexPathsOutsideRecordings: index entries that lead out of
// DATA_DIR/recordings, by .. or through a symbolic link to a file or a
// directory, are refused by play, verify, grep and prune, which neither
// read nor delete what they point to, and prune still prunes the rest.
func TestIndexPathsOutsideRecordings(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	day := filepath.Join(data, "recordings", "2026", "11", "25")
	outside := filepath.Join(work, "outside")
	os.MkdirAll(outside, 0o700)
	if err := os.Symlink(filepath.Join(work, "victim-2.cast"), filepath.Join(day, "link.cast")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(data, "recordings", "2026", "12")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().AddDate(-2, 0, 0)
	victims := map[string]string{ // session ID: the file its index entry reaches
		"00X-1": filepath.Join(work, "victim.txt"),
		"00Y-1": filepath.Join(work, "victim-2.cast"),
		"00Z-1": filepath.Join(outside, "victim.cast"),
	}
	paths := map[string]string{
		"00X-1": "../victim.txt",
		"00Y-1": filepath.Join("recordings", "2026", "11", "25", "link.cast"),
		"00Z-1": filepath.Join("recordings", "2026", "12", "victim.cast"),
	}
	for id, victim := range victims {
		sealSession(t, store, recorder.Session{ID: id, Identity: "mallory", Path: paths[id]}, victim, "victim-secret\r\n", old)
	}
	contents := map[string][]byte{}
	for id, victim := range victims {
		contents[id] = mustRead(t, victim)
	}
	// An old recording in its place, which prune must still delete.
	sealRecordingAt(t, store, "00W-1", "old\r\n", old)

	for id := range victims {
		r := admin(t, work, "play", "--data-dir", data, "--cat", id)
		if r.ExitCode != 1 || bytes.Contains(r.Stdout, []byte("victim-secret")) || !strings.Contains(string(r.Stderr), "outside DATA_DIR/recordings") {
			t.Errorf("play %s (%s): exit %d, stdout %q, stderr %q; want 1 and a refusal", id, paths[id], r.ExitCode, r.Stdout, r.Stderr)
		}
	}
	r := admin(t, work, "verify", "--data-dir", data)
	for id := range victims {
		if !strings.Contains(string(r.Stdout), id+": path outside recordings") && !strings.Contains(string(r.Stdout), paths[id]+": path outside recordings") {
			t.Errorf("verify does not refuse %s (%s): %s", id, paths[id], r.Stdout)
		}
	}
	if r.ExitCode != 1 {
		t.Errorf("verify: exit %d, want 1: %s", r.ExitCode, r.Stdout)
	}
	r = admin(t, work, "sessions", "--data-dir", data, "--grep", "victim-secret|first")
	if r.ExitCode != 1 || bytes.Contains(r.Stdout, []byte("victim-secret")) || !bytes.Contains(r.Stdout, []byte("first")) ||
		strings.Count(string(r.Stderr), "outside DATA_DIR/recordings") != 3 {
		t.Errorf("sessions --grep: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}

	r = admin(t, work, "recordings", "prune", "--data-dir", data, "--dry-run")
	if r.ExitCode != 1 || strings.Count(string(r.Stderr), "would not prune") != 3 || !strings.Contains(string(r.Stdout), "would delete "+filepath.Join("recordings", "2026", "11", "25", "00W-1.cast")) {
		t.Errorf("prune --dry-run: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	r = admin(t, work, "recordings", "prune", "--data-dir", data)
	if r.ExitCode != 1 || strings.Count(string(r.Stderr), "postern: not pruned 00") != 3 || !strings.Contains(string(r.Stdout), "(00W-1,") || strings.Contains(string(r.Stdout), "00X-1") {
		t.Errorf("prune: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	for id, victim := range victims {
		if got, err := os.ReadFile(victim); err != nil || !bytes.Equal(got, contents[id]) {
			t.Errorf("%s's target %s after prune: %v, %q", id, victim, err, got)
		}
		if _, err := store.Get(id); err != nil {
			t.Errorf("prune removed the index entry of %s, the evidence of the edit: %v", id, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(day, "link.cast")); err != nil {
		t.Errorf("prune removed the link of a refused entry: %v", err)
	}
	if _, err := os.Stat(filepath.Join(day, "00W-1.cast")); !os.IsNotExist(err) {
		t.Errorf("the old recording was not pruned: %v", err)
	}
}

// TestGrepGoesOnAfterMissingFile: one recording gone does not hide the
// hits in the others; it is named on stderr and the exit code is 1.
func TestGrepGoesOnAfterMissingFile(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "third\r\n")
	rec, err := store.Get("01B-1")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(data, rec.Path))
	for _, json := range []bool{false, true} {
		args := []string{"sessions", "--data-dir", data, "--grep", "first|second|third"}
		if json {
			args = append(args, "--json")
		}
		r := admin(t, work, args...)
		out := string(r.Stdout)
		if r.ExitCode != 1 || !strings.Contains(out, "01A-1") || !strings.Contains(out, "01C-1") || !strings.Contains(out, "third") ||
			!strings.Contains(string(r.Stderr), "search 01B-1") || !strings.Contains(string(r.Stderr), "could not be searched") {
			t.Errorf("sessions --grep (json %v) with 01B-1's file gone: exit %d, stdout %q, stderr %q", json, r.ExitCode, out, r.Stderr)
		}
	}
}

// TestTablesEscapeControls: a principal, target or command holding ESC,
// newlines or C1 controls stays one row of the table, with the characters
// shown as escapes, and the JSON escapes C1 too.
func TestTablesEscapeControls(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	rel := filepath.Join("recordings", "2026", "11", "25", "01D-1.cast")
	sealSession(t, store, recorder.Session{
		ID: "01D-1", Identity: "eve\x1b[2J\nroot", Target: "db\u009b6n01", Login: "ro\tot", Command: "id\r\x1b]52;c;eA==\x07", Path: rel,
	}, filepath.Join(data, rel), "evil\x1b[6n here\r\n", time.Now())
	for _, args := range [][]string{{"sessions"}, {"sessions", "--grep", "here"}} {
		r := admin(t, work, append(args, "--data-dir", data)...)
		out := string(r.Stdout)
		if r.ExitCode != 0 {
			t.Fatalf("%v: exit %d %s", args, r.ExitCode, r.Stderr)
		}
		want := 5 // the header and four sessions
		if len(args) > 1 {
			want = 3 // the header, 01D-1 and its hit
		}
		if lines := strings.Count(out, "\n"); lines != want {
			t.Errorf("%v: %d lines, want %d:\n%s", args, lines, want, out)
		}
		if strings.ContainsAny(out, "\x1b\r\u009b\x07") || !strings.Contains(out, `eve\x1b[2J\nroot`) || !strings.Contains(out, `db\u009b6n01`) {
			t.Errorf("%v: controls not escaped: %q", args, out)
		}
	}
	r := admin(t, work, "sessions", "--data-dir", data, "--json")
	if r.ExitCode != 0 || bytes.ContainsAny(r.Stdout, "\x1b\u009b") || !bytes.Contains(r.Stdout, []byte(`db\u009b6n01`)) {
		t.Errorf("sessions --json: %d %q", r.ExitCode, r.Stdout)
	}
}
