package listing

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/recorder"
)

func TestSessionsTableEscapesAndLists(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	end := start.Add(90 * time.Second)
	code := 3
	rows := []Row{{
		Session: recorder.Session{ID: "01J-1", Identity: "eve\x1b]52;c;x\a", Target: "t1", Login: "root",
			Kind: "exec", Command: "echo \u202eevil", Start: start, End: &end, ExitStatus: &code, Status: "sealed",
			Transfers: []recorder.Transfer{{Op: "download", Path: "/etc/\x9bhosts", Bytes: 12, Outcome: "ok"}}},
		Hits: []recorder.Hit{{Time: 1.5, Kind: "o", Text: "hit\x1b[2J"}},
	}}
	var out bytes.Buffer
	if err := Sessions(&out, rows); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.ContainsAny(got, "\x1b\a\u202e\u009b") {
		t.Fatalf("raw control in table:\n%q", got)
	}
	for _, want := range []string{"ID", `eve\x1b]52;c;x\x07`, "1m30s", "3", `echo \u202eevil`, "+1.5s", `hit\x1b[2J`, `/etc/\x9bhosts`, "12 bytes"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	out.Reset()
	if err := SessionsJSON(&out, rows); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || len(back) != 1 || back[0]["id"] != "01J-1" || back[0]["hits"] == nil {
		t.Fatalf("JSON %s: %v", out.Bytes(), err)
	}
	if bytes.ContainsAny(out.Bytes(), "\u202e\u009b") {
		t.Fatalf("raw bidi or C1 in JSON: %q", out.Bytes())
	}
}

// Hits and transferred files listed under a session must not break the
// alignment of the session rows: every row's TARGET starts where the
// header's does.
func TestSessionsTableRowsAlignAcrossHits(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	rows := []Row{
		{Session: recorder.Session{ID: "01J-1", Identity: "al", Target: "tgt-a", Login: "root", Kind: "shell", Status: "sealed", Start: start},
			Hits: []recorder.Hit{{Time: 1, Kind: "o", Text: "first hit"}, {Time: 2, Kind: "i", Text: "second"}}},
		{Session: recorder.Session{ID: "01J-2", Identity: "bartholomew@example.com", Target: "tgt-b", Login: "root", Kind: "exec", Status: "sealed", Start: start,
			Transfers: []recorder.Transfer{{Op: "upload", Path: "/tmp/x", Bytes: 3, Outcome: "ok"}}},
			Hits: []recorder.Hit{{Time: 3, Kind: "o", Text: "third"}}},
		{Session: recorder.Session{ID: "01J-3", Identity: "c", Target: "tgt-c", Login: "root", Kind: "exec", Status: "sealed", Start: start}},
	}
	var out bytes.Buffer
	if err := Sessions(&out, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	col := strings.Index(lines[0], "TARGET")
	seen := 0
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "01J-") {
			continue
		}
		seen++
		if i := strings.Index(l, "tgt-"); i != col {
			t.Errorf("target at column %d, header at %d:\n%s", i, col, out.String())
		}
	}
	if seen != 3 || !strings.Contains(out.String(), "  +1s") || !strings.Contains(out.String(), "/tmp/x") {
		t.Fatalf("want 3 session rows with their hits and files:\n%s", out.String())
	}
}
