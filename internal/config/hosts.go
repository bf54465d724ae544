package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// checkHostName accepts a host name or address as users type it.
func checkHostName(s string) error {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:", r)) {
			return fmt.Errorf("%q is not a host name or address", s)
		}
	}
	if s == "" {
		return fmt.Errorf("empty host name")
	}
	return nil
}

// hostNames is HostNames, or the listen address's host when it names one.
func (c *Config) hostNames() []string {
	if len(c.HostNames) > 0 {
		return c.HostNames
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if ip := net.ParseIP(host); err != nil || host == "" || ip != nil && ip.IsUnspecified() {
		return nil
	}
	return []string{host}
}

// checkWebhook accepts an http or https URL with a host.
func checkWebhook(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	return nil
}
