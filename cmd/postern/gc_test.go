package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestServeGarbageCollector: serve applies the performance section (or
// its defaults, the memory limit sized for limits.max_connections when
// the file sets it) and logs the settings in use at start and where each
// came from, as the README's "Garbage collector and memory" says; then a
// session still works.
func TestServeGarbageCollector(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		g := gcLine(t, s.logs.String())
		if g.GCPercent != 400 || g.GCPercentFrom != "default" || !strings.HasPrefix(g.MemoryLimitFrom, "derived: 256 MiB + 4 MiB × 256 sessions") {
			t.Fatalf("default garbage collector settings: %+v", g)
		}
	}
	s.stop(t)
	base, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each config in turn: the derived limit follows the connection cap
	// the file sets, unless performance.sessions is set; a fixed limit
	// wins over both.
	configs := []struct {
		extra string
		check func(gcLog) bool
	}{
		{"limits:\n  max_connections: 300\n", func(g gcLog) bool {
			return g.GCPercent == 400 && strings.HasPrefix(g.MemoryLimitFrom, "derived: 256 MiB + 4 MiB × 300 sessions (limits.max_connections)")
		}},
		{"limits:\n  max_connections: 300\nperformance:\n  sessions: 100\n", func(g gcLog) bool {
			return strings.HasPrefix(g.MemoryLimitFrom, "derived: 256 MiB + 4 MiB × 100 sessions (performance.sessions)")
		}},
		{"limits:\n  max_connections: 300\nperformance:\n  gc_percent: 300\n  memory_limit_mib: 700\n", func(g gcLog) bool {
			return g.GCPercent == 300 && g.MemoryLimitMiB == 700 && g.MemoryLimitFrom == "config performance.memory_limit_mib"
		}},
	}
	for i, tt := range configs {
		os.WriteFile(s.cfg, append(base[:len(base):len(base)], tt.extra...), 0o600)
		off := s.logs.End()
		s.start(t)
		if g := gcLine(t, s.logs.Since(off)); os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" && !tt.check(g) {
			t.Fatalf("garbage collector settings with\n%s: %+v", tt.extra, g)
		}
		if i < len(configs)-1 {
			s.stop(t)
		}
	}
	if r := s.ssh(t, nil, "echo gc-ok"); r.ExitCode != 0 || string(r.Stdout) != "gc-ok\n" {
		t.Fatalf("ssh: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	s.stop(t)
}

type gcLog struct {
	GCPercent       int    `json:"gc_percent"`
	GCPercentFrom   string `json:"gc_percent_from"`
	MemoryLimitMiB  int64  `json:"memory_limit_mib"`
	MemoryLimitFrom string `json:"memory_limit_from"`
}

// gcLine returns the "garbage collector" line of serve's log (logged
// before it listens, so it is there once start returned).
func gcLine(t *testing.T, logs string) gcLog {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l struct {
			Msg string `json:"msg"`
			gcLog
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "garbage collector" {
			return l.gcLog
		}
	}
	t.Fatalf("no garbage collector line in serve's log:\n%s", logs)
	return gcLog{}
}
