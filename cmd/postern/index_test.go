package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/recorder"
)

// populatedDir makes a data directory as a bastion leaves it: three sealed
// sessions, one it died in (begun, recording on disk), a certificate
// issued and an approval request decided.
func populatedDir(t *testing.T, dir string) {
	t.Helper()
	store, _ := sealedDir(t, dir, "the last one\r\n")
	rel := filepath.Join("recordings", "2026", "11", "25", "01D-1.cast")
	if err := store.Begin(recorder.Session{ID: "01D-1", Identity: "bob", Target: "db02", Login: "root", Start: time.Now(), Path: rel}); err != nil {
		t.Fatal(err)
	}
	w, err := recorder.Create(filepath.Join(dir, rel), recorder.Header{Version: 2, Width: 80, Height: 24, Postern: &recorder.Meta{ID: "01D-1", Identity: "bob", Target: "db02"}})
	if err != nil {
		t.Fatal(err)
	}
	w.Output([]byte("cut short"))
	w.Close()
	req, _ := json.Marshal(approval.Request{ID: "req1", Kind: "command", Requester: "bob", Target: "db02", Login: "root",
		Line: "rm -rf /srv/old", Rule: "rm", Approvers: []string{"leads"}, Required: 1, Created: time.Now(),
		Expires: time.Now().Add(time.Hour), State: approval.StateApproved})
	err = store.with(func(l *recorder.Local) error {
		if _, err := l.IssueCert(context.Background(), recorder.IssuedCert{KeyID: "carol", Principals: []string{"carol"}, IssuedBy: "test"}); err != nil {
			return err
		}
		_, err := l.SaveApproval(context.Background(), "req1", "approved", req)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// damage returns a copy of index file data damaged one of five ways, and
// says how. Only the pages in use are damaged (bbolt grows the file ahead
// of them, with zeros), except by truncation.
func damage(rng *rand.Rand, data []byte) ([]byte, string) {
	b := bytes.Clone(data)
	used := (bytes.LastIndexFunc(b, func(r rune) bool { return r != 0 })/4096 + 1) * 4096
	switch rng.IntN(5) {
	case 0:
		n := rng.IntN(len(b))
		return b[:n], fmt.Sprintf("truncated to %d bytes", n)
	case 1:
		n := 1 + rng.IntN(8)
		for range n {
			b[rng.IntN(used)] ^= 1 << rng.IntN(8)
		}
		return b, fmt.Sprintf("%d bits flipped", n)
	case 2:
		at, n := rng.IntN(used), 1+rng.IntN(64)
		for i := at; i < min(at+n, used); i++ {
			b[i] = byte(rng.IntN(256))
		}
		return b, fmt.Sprintf("%d bytes at %d overwritten", n, at)
	case 3:
		p := rng.IntN(used / 4096)
		clear(b[p*4096 : (p+1)*4096])
		return b, fmt.Sprintf("page %d zeroed", p)
	default:
		// Page headers and element tables: where bbolt's pointers are.
		p := rng.IntN(used / 4096)
		for range 1 + rng.IntN(4) {
			b[p*4096+rng.IntN(64)] ^= 1 << rng.IntN(8)
		}
		return b, fmt.Sprintf("header of page %d flipped", p)
	}
}

// crash matches what a Go program prints when it dies of a panic or a
// fault, rather than failing as it should.
var crash = regexp.MustCompile(`panic:|goroutine \d+ \[|fatal error:|SIGBUS|SIGSEGV|unexpected fault address`)

// TestDamagedIndexFuzz: 300 damaged copies of a real index (seeded: each
// run tries the same ones), truncated, bit-flipped, overwritten, zeroed,
// their page headers hit; every read command on each exits 0 or 1, and
// with 1 says what is wrong on stderr; never a panic, a fault or exit 2.
// Every command runs in-process (run), and every tenth case also through
// the real binary, where a SIGBUS would kill it. Then index rebuild on a
// truncated copy restores an index that verify accepts, stating the gaps.
func TestDamagedIndexFuzz(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	populatedDir(t, data)
	index := filepath.Join(data, recorder.IndexFile)
	sound, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	cmds := [][]string{{"sessions"}, {"sessions", "--json"}, {"verify"}, {"play", "--cat", "01C-1"},
		{"approvals", "--all"}, {"ca", "issued"}, {"index", "check"}}
	rng := rand.New(rand.NewPCG(17, 3))
	exits := map[string]int{}
	start := time.Now()
	for i := range 300 {
		damaged, how := damage(rng, sound)
		if err := os.WriteFile(index, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			args := append(append([]string{}, c...), "--data-dir", data)
			code, _, stderr := runCaught(t, args)
			checkExit(t, fmt.Sprintf("case %d (%s): %v", i, how, c), code, stderr)
			exits[fmt.Sprintf("%s exit %d", strings.Join(c, " "), code)]++
			if i%10 == 0 {
				r := admin(t, work, args...)
				checkExit(t, fmt.Sprintf("case %d (%s): %v, binary", i, how, c), r.ExitCode, string(r.Stderr))
			}
		}
		if changed, _ := os.ReadFile(index); !bytes.Equal(changed, damaged) {
			t.Fatalf("case %d (%s): a read command changed the damaged index", i, how)
		}
	}
	t.Logf("300 cases in %s: %v", time.Since(start).Round(time.Millisecond), exits)

	os.WriteFile(index, sound[:len(sound)/2], 0o600)
	r := admin(t, work, "index", "rebuild", "--data-dir", data)
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "postern.db.corrupt-") || !strings.Contains(string(r.Stdout), "GAP index rebuilt") {
		t.Fatalf("index rebuild of a truncated index: %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	kept, _ := filepath.Glob(index + ".corrupt-*")
	if len(kept) != 1 || !bytes.Equal(mustRead(t, kept[0]), sound[:len(sound)/2]) {
		t.Fatalf("damaged index not kept as it was: %v", kept)
	}
	if r := admin(t, work, "verify", "--data-dir", data); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), " 0 problems") || !strings.Contains(string(r.Stdout), "GAP index rebuilt") {
		t.Fatalf("verify after the rebuild: %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// Every session is back, but one whose seal survived and whose
	// record did not (named lost).
	var ver recorder.Report
	r = admin(t, work, "verify", "--json", "--data-dir", data)
	if err := json.Unmarshal(r.Stdout, &ver); err != nil || len(ver.Rebuilds) != 1 {
		t.Fatalf("verify --json after the rebuild: %v %s", err, r.Stdout)
	}
	lost := 0
	for _, l := range ver.Rebuilds[0].RecordsLost {
		if strings.HasPrefix(l, "session ") {
			lost++
		}
	}
	if got := sessionsJSON(t, work, "--data-dir", data); len(got)+lost != 4 {
		t.Fatalf("sessions after the rebuild (%d lost): %+v", lost, got)
	}
	if r := admin(t, work, "index", "check", "--data-dir", data); r.ExitCode != 0 {
		t.Fatalf("index check after the rebuild: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// runCaught runs the CLI in-process; a panic that escapes it fails the
// test with the arguments.
func runCaught(t *testing.T, args []string) (code int, stdout, stderr string) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%v: panic: %v", args, r)
		}
	}()
	return runCLI(t, args...)
}

// checkExit fails unless a command exited 0, or 1 with a message.
func checkExit(t *testing.T, what string, code int, stderr string) {
	t.Helper()
	switch {
	case crash.MatchString(stderr):
		t.Fatalf("%s: crashed (exit %d):\n%s", what, code, stderr)
	case code != 0 && code != 1:
		t.Fatalf("%s: exit %d:\n%s", what, code, stderr)
	case code == 1 && !regexp.MustCompile(`(?m)^postern: \S.{10,}`).MatchString(stderr):
		t.Fatalf("%s: exit 1 without a message: %q", what, stderr)
	}
}

// TestIndexCommands: index check on a sound index, with --json; index
// rebuild refuses a sound index without --force; bad usage is exit 2.
// (TestSIGKILLThenRestart has both refuse while a server runs.)
func TestIndexCommands(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	populatedDir(t, data)
	r := admin(t, work, "index", "check", "--data-dir", data)
	if r.ExitCode != 0 || !regexp.MustCompile(`postern\.db: \d+ bytes, \d+ pages of 4096 bytes, checked in .*: ok \(.*chain 9.*sessions 4\)`).Match(r.Stdout) {
		t.Fatalf("index check: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	r = admin(t, work, "index", "check", "--json", "--data-dir", data)
	var rep struct {
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal(r.Stdout, &rep); err != nil || r.ExitCode != 0 || !rep.OK || rep.Problems == nil {
		t.Fatalf("index check --json: %d %s %v", r.ExitCode, r.Stdout, err)
	}
	r = admin(t, work, "index", "rebuild", "--data-dir", data)
	if r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "nothing to rebuild (--force") {
		t.Fatalf("rebuild of a sound index: %d %s", r.ExitCode, r.Stderr)
	}
	r = admin(t, work, "index", "rebuild", "--force", "--json", "--data-dir", data)
	var out struct {
		Rebuild recorder.RebuildReport `json:"rebuild"`
		Verify  recorder.Report        `json:"verify"`
	}
	if err := json.Unmarshal(r.Stdout, &out); err != nil || r.ExitCode != 0 || out.Rebuild.Kept != 9 || len(out.Verify.Problems) != 0 || len(out.Verify.Rebuilds) != 1 {
		t.Fatalf("rebuild --force --json: %d %v %s %s", r.ExitCode, err, r.Stdout, r.Stderr)
	}
	for _, args := range [][]string{{"index"}, {"index", "fix"}, {"index", "check", "extra"}, {"index", "rebuild", "--nope"}} {
		if code, _, stderr := runCLI(t, args...); code != 2 || !strings.HasPrefix(stderr, "postern: ") {
			t.Fatalf("%v: exit %d %q", args, code, stderr)
		}
	}
}

// TestUndecodableEntryNamesIndexCheck: a sessions record that does not
// decode makes `sessions` and `play` exit 1 with a message that names the
// entry and the command to run; `index check` then names it too, and
// `index rebuild` makes the index whole again.
func TestUndecodableEntryNamesIndexCheck(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	sealedDir(t, data, "last\r\n")
	db, err := bolt.Open(filepath.Join(data, recorder.IndexFile), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("sessions")).Put([]byte("01B-1"), []byte("not json")) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"sessions"}, {"sessions", "--json"}, {"play", "--cat", "01B-1"}} {
		r := admin(t, work, append(args, "--data-dir", data)...)
		if r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "sessions entry 01B-1 does not decode") ||
			!strings.Contains(string(r.Stderr), "'postern index check' shows what is wrong") {
			t.Fatalf("%v: exit %d: %s", args, r.ExitCode, r.Stderr)
		}
	}
	if r := admin(t, work, "index", "check", "--data-dir", data); r.ExitCode != 1 || !strings.Contains(string(r.Stdout), "record does not decode") {
		t.Fatalf("index check: exit %d: %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, work, "index", "rebuild", "--data-dir", data); r.ExitCode != 0 {
		t.Fatalf("index rebuild: exit %d: %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, work, "sessions", "--data-dir", data); r.ExitCode != 0 {
		t.Fatalf("sessions after the rebuild: exit %d: %s", r.ExitCode, r.Stderr)
	}
}
