package bastion

import (
	"slices"
	"strings"
)

// envAllowed reports whether Config.EnvAllow lets a client set the
// environment variable name.
func (c *conn) envAllowed(name string) bool {
	return slices.ContainsFunc(c.s.cfg.EnvAllow, func(p string) bool {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(name, prefix)
		}
		return p == name
	})
}
