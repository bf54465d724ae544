package main

// Attack 3 (issue 11 review): failing tests for holes found in play, prune,
// sessions and verify by someone who can edit the data directory (not the
// audit key), and for the player's keys. Each test names its hole.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/recorder"
)

// hostileName is an index path component that, printed raw, writes the
// auditor's clipboard (OSC 52) and asks the terminal for its cursor
// position (DSR): its answer would arrive as keys.
const hostileName = "\x1b]52;c;cHduZWQ=\x07\x1b[6n"

// noControls fails if out holds ESC, BEL or a C1 control: what reached the
// auditor's terminal unescaped.
func noControls(t *testing.T, what string, out []byte) {
	t.Helper()
	if bytes.ContainsAny(out, "\x1b\x07\u009b\u009d") {
		t.Errorf("%s reached the terminal with raw controls: %q", what, out)
	}
}

// TestAttack3PlayErrorEchoesIndexPathRaw: HOLE (invariant 7): `postern
// play ID` prints the error of opening the file an index entry names with
// the path as it is (os.Open's error, via run's "postern: %v"), so an
// edited index entry whose path holds escape sequences writes the
// auditor's clipboard and makes the terminal answer. play wraps the session
// ID in visible() but not the wrapped error; sessions --grep and prune do
// escape the same errors.
func TestAttack3PlayErrorEchoesIndexPathRaw(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	rel := filepath.Join("recordings", "2026", "11", "25", hostileName+".cast")
	if err := store.Begin(recorder.Session{ID: "00E-1", Session: "00E", Identity: "mallory", Kind: "exec", Start: time.Now(), Path: rel}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"play", "--cat", "00E-1"}, {"play", "00E-1"}} {
		r := admin(t, work, append(args, "--data-dir", data)...)
		if r.ExitCode != 1 {
			t.Errorf("%v: exit %d, want 1: %q", args, r.ExitCode, r.Stderr)
		}
		noControls(t, strings.Join(args, " ")+" stderr", r.Stderr)
	}
	// The same entry with a path component too long for the file system:
	// RecordingFile's "resolve %s" error carries the raw path too.
	long := filepath.Join("recordings", "2026", "11", "25", strings.Repeat("x", 300)+hostileName, "a.cast")
	if err := store.Begin(recorder.Session{ID: "00F-1", Session: "00F", Identity: "mallory", Kind: "exec", Start: time.Now(), Path: long}); err != nil {
		t.Fatal(err)
	}
	r := admin(t, work, "play", "--cat", "00F-1", "--data-dir", data)
	if r.ExitCode != 1 {
		t.Errorf("play 00F-1: exit %d: %q", r.ExitCode, r.Stderr)
	}
	noControls(t, "play 00F-1 stderr", r.Stderr)
}

