package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/recorder"
)

// TestVerifyNamesActive: a session begun and not yet sealed is not a
// problem, but verify says it did not check it, by name, in its text and
// in --json, and still exits 0.
func TestVerifyNamesActive(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "done\r\n")
	for _, id := range []string{"01D-1", "01E-1"} {
		rel := filepath.Join("recordings", "2026", "11", "25", id+".cast")
		rec := recorder.Session{ID: id, Session: id, Identity: "alice", Target: "db01", Login: "root", Path: rel, Kind: "exec", Start: time.Now()}
		if err := store.Begin(rec); err != nil {
			t.Fatal(err)
		}
		// Half written, as while the session runs.
		if err := os.WriteFile(filepath.Join(data, rel), []byte(`{"version": 2`), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	r := admin(t, work, "verify", "--data-dir", data)
	want := "2 recordings still being written (active), checked once sealed: 01D-1 01E-1\n"
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), want) || !strings.Contains(string(r.Stdout), "3 recordings, ") {
		t.Fatalf("verify: %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
	}

	r = admin(t, work, "verify", "--json", "--data-dir", data)
	var doc struct {
		Recordings int
		Problems   []recorder.Problem
		Active     []recorder.Active
	}
	if err := json.Unmarshal(r.Stdout, &doc); err != nil || r.ExitCode != 0 {
		t.Fatalf("verify --json: %d %v\n%s%s", r.ExitCode, err, r.Stdout, r.Stderr)
	}
	if doc.Recordings != 3 || len(doc.Problems) != 0 || len(doc.Active) != 2 ||
		doc.Active[0].ID != "01D-1" || doc.Active[1].Path != filepath.Join("recordings", "2026", "11", "25", "01E-1.cast") {
		t.Fatalf("verify --json: %+v\n%s", doc, r.Stdout)
	}
}
