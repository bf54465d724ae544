package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/bastion"
)

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
	// is sized for. Zero means MaxConnections, or without it the default
	// (256); at least 1.
	Sessions int
	// MaxConnections is limits.max_connections when the file sets it,
	// zero when it leaves it out: with Sessions zero, the derived memory
	// limit is sized for the connection cap (within bounds, see
	// internal/app's GCFor) rather than the default.
	MaxConnections int
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

// connectionCap returns the connection cap read into l when the limits
// mapping f sets max_connections, and 0 when it leaves it out (l then
// holds the default, which the derived memory limit does not follow).
func connectionCap(f field, l Limits) int {
	if !f.set() {
		return 0
	}
	n := deref(f.val)
	if n.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if deref(n.Content[i]).Value == bastion.LimitConns && !isNull(deref(n.Content[i+1])) {
			return l.MaxConns
		}
	}
	return 0
}
