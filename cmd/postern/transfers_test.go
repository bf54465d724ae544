package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/recorder"
)

// TestSessionsShowTransfers: a transfer channel's file records appear
// under its row in `sessions`, and whole in `sessions --json`.
func TestSessionsShowTransfers(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	store, _ := sealedDir(t, data, "last\r\n")
	rel := filepath.Join("recordings", "2026", "12", "05", "01T-1.cast")
	files := []recorder.Transfer{
		{Op: "download", Path: "/srv/cards.csv", Bytes: 32768, PANs: 3, Outcome: "blocked"},
		{Op: "rename", Path: "/srv/a", To: "/srv/b", Outcome: "ok"},
	}
	for i := range 25 {
		files = append(files, recorder.Transfer{Op: "upload", Path: "/srv/up/" + strings.Repeat("x", i), Bytes: int64(i), Outcome: "ok"})
	}
	sealSession(t, store, recorder.Session{ID: "01T-1", Identity: "alice", Target: "db01", Login: "root", Kind: "sftp", Path: rel, Transfers: files},
		filepath.Join(data, rel), "sftp: note\r\n", time.Now())
	r := admin(t, work, "sessions", "--data-dir", data)
	out := string(r.Stdout)
	for _, want := range []string{"download", "/srv/cards.csv", "32768 bytes", "blocked (3 card numbers)", "/srv/a -> /srv/b", "… 7 more"} {
		if r.ExitCode != 0 || !strings.Contains(out, want) {
			t.Fatalf("sessions (exit %d) lacks %q:\n%s", r.ExitCode, want, out)
		}
	}
	r = admin(t, work, "sessions", "--data-dir", data, "--json")
	var rows []recorder.Session
	if err := json.Unmarshal(r.Stdout, &rows); err != nil {
		t.Fatalf("sessions --json: %v\n%s", err, r.Stdout)
	}
	for _, row := range rows {
		if row.ID == "01T-1" {
			if len(row.Transfers) != len(files) || row.Transfers[0] != files[0] {
				t.Fatalf("--json transfers %+v", row.Transfers)
			}
			return
		}
	}
	t.Fatalf("--json has no 01T-1: %s", r.Stdout)
}
