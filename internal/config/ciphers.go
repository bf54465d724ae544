package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/postern/postern/bastion"
)

// ciphers reads the ciphers list into c.
func (p *parser) ciphers(f field, c *Config) error {
	if !f.set() {
		return nil
	}
	var err error
	if c.Ciphers, err = p.strList(f, checkCipher); err != nil {
		return err
	}
	if len(c.Ciphers) == 0 {
		return p.errorf(f.val.Line, f.path, "must name at least one cipher; leave ciphers out for the default %v", bastion.DefaultCiphers)
	}
	return nil
}

// checkCipher accepts the SSH cipher names the bastion supports.
func checkCipher(s string) error {
	if slices.Contains(bastion.SupportedCiphers(), s) {
		return nil
	}
	return fmt.Errorf("%q is not a supported cipher; use some of %s", s, strings.Join(bastion.SupportedCiphers(), ", "))
}
