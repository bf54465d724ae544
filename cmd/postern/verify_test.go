package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/recorder"
)

// sealRecording writes a small recording into dir and seals it in store.
func sealRecording(t *testing.T, store *testStore, id, text string) {
	t.Helper()
	sealRecordingAt(t, store, id, text, time.Now())
}

// sealRecordingAt is sealRecording, ended at end (see sealSession).
func sealRecordingAt(t *testing.T, store *testStore, id, text string, end time.Time) {
	t.Helper()
	rel := filepath.Join("recordings", "2026", "11", "25", id+".cast")
	rec := recorder.Session{ID: id, Identity: "alice", Target: "db01", Login: "root", Path: rel}
	sealSession(t, store, rec, filepath.Join(store.Dir(), rel), text, end)
}

// sealedDir makes (or completes) the keys of data directory dir and seals
// three recordings in it, the last one printing last.
func sealedDir(t *testing.T, dir, last string) (*testStore, *certs.Authority) {
	t.Helper()
	auth, err := certs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	store := openTestStore(dir, auth.AuditKey)
	sealRecording(t, store, "01A-1", "first\r\n")
	sealRecording(t, store, "01B-1", "second\r\n")
	sealRecording(t, store, "01C-1", last)
	return store, auth
}

var headLine = regexp.MustCompile(`(?m)^chain head: (\d+:[0-9a-f]{64})$`)

