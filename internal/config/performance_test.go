package config_test

import (
	"testing"

	"github.com/postern/postern/internal/config"
)

// TestPerformance: the performance section's keys are read, left out they
// are zero (the defaults), and a value out of range names key and line.
func TestPerformance(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Performance != (config.Performance{}) {
		t.Fatalf("default performance = %+v, want zero", c.Performance)
	}
	c, err = config.Parse("postern.yaml", []byte(minimal+"performance:\n  gc_percent: 200\n  memory_limit_mib: 2048\n  sessions: 500\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.Performance{GCPercent: 200, MemoryLimitMiB: 2048, Sessions: 500}); c.Performance != want {
		t.Fatalf("performance = %+v, want %+v", c.Performance, want)
	}
	// The connection cap is noted only when the file sets it: the
	// derived memory limit follows it then, not the default cap.
	for _, tt := range []struct {
		data string
		want config.Performance
	}{
		{"limits:\n  max_connections: 2000\n", config.Performance{MaxConnections: 2000}},
		{"limits:\n  max_connections_per_identity: 8\n", config.Performance{}},
		{"limits: {max_connections: 300}\nperformance: {sessions: 100}\n", config.Performance{Sessions: 100, MaxConnections: 300}},
	} {
		c, err := config.Parse("postern.yaml", []byte(minimal+tt.data))
		if err != nil || c.Performance != tt.want {
			t.Fatalf("%q: performance = %+v, %v; want %+v", tt.data, c.Performance, err, tt.want)
		}
	}
	for _, tt := range []struct {
		data, key, msg string
		line           int
	}{
		{"performance:\n  gc_percent: 10\n", "performance.gc_percent", "must be at least 25 and at most 10000, got 10", 12},
		{"performance:\n  memory_limit_mib: 1\n", "performance.memory_limit_mib", "must be at least 64", 12},
		{"performance:\n  sessions: 0\n", "performance.sessions", "must be at least 1", 12},
		{"performance:\n  sessions: many\n", "performance.sessions", "must be a whole number", 12},
		{"performance:\n  gogc: 400\n", "performance.gogc", "unknown key", 12},
	} {
		_, err := config.Parse("postern.yaml", []byte(minimal+tt.data))
		if err == nil {
			t.Fatalf("%q: no error", tt.data)
		}
		checkError(t, err, "postern.yaml", tt.line, tt.key, tt.msg)
	}
}