// TestAttack3PruneErrorEchoesIndexPathRaw: HOLE (invariant 7): when prune
// cannot delete a file, its error "delete PATH: ..." carries the index path
// raw to stderr (run prints it with %v), while the lines above it are
// escaped.
func TestAttack3PruneErrorEchoesIndexPathRaw(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	rel := filepath.Join("recordings", "2026", "11", "25", hostileName)
	// A non-empty directory where the file should be: os.Remove fails.
	if err := os.MkdirAll(filepath.Join(data, rel, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().AddDate(-2, 0, 0)
	rec := recorder.Session{ID: "00G-1", Session: "00G", Identity: "mallory", Kind: "exec", Start: old.Add(-time.Minute), Path: rel}
	if err := store.Begin(rec); err != nil {
		t.Fatal(err)
	}
	rec.End = &old
	if _, err := store.Finish(rec); err != nil {
		t.Fatal(err)
	}
	r := admin(t, work, "recordings", "prune", "--data-dir", data)
	if r.ExitCode != 1 {
		t.Errorf("prune: exit %d, want 1: %q", r.ExitCode, r.Stderr)
	}
	noControls(t, "prune stdout", r.Stdout)
	noControls(t, "prune stderr", r.Stderr)
}

// TestAttack3SessionsCorruptEntryKeyRaw: HOLE (invariant 7): an index entry
// that is not JSON makes `sessions` (and `recordings prune`) fail with
// "index entry KEY: ..." where KEY is the entry's bbolt key, raw: an edited
// index writes escape sequences to the auditor's terminal.
func TestAttack3SessionsCorruptEntryKeyRaw(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	sealedDir(t, data, "last\r\n")
	db, err := bolt.Open(filepath.Join(data, "postern.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("sessions")).Put([]byte("00H-1"+hostileName), []byte("not json"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"sessions"}, {"recordings", "prune", "--dry-run"}, {"recordings", "prune"}} {
		r := admin(t, work, append(args, "--data-dir", data)...)
		if r.ExitCode == 0 {
			t.Errorf("%v: exit 0 with a corrupt index entry", args)
		}
		noControls(t, strings.Join(args, " ")+" stdout", r.Stdout)
		noControls(t, strings.Join(args, " ")+" stderr", r.Stderr)
	}
}

// TestAttack3SymlinkedRecordingsDirLeadsOut: HOLE (DESIGN "no index path is
// used without checking it stays inside the data directory"; README: prune
// deletes neither the file nor the entry of a path outside): RecordingFile
// resolves DATA_DIR/recordings itself and accepts whatever lies under the
// result. Whoever can edit the data directory replaces recordings/ with a
// link to any directory; then play prints, and prune (run by the admin,
// often as root from cron) deletes, files outside the data directory that
// index entries name as recordings/NAME.
func TestAttack3SymlinkedRecordingsDirLeadsOut(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	outside := filepath.Join(work, "etc")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	// The attacker moves the real recordings aside and links the
	// directory out of the data directory.
	if err := os.Rename(filepath.Join(data, "recordings"), filepath.Join(data, "recordings.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(data, "recordings")); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "secret.cast")
	important := filepath.Join(outside, "important.conf")
	if err := os.WriteFile(important, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().AddDate(-2, 0, 0)
	sealSession(t, store, recorder.Session{ID: "00S-1", Identity: "mallory", Path: filepath.Join("recordings", "secret.cast")}, victim, "victim-secret\r\n", time.Now())
	sealSession(t, store, recorder.Session{ID: "00T-1", Identity: "mallory", Path: filepath.Join("recordings", "important.conf")}, important, "", old)

	r := admin(t, work, "play", "--cat", "00S-1", "--data-dir", data)
	if bytes.Contains(r.Stdout, []byte("victim-secret")) {
		t.Errorf("play read %s, outside the data directory: exit %d, %q", victim, r.ExitCode, r.Stdout)
	}
	r = admin(t, work, "recordings", "prune", "--data-dir", data)
	if _, err := os.Stat(important); err != nil {
		t.Errorf("prune deleted %s, outside the data directory (exit %d, stdout %q, stderr %q): %v", important, r.ExitCode, r.Stdout, r.Stderr, err)
	}
}

// TestAttack3FIFOHangsVerify: HOLE (invariant 5, a bad file is reported,
// never a hang): a named pipe in place of a recording passes RecordingFile
// (it is inside recordings) and verify, sessions --grep and play open it
// for reading, which blocks until someone writes: the audit tools hang
// forever. The test gives each command 10 seconds.
func TestAttack3FIFOHangsVerify(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	rec, err := store.Get("01B-1")
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(data, rec.Path)
	if err := os.Remove(full); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(full, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"verify"}, {"sessions", "--grep", "x"}, {"play", "--cat", "01B-1"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c := exec.CommandContext(ctx, binary(t), append(args, "--data-dir", data)...)
		c.Dir = work
		out, _ := c.CombinedOutput()
		if ctx.Err() != nil {
			t.Errorf("%v still running after 10 s with a FIFO at %s: %q", args, rec.Path, out)
		}
		cancel()
	}
}

// TestAttack3SessionsJSONBidiRaw: HOLE (README: "--json writes them as \u
// escapes", them being every control of a value, bidirectional overrides
// included): writeJSON escapes C1 and DEL but leaves U+202E and the other
// format characters raw, so a command shown by `sessions --json` on a
// terminal is displayed reordered (Trojan Source), unlike in the table.
func TestAttack3SessionsJSONBidiRaw(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	rel := filepath.Join("recordings", "2026", "11", "25", "01E-1.cast")
	sealSession(t, store, recorder.Session{ID: "01E-1", Identity: "eve", Command: "rm -rf /tmp/x \u202e#gnirts-efas\u2066"}, filepath.Join(data, rel), "ok\r\n", time.Now())
	r := admin(t, work, "sessions", "--data-dir", data, "--json")
	if r.ExitCode != 0 {
		t.Fatalf("sessions --json: %d %s", r.ExitCode, r.Stderr)
	}
	if bytes.Contains(r.Stdout, []byte("\u202e")) || bytes.Contains(r.Stdout, []byte("\u2066")) {
		t.Errorf("sessions --json writes bidirectional controls raw: %q", r.Stdout)
	}
}

// TestAttack3PlayKeypadQuits: HOLE (invariant 7, "the player's own keys"):
// the recording may switch the auditor's terminal to application keypad
// mode (ESC =, passed by the filter), in which the keypad's 1 sends ESC O q
// and its '+' ESC O k. The player reads keys byte by byte, so the 'q' inside
// a key's escape sequence quits the replay (and keypad +/- stop working).
// The recording thereby decides what the auditor's keys do; after play the
// terminal is also left in that mode.
func TestAttack3PlayKeypadQuits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keypad.cast")
	cast := `{"version": 2, "width": 100, "height": 30}` + "\n" +
		`[0.0, "o", "start\u001b=\r\n"]` + "\n" +
		`[1.5, "o", "the-end\r\n"]` + "\n"
	if err := os.WriteFile(path, []byte(cast), 0o600); err != nil {
		t.Fatal(err)
	}
	// The pty "terminal" presses keypad 1 once it has drawn "start",
	// in application keypad mode, as the recording asked.
	out, code, answered := answeringPTY(t, map[string]string{"start\x1b=": "\x1bOq"}, binary(t), "play", path)
	if len(answered) == 0 {
		// Fixed: the filter drops ESC =, so the keypad stays numeric.
		if bytes.Contains(out, []byte("\x1b=")) || code != 0 || !bytes.Contains(out, []byte("the-end")) {
			t.Fatalf("exit %d, %q", code, out)
		}
		return
	}
	if code != 0 || !bytes.Contains(out, []byte("the-end")) {
		t.Errorf("a key's escape sequence (keypad 1 = ESC O q) stopped the replay: exit %d, %q", code, out)
	}
}
