package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/bastion"
)

// Defaults of the session_limits section.
const (
	defaultMaxSessionDuration = 12 * time.Hour
	defaultRecordingMaxSize   = 1 << 30 // 1 GiB
	defaultMinFreeDisk        = 1 << 30 // 1 GiB
)

// defaultSessionLimits are the limits when the file sets none: every
// limit on, and a session that reaches a recording limit ends (fail
// closed).
func defaultSessionLimits() bastion.SessionLimits {
	return bastion.SessionLimits{
		MaxDuration:      defaultMaxSessionDuration,
		RecordingMaxSize: defaultRecordingMaxSize,
		MinFreeDisk:      defaultMinFreeDisk,
	}
}

// sessionLimits reads the session_limits mapping into l, over the
// defaults.
func (p *parser) sessionLimits(f field, l *bastion.SessionLimits) error {
	*l = defaultSessionLimits()
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "max_duration", "recording_max_size", "on_recording_limit", "min_free_disk")
	if err != nil {
		return err
	}
	if l.MaxDuration, err = p.duration(m.get("max_duration"), l.MaxDuration); err != nil {
		return err
	}
	if f := m.get("recording_max_size"); f.set() {
		n, err := p.size(f)
		if err != nil {
			return err
		}
		if n != 0 && n < 64<<10 {
			return p.errorf(f.line(), f.path, "must be at least 64KiB (a recording's header and a screenful), or 0 for no limit; got %d bytes", n)
		}
		l.RecordingMaxSize = n
	}
	if f := m.get("on_recording_limit"); f.set() {
		s, err := p.str(f, nil)
		if err != nil {
			return err
		}
		switch s {
		case "end":
			l.StopRecordingAtLimit = false
		case "stop_recording":
			l.StopRecordingAtLimit = true
		default:
			return p.errorf(f.line(), f.path, "must be end (end the session, the default) or stop_recording (keep it going unrecorded), got %q", s)
		}
	}
	if f := m.get("min_free_disk"); f.set() {
		n, err := p.size(f)
		if err != nil {
			return err
		}
		l.MinFreeDisk = uint64(n)
	}
	return nil
}

// sizeUnits are the units a size may end in, longest first.
var sizeUnits = []struct {
	name string
	mult int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// size returns a set field's value as a number of bytes: a whole number
// (bytes) or a whole number with a unit, like 512MiB or 1GiB.
func (p *parser) size(f field) (int64, error) {
	s, err := p.scalarString(f.val, f.path, nil)
	if err != nil {
		return 0, err
	}
	n, err := parseSize(s)
	if err != nil {
		return 0, p.errorf(f.line(), f.path, "%v", err)
	}
	return n, nil
}

// parseSize parses "1GiB", "512 MiB", "1048576" or "0".
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.name); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: use a whole number of bytes or one with a unit, like 512MiB or 1GiB (units B, KiB, MiB, GiB, TiB); 0 disables", s)
	}
	return n * mult, nil
}
