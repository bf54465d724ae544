package app

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/postern/postern/internal/config"
)

// The garbage collector's defaults (config.Performance's zero values).
// x/crypto allocates a buffer per SSH packet, so a bulk transfer makes
// garbage at the rate it moves bytes: collecting at 400% instead of
// Go's 100% cuts the collector's share of the bastion's CPU (see the
// README's benchmark notes), and the memory limit keeps the larger heap
// bounded.
const (
	DefaultGCPercent = 400
	defaultSessions  = 256
	// baseMemoryMiB is the bastion without sessions (index, caches,
	// runtime), with room to spare.
	baseMemoryMiB = 256
	// sessionMemoryMiB is a busy session's share: x/crypto buffers up to
	// a channel window (2 MiB) on each of its two legs.
	sessionMemoryMiB = 4
	// minCapSessions and maxCapSessions bound the sessions a connection
	// cap sizes the limit for. Below 64 (512 MiB) a connection's own
	// channels (several forwards, a multiplexed client) can outgrow its
	// share and the collector would run hard for little gain; above
	// 16384 (64 GiB) the operator should say so with
	// performance.sessions (half the machine's memory caps it anyway).
	minCapSessions = 64
	maxCapSessions = 16384
)

// GCSettings are the garbage collector's settings in use, and where each
// came from ("env GOGC", "config", "default", "derived: ...").
type GCSettings struct {
	GCPercent       int    `json:"gc_percent"` // -1: off
	GCPercentFrom   string `json:"gc_percent_from"`
	MemoryLimit     int64  `json:"memory_limit_bytes"` // math.MaxInt64: none
	MemoryLimitFrom string `json:"memory_limit_from"`
}

func (g GCSettings) String() string {
	pct := strconv.Itoa(g.GCPercent)
	if g.GCPercent < 0 {
		pct = "off"
	}
	lim := "none"
	if g.MemoryLimit != math.MaxInt64 {
		lim = strconv.FormatInt(g.MemoryLimit>>20, 10) + "MiB"
	}
	return fmt.Sprintf("GOGC=%s (%s), GOMEMLIMIT=%s (%s)", pct, g.GCPercentFrom, lim, g.MemoryLimitFrom)
}

// GCFor works out the settings for p. getenv reads the environment: GOGC
// and GOMEMLIMIT, which the Go runtime has applied at start, win over the
// config and are left alone. memTotal is the machine's memory in bytes (0:
// unknown); a derived limit is at most half of it.
func GCFor(p config.Performance, getenv func(string) string, memTotal int64) GCSettings {
	var g GCSettings
	switch v := getenv("GOGC"); {
	case v != "":
		g.GCPercentFrom = "env GOGC"
		g.GCPercent = -1
		if n, err := strconv.Atoi(v); err == nil {
			g.GCPercent = n
		}
	case p.GCPercent != 0:
		g.GCPercent, g.GCPercentFrom = p.GCPercent, "config performance.gc_percent"
	default:
		g.GCPercent, g.GCPercentFrom = DefaultGCPercent, "default"
	}
	switch {
	case getenv("GOMEMLIMIT") != "":
		g.MemoryLimitFrom = "env GOMEMLIMIT"
		g.MemoryLimit = -1 // the runtime's: TuneGC reads it
	case p.MemoryLimitMiB != 0:
		g.MemoryLimit, g.MemoryLimitFrom = int64(p.MemoryLimitMiB)<<20, "config performance.memory_limit_mib"
	default:
		n, from := sessionsFor(p)
		g.MemoryLimit = int64(baseMemoryMiB+sessionMemoryMiB*n) << 20
		g.MemoryLimitFrom = fmt.Sprintf("derived: %d MiB + %d MiB × %d sessions (%s)", baseMemoryMiB, sessionMemoryMiB, n, from)
		if memTotal > 0 && g.MemoryLimit > memTotal/2 {
			g.MemoryLimit = memTotal / 2
			g.MemoryLimitFrom += ", capped at half the machine's memory"
		}
	}
	return g
}

// sessionsFor is how many sessions the derived memory limit is sized for,
// and where that came from: performance.sessions if set, else the
// connection cap (limits.max_connections) if set, kept within
// minCapSessions and maxCapSessions, else defaultSessions.
func sessionsFor(p config.Performance) (int, string) {
	switch {
	case p.Sessions != 0:
		return p.Sessions, "performance.sessions"
	case p.MaxConnections != 0:
		n := min(max(p.MaxConnections, minCapSessions), maxCapSessions)
		if n != p.MaxConnections {
			return n, fmt.Sprintf("limits.max_connections %d, kept within %d to %d", p.MaxConnections, minCapSessions, maxCapSessions)
		}
		return n, "limits.max_connections"
	}
	return defaultSessions, "default"
}

// TuneGC applies the garbage collector settings for p to this process and
// returns them. The environment's GOGC and GOMEMLIMIT are kept.
func TuneGC(p config.Performance) GCSettings {
	g := GCFor(p, os.Getenv, memTotal())
	if g.GCPercentFrom != "env GOGC" {
		debug.SetGCPercent(g.GCPercent)
	}
	if g.MemoryLimit < 0 {
		g.MemoryLimit = debug.SetMemoryLimit(-1)
	} else {
		debug.SetMemoryLimit(g.MemoryLimit)
	}
	return g
}

// memTotal is the machine's memory in bytes, from /proc/meminfo; 0 if
// unknown.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
