package config

// Performance is the performance section: how the Go runtime's garbage
// collector is tuned (see internal/app's TuneGC for how the defaults are
// derived, and the GOGC and GOMEMLIMIT environment variables, which win).
type Performance struct {
	// GCPercent is the garbage collector's target (GOGC): a collection
	// starts when the heap has grown by this percent since the last.
	// Zero means the default (400); at least 25, at most 10000.
	GCPercent int
	// MemoryLimitMiB is the soft memory limit (GOMEMLIMIT) in MiB, which
	// makes the collector run more often as the heap nears it. Zero
	// means derived from Sessions; at least 64.
	MemoryLimitMiB int
	// Sessions is how many concurrent sessions the derived memory limit
	// is sized for. Zero means the default (256); at least 1.
	Sessions int
}

// Bounds of the performance keys.
const (
	minGCPercent   = 25
	maxGCPercent   = 10000
	minMemoryLimit = 64
)

// performance reads the performance mapping into perf.
func (p *parser) performance(f field, perf *Performance) error {
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "gc_percent", "memory_limit_mib", "sessions")
	if err != nil {
		return err
	}
	for _, k := range []struct {
		key string
		dst *int
		min int
		max int
	}{
		{"gc_percent", &perf.GCPercent, minGCPercent, maxGCPercent},
		{"memory_limit_mib", &perf.MemoryLimitMiB, minMemoryLimit, 1 << 30},
		{"sessions", &perf.Sessions, 1, 1 << 20},
	} {
		f := m.get(k.key)
		if !f.set() {
			continue
		}
		n, err := p.integer(f)
		if err != nil {
			return err
		}
		if n < k.min || n > k.max {
			return p.errorf(f.line(), f.path, "must be at least %d and at most %d, got %d", k.min, k.max, n)
		}
		*k.dst = n
	}
	return nil
}