// TestVerifyPinnedKeyAndAnchors: verify needs no private key and changes
// nothing; a chain cut short or re-signed with another key passes a plain
// verify (the data directory vouches for itself) but fails against an
// anchor and a pinned public key kept elsewhere.
func TestVerifyPinnedKeyAndAnchors(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, auth := sealedDir(t, data, "the evidence\r\n")

	// The auditor's copies, kept off the bastion: the public key and the
	// chain head printed by a clean verify.
	r := admin(t, work, "ca", "show", "--audit", "--data-dir", data)
	if r.ExitCode != 0 {
		t.Fatalf("ca show --audit: %d %s", r.ExitCode, r.Stderr)
	}
	pinned := filepath.Join(work, "audit.pub")
	os.WriteFile(pinned, r.Stdout, 0o644)
	r = admin(t, work, "verify", "--data-dir", data)
	m := headLine.FindSubmatch(r.Stdout)
	if r.ExitCode != 0 || m == nil || !strings.HasPrefix(string(m[1]), "5:") || !strings.Contains(string(r.Stderr), "--audit-key") {
		t.Fatalf("clean verify: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	anchor := string(m[1])

	// An auditor without the private key: verify reads the .pub file,
	// or the pinned copy, and creates no key in its place.
	caDir := filepath.Join(data, "ca")
	if err := os.Rename(filepath.Join(caDir, certs.AuditKeyFile), filepath.Join(work, "audit_ed25519.away")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(caDir)
	for _, args := range [][]string{{}, {"--audit-key", pinned, "--anchor", anchor}} {
		r = admin(t, work, append([]string{"verify", "--data-dir", data}, args...)...)
		if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "chain head: "+anchor) {
			t.Fatalf("verify %v without the private key: %d %s %s", args, r.ExitCode, r.Stdout, r.Stderr)
		}
	}
	if r := admin(t, work, "verify", "--data-dir", data, "--audit-key", pinned); strings.Contains(string(r.Stderr), "--audit-key") {
		t.Fatalf("a pinned key still gets the note about pinning: %s", r.Stderr)
	}
	if r := admin(t, work, "ca", "show", "--audit", "--data-dir", data); r.ExitCode != 0 || string(r.Stdout) != string(mustRead(t, pinned)) {
		t.Fatalf("ca show --audit without the private key: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// With neither half there, ca show --audit fails rather than make a
	// key for someone to pin.
	os.Rename(filepath.Join(caDir, certs.AuditKeyFile+".pub"), filepath.Join(work, "audit.pub.away"))
	if r := admin(t, work, "ca", "show", "--audit", "--data-dir", data); r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "no audit key") {
		t.Fatalf("ca show --audit without a key: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	os.Rename(filepath.Join(work, "audit.pub.away"), filepath.Join(caDir, certs.AuditKeyFile+".pub"))
	// Plain ca show is read-only too: a missing key is reported, not made.
	up := filepath.Join(caDir, certs.UpstreamCAFile)
	os.Rename(up, up+".away")
	os.Rename(up+".pub", up+".pub.away")
	if r := admin(t, work, "ca", "show", "--data-dir", data); r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "no upstream CA") {
		t.Fatalf("ca show without the upstream CA: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(up); err == nil {
		t.Fatal("ca show created an upstream CA")
	}
	os.Rename(up+".away", up)
	os.Rename(up+".pub.away", up+".pub")
	after, _ := os.ReadDir(caDir)
	if !slices.EqualFunc(before, after, func(a, b os.DirEntry) bool { return a.Name() == b.Name() }) {
		t.Fatalf("verify changed %s: %v, then %v", caDir, before, after)
	}
	os.Rename(filepath.Join(work, "audit_ed25519.away"), filepath.Join(caDir, certs.AuditKeyFile))

	// Bad input: exit 2, a message that says what is wrong, nothing run.
	twoKeys := filepath.Join(work, "ca-show.txt")
	os.WriteFile(twoKeys, admin(t, work, "ca", "show", "--data-dir", data).Stdout, 0o644)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--anchor", "2"}, "SEQ:SHA256"},
		{[]string{"--anchor", "2:abc"}, "not a hex SHA-256"},
		{[]string{"--audit-key", twoKeys}, "more than one key"},
		{[]string{"--audit-key", filepath.Join(work, "missing.pub")}, "ca show --audit"},
		// Flag parsing stops at a stray argument: the key after it
		// must not be silently ignored.
		{[]string{anchor, "--audit-key", twoKeys}, "unexpected argument"},
	} {
		r := admin(t, work, append([]string{"verify", "--data-dir", data}, tc.args...)...)
		if r.ExitCode != 2 || !strings.Contains(string(r.Stderr), tc.msg) {
			t.Fatalf("verify %v: exit %d, stderr %q; want 2 and %q", tc.args, r.ExitCode, r.Stderr, tc.msg)
		}
	}

	// Attack 1: the newest session removed from the end of the chain,
	// the index and the disk. Everything left is consistent.
	copyTree(t, data, filepath.Join(work, "cut"))
	cut := filepath.Join(work, "cut")
	cutStore := openTestStore(cut, auth.AuditKey)
	dropLastSeal(t, cutStore, "01C-1")
	if r := admin(t, work, "verify", "--data-dir", cut); r.ExitCode != 0 {
		t.Fatalf("the cut chain should pass without an anchor (that is why anchors exist): %d %s", r.ExitCode, r.Stdout)
	}
	r = admin(t, work, "verify", "--data-dir", cut, "--anchor", anchor)
	if r.ExitCode != 1 || !strings.Contains(string(r.Stdout), "chain entry 5: chain truncated") || !strings.Contains(string(r.Stdout), "chain head (not verified): 3:") {
		t.Fatalf("verify --anchor on a cut chain: %d %s", r.ExitCode, r.Stdout)
	}

	// Attack 2: the whole index and chain rebuilt and re-signed with a
	// new key, which replaces the old one in the data directory, around
	// an edited recording.
	forged := filepath.Join(work, "forged")
	copyTree(t, data, forged)
	os.Remove(filepath.Join(forged, "postern.db"))
	os.RemoveAll(filepath.Join(forged, "recordings"))
	for _, f := range []string{certs.AuditKeyFile, certs.AuditKeyFile + ".pub"} {
		os.Remove(filepath.Join(forged, "ca", f))
	}
	sealedDir(t, forged, "nothing happened\r\n") // with a fresh audit key
	if r := admin(t, work, "verify", "--data-dir", forged); r.ExitCode != 0 {
		t.Fatalf("the forged directory vouches for itself: %d %s", r.ExitCode, r.Stdout)
	}
	r = admin(t, work, "verify", "--data-dir", forged, "--audit-key", pinned)
	if r.ExitCode != 1 || strings.Count(string(r.Stdout), "bad signature") != 6 {
		t.Fatalf("verify with the pinned key: %d %s", r.ExitCode, r.Stdout)
	}
	r = admin(t, work, "verify", "--data-dir", forged, "--anchor", anchor)
	if r.ExitCode != 1 || !strings.Contains(string(r.Stdout), "chain entry 5: chain rewritten") {
		t.Fatalf("verify --anchor on a rewritten chain: %d %s", r.ExitCode, r.Stdout)
	}
	if r := admin(t, work, "verify", "--data-dir", forged, "--anchor", anchor, "--json"); r.ExitCode != 1 || !strings.Contains(string(r.Stdout), `"head_verified": false`) {
		t.Fatalf("verify --json on a rewritten chain: %d %s", r.ExitCode, r.Stdout)
	}
	// A prune is a chain entry too, and says where the chain now stands.
	sealRecordingAt(t, store, "00Z-1", "last year\r\n", time.Now().AddDate(-1, 0, -1))
	r = admin(t, work, "recordings", "prune", "--data-dir", data, "--json")
	pm := regexp.MustCompile(`chain head: (8:[0-9a-f]{64})`).FindSubmatch(r.Stderr)
	if r.ExitCode != 0 || pm == nil || !strings.Contains(string(r.Stdout), `"id": "00Z-1"`) {
		t.Fatalf("prune: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, work, "verify", "--data-dir", data, "--anchor", anchor, "--anchor", string(pm[1])); r.ExitCode != 0 {
		t.Fatalf("verify after prune: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// The original still verifies against both.
	if r := admin(t, work, "verify", "--data-dir", data, "--audit-key", pinned, "--anchor", anchor, "--json"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), `"audit_key_pinned": true`) || !strings.Contains(string(r.Stdout), `"head_verified": true`) {
		t.Fatalf("original: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(filepath.Join(to, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dropLastSeal removes a session's recording, its index entry and the
// chain's last two entries (its begin and seal), as someone with write
// access to the data would.
func dropLastSeal(t *testing.T, s *testStore, id string) {
	t.Helper()
	rec, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(s.Dir(), rec.Path))
	db, err := bolt.Open(filepath.Join(s.Dir(), "postern.db"), 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("sessions")).Delete([]byte(id)); err != nil {
			return err
		}
		// The session's begin and seal, the newest two entries.
		for range 2 {
			k, _ := tx.Bucket([]byte("chain")).Cursor().Last()
			if err := tx.Bucket([]byte("chain")).Delete(bytes.Clone(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
