package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestServeGarbageCollector: serve applies the performance section (or
// its defaults) and logs the settings in use at start, as the README's
// "Garbage collector and memory" says; then a session still works.
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
	f, err := os.OpenFile(s.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("performance:\n  gc_percent: 300\n  memory_limit_mib: 700\n")
	f.Close()
	off := s.logs.End()
	s.start(t)
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		g := gcLine(t, s.logs.Since(off))
		if g.GCPercent != 300 || g.MemoryLimitMiB != 700 || g.MemoryLimitFrom != "config performance.memory_limit_mib" {
			t.Fatalf("configured garbage collector settings: %+v", g)
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
