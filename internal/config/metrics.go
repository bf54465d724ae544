package config

// Metrics is the metrics section: a plain-HTTP listener of its own that
// serves Prometheus metrics (/metrics) and health (/healthz, /readyz),
// whether or not the login API is configured. Parse fills every field.
type Metrics struct {
	// Listen is the listener's host:port. Required.
	Listen string
}

// metrics reads the metrics section into c; c.Metrics stays nil when it
// is absent. Metrics carry counts, never names or addresses, but they are
// served without TLS or authentication: an address that is not loopback
// gets a warning.
func (p *parser) metrics(f field, c *Config) error {
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "listen")
	if err != nil {
		return err
	}
	l := m.get("listen")
	listen, err := p.requiredWhat(l, checkListen, `the address metrics are served on, like "127.0.0.1:9100"`)
	if err != nil {
		return err
	}
	if !loopbackListen(listen) {
		p.warnf(l.line(), l.path, "%q is not a loopback address: metrics are served over plain HTTP without authentication; let only your Prometheus reach it (firewall), or listen on 127.0.0.1", listen)
	}
	c.Metrics = &Metrics{Listen: listen}
	return nil
}
