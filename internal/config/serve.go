package config

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// DefaultDrain is how long a stopping bastion lets sessions end when the
// file sets no shutdown.drain.
const DefaultDrain = 30 * time.Second

// Shutdown is the shutdown section: how `postern serve` stops.
type Shutdown struct {
	// Drain is how long sessions may go on after SIGTERM or SIGINT
	// before they are closed (shutdown.drain). Default DefaultDrain;
	// more than zero (a second signal closes them at once).
	Drain time.Duration
}

// shutdown reads the shutdown mapping into s.
func (p *parser) shutdown(f field, s *Shutdown) error {
	s.Drain = DefaultDrain
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "drain")
	if err != nil {
		return err
	}
	f = m.get("drain")
	if s.Drain, err = p.duration(f, DefaultDrain); err != nil {
		return err
	}
	if s.Drain == 0 {
		return p.errorf(f.line(), f.path, `must be more than 0, like "30s": how long sessions may go on after SIGTERM; a second SIGTERM or SIGINT closes them at once`)
	}
	return nil
}

// digest is the SHA-256 of a config file's bytes, hex: what a reload
// seals in the audit chain.
func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
