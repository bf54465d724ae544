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
