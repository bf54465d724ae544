package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/bastion"
)

// Limits is the limits section: what clients may hold before and after
// they authenticate (see bastion.Limits). Every field is set: keys the
// file leaves out hold bastion.DefaultHandshakeTimeout and
// bastion.DefaultLimits.
type Limits struct {
	// HandshakeTimeout bounds key exchange plus authentication.
	HandshakeTimeout time.Duration
	bastion.Limits
}

func defaultLimits() Limits {
	return Limits{HandshakeTimeout: bastion.DefaultHandshakeTimeout, Limits: bastion.DefaultLimits}
}

// limits reads the limits mapping into l.
func (p *parser) limits(f field, l *Limits) error {
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "handshake_timeout", bastion.LimitStartups, bastion.LimitStartupsPerSource,
		bastion.LimitAuthFailures, "auth_failure_window", "auth_block",
		bastion.LimitConns, bastion.LimitConnsPerIdentity, bastion.LimitChannels)
	if err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		v   *time.Duration
	}{{"handshake_timeout", &l.HandshakeTimeout}, {"auth_failure_window", &l.AuthFailureWindow}, {"auth_block", &l.AuthBlock}} {
		if err := p.positiveDuration(m.get(d.key), d.v); err != nil {
			return err
		}
	}
	if f := m.get(bastion.LimitStartups); f.set() {
		s, err := p.str(f, nil)
		if err != nil {
			return err
		}
		if l.Startups, err = parseStartups(s); err != nil {
			return p.errorf(f.line(), f.path, "%v", err)
		}
	}
	for _, n := range []struct {
		key string
		v   *int
	}{
		{bastion.LimitStartupsPerSource, &l.StartupsPerSource}, {bastion.LimitAuthFailures, &l.AuthFailures},
		{bastion.LimitConns, &l.MaxConns}, {bastion.LimitConnsPerIdentity, &l.MaxConnsPerIdentity}, {bastion.LimitChannels, &l.MaxChannels},
	} {
		f := m.get(n.key)
		if !f.set() {
			continue
		}
		v, err := p.integer(f)
		if err != nil {
			return err
		}
		if v < 1 {
			return p.errorf(f.line(), f.path, "must be at least 1, got %d", v)
		}
		*n.v = v
	}
	return nil
}

// positiveDuration reads a set field into v; zero is refused, since no
// limit here can be turned off.
func (p *parser) positiveDuration(f field, v *time.Duration) error {
	if !f.set() {
		return nil
	}
	d, err := p.duration(f, *v)
	if err != nil {
		return err
	}
	if d == 0 {
		return p.errorf(f.line(), f.path, `must be more than 0, like "30s"; leave it out for the default %s`, *v)
	}
	*v = d
	return nil
}

// parseStartups reads OpenSSH's MaxStartups form "start:rate:full" (or a
// single number N, which means N:100:N).
func parseStartups(s string) (bastion.Startups, error) {
	parts := strings.Split(s, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || len(parts) != 1 && len(parts) != 3 {
			return bastion.Startups{}, fmt.Errorf(`%q is not start:rate:full, like "64:30:256"`, s)
		}
		nums[i] = n
	}
	st := bastion.Startups{Start: nums[0], Rate: 100, Full: nums[0]}
	if len(nums) == 3 {
		st = bastion.Startups{Start: nums[0], Rate: nums[1], Full: nums[2]}
	}
	return st, st.Check()
}
