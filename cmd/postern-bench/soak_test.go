package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// TestSoakSmoke runs the soak phase small: two rounds of 3 sessions for 3
// seconds through the recording bastion, with no error, commands timed,
// the bastion's goroutines up while they ran, and what each round left.
func TestSoakSmoke(t *testing.T) {
	for _, p := range []string{"ssh", "sshd", "ssh-keygen"} {
		testenv.Require(t, p)
	}
	testenv.RequireRoot(t, "postern-bench starts sshd and creates users")
	out := filepath.Join(t.TempDir(), "soak.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-out", out, "-phases", "soak", "-soak-sessions", "3", "-soak-duration", "3s", "-soak-rounds", "2"},
		strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.Bytes(), stderr.Bytes())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	get := func(name string) float64 {
		f, ok := find(r.Figures, name, pathPostern, "", 3)
		if !ok {
			t.Fatalf("no figure %s:\n%s", name, stderr.Bytes())
		}
		return f.Median
	}
	if e := get(figSoakErrors); e != 0 {
		t.Errorf("%v errors:\n%s", e, stderr.Bytes())
	}
	// 3 sessions, one command a second for 3 s, twice: at least one each
	// a round.
	if n := get(figSoakCmds); n < 6 {
		t.Errorf("%v commands", n)
	}
	if p50, p99 := get(figSoakP50), get(figSoakP99); p50 <= 0 || p99 < p50 {
		t.Errorf("latency p50 %v p99 %v", p50, p99)
	}
	if before, peak := get(figSoakGorBase), get(figSoakGorPeak); peak <= before {
		t.Errorf("goroutines before %v, peak %v: the sessions did not show", before, peak)
	}
	if get(figSoakRSSPeak) <= 0 {
		t.Error("no RSS")
	}
	_, rounds, _ := strings.Cut(stderr.String(), "after each round (goroutines/RSS): ")
	if rounds, _, _ = strings.Cut(rounds, "\n"); strings.Count(rounds, " MiB") != 2 {
		t.Errorf("want what each of 2 rounds left, got %q:\n%s", rounds, stderr.Bytes())
	}
}
