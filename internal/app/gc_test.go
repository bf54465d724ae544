package app

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
)

// TestGCFor: GOGC and GOMEMLIMIT in the environment win, then the
// config's performance keys; without either the GC percent is 400 and
// the memory limit is derived from the sessions it is sized for
// (performance.sessions, else the connection cap within bounds, else
// 256), at most half the machine's memory.
func TestGCFor(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	const gib = int64(1) << 30
	for _, tt := range []struct {
		name     string
		perf     config.Performance
		getenv   func(string) string
		memTotal int64
		pct      int
		limit    int64
		from     string // in MemoryLimitFrom
	}{
		{"defaults", config.Performance{}, env(), 16 * gib, 400, 1280 << 20, "derived: 256 MiB + 4 MiB × 256 sessions (default)"},
		{"sessions", config.Performance{Sessions: 1000}, env(), 16 * gib, 400, (256 + 4000) << 20, "× 1000 sessions (performance.sessions)"},
		{"connection cap", config.Performance{MaxConnections: 2000}, env(), 32 * gib, 400, (256 + 8000) << 20, "× 2000 sessions (limits.max_connections)"},
		{"sessions over cap", config.Performance{Sessions: 100, MaxConnections: 2000}, env(), 16 * gib, 400, (256 + 400) << 20, "× 100 sessions (performance.sessions)"},
		{"small cap", config.Performance{MaxConnections: 5}, env(), 16 * gib, 400, (256 + 256) << 20, "× 64 sessions (limits.max_connections 5, kept within 64 to 16384)"},
		{"large cap", config.Performance{MaxConnections: 100000}, env(), 256 * gib, 400, (256 + 4*16384) << 20, "× 16384 sessions (limits.max_connections 100000, kept within 64 to 16384)"},
		{"cap capped", config.Performance{MaxConnections: 2000}, env(), 4 * gib, 400, 2 * gib, "(limits.max_connections), capped at half"},
		{"cap and fixed limit", config.Performance{MaxConnections: 2000, MemoryLimitMiB: 512}, env(), 16 * gib, 400, 512 << 20, "config performance.memory_limit_mib"},
		{"capped", config.Performance{Sessions: 1000}, env(), 2 * gib, 400, gib, "capped at half"},
		{"memory unknown", config.Performance{}, env(), 0, 400, 1280 << 20, "derived"},
		{"config", config.Performance{GCPercent: 150, MemoryLimitMiB: 512}, env(), 16 * gib, 150, 512 << 20, "config"},
		{"env", config.Performance{GCPercent: 150, MemoryLimitMiB: 512}, env("GOGC", "off", "GOMEMLIMIT", "1GiB"), 16 * gib, -1, -1, "env GOMEMLIMIT"},
		{"env GOGC only", config.Performance{}, env("GOGC", "50"), 16 * gib, 50, 1280 << 20, "derived"},
	} {
		g := GCFor(tt.perf, tt.getenv, tt.memTotal)
		if g.GCPercent != tt.pct || g.MemoryLimit != tt.limit || !strings.Contains(g.MemoryLimitFrom, tt.from) {
			t.Errorf("%s: got %+v, want GOGC %d, limit %d, from %q", tt.name, g, tt.pct, tt.limit, tt.from)
		}
	}
}

// TestTuneGC: the settings reach the runtime, and what TuneGC reports is
// what the runtime then has.
func TestTuneGC(t *testing.T) {
	if getenvAny("GOGC", "GOMEMLIMIT") {
		t.Skip("GOGC or GOMEMLIMIT is set: TuneGC keeps them")
	}
	oldPct := debug.SetGCPercent(100)
	oldLim := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPct)
		debug.SetMemoryLimit(oldLim)
	})
	g := TuneGC(config.Performance{GCPercent: 300, MemoryLimitMiB: 700})
	if got := debug.SetGCPercent(300); got != 300 || g.GCPercent != 300 {
		t.Errorf("GC percent %d, reported %d, want 300", got, g.GCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != 700<<20 || g.MemoryLimit != 700<<20 {
		t.Errorf("memory limit %d, reported %d, want %d", got, g.MemoryLimit, 700<<20)
	}
	if s := g.String(); s != "GOGC=300 (config performance.gc_percent), GOMEMLIMIT=700MiB (config performance.memory_limit_mib)" {
		t.Errorf("String() = %q", s)
	}
}

func getenvAny(keys ...string) bool {
	for _, k := range keys {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}
