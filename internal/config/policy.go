package config

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/postern/postern/bastion"
)

// targets reads the required, non-empty targets list.
func (p *parser) targets(f field) ([]bastion.Target, error) {
	if !f.set() {
		return nil, p.errorf(f.line(), f.path, "at least one target is required")
	}
	items, err := p.items(f, "a list of targets")
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, p.errorf(f.line(), f.path, "at least one target is required")
	}
	targets := make([]bastion.Target, 0, len(items))
	lines := make(map[string]int, len(items)) // name → line it was defined on
	var errs []error
	for i, n := range items {
		t, err := p.target(n, index(f.path, i))
		if err != nil {
			// Go on to report the other targets' problems. A bad
			// target's name, if it has one, still counts for the
			// rules: they must not report it unknown too.
			errs = append(errs, err)
			if name := itemName(n); name != "" {
				targets = append(targets, bastion.Target{Name: name})
			}
			continue
		}
		if prev, dup := lines[t.Name]; dup {
			errs = append(errs, p.errorf(nameLine(n), index(f.path, i)+".name", "duplicate target name %q (first defined on line %d)", t.Name, prev))
			continue
		}
		lines[t.Name] = nameLine(n)
		targets = append(targets, t)
	}
	if len(errs) > 0 {
		return targets, joinErrors(errs)
	}
	return targets, nil
}

// itemName returns the name of a list item, if it is a mapping with a
// string name, else "".
func itemName(n *yaml.Node) string {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := deref(n.Content[i]), deref(n.Content[i+1]); k.Value == "name" && v.Kind == yaml.ScalarNode {
			return v.Value
		}
	}
	return ""
}

// nameLine returns the line of the name value in an item already read by
// target or rule.
func nameLine(n *yaml.Node) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			return deref(n.Content[i+1]).Line
		}
	}
	return n.Line
}

// target reads one item of the targets list.
func (p *parser) target(n *yaml.Node, at string) (bastion.Target, error) {
	var t bastion.Target
	m, err := p.mapping(n, at,
		"name", "address", "host_key", "known_hosts", "host_ca", "labels", "logins", "default_login", "masking", "forward")
	if err != nil {
		return t, err
	}
	if t.Name, err = p.required(m.get("name"), checkName); err != nil {
		return t, err
	}
	if t.Address, err = p.required(m.get("address"), nil); err != nil {
		return t, err
	}
	if t.Address, err = normalizeAddress(t.Address); err != nil {
		return t, p.errorf(m.get("address").line(), m.get("address").path, "%v", err)
	}
	if err := p.hostKey(m, &t); err != nil {
		return t, err
	}
	if f := m.get("labels"); f.set() {
		if t.Labels, err = p.strMap(f); err != nil {
			return t, err
		}
	}
	if f := m.get("logins"); f.set() {
		if t.Logins, err = p.strList(f, checkTargetLogin); err != nil {
			return t, err
		}
	}
	if f := m.get("default_login"); f.set() {
		if t.DefaultLogin, err = p.str(f, checkName); err != nil {
			return t, err
		}
		if len(t.Logins) > 0 && !slices.Contains(t.Logins, t.DefaultLogin) {
			return t, p.errorf(f.line(), f.path, "%q is not in logins %v", t.DefaultLogin, t.Logins)
		}
	}
	if f := m.get("masking"); f.set() {
		if t.Masking, err = p.str(f, checkMasking); err != nil {
			return t, err
		}
	}
	if f := m.get("forward"); f.set() {
		if err := p.targetForwards(f, &t); err != nil {
			return t, err
		}
	}
	return t, nil
}

// checkMasking accepts the PAN masking modes; off must be written out.
func checkMasking(s string) error {
	switch s {
	case "first6last4", "last4", "full", "off":
		return nil
	}
	return fmt.Errorf("%q is not a masking mode: use first6last4 (the default), last4, full, or off", s)
}

// required returns a string field that must be set and non-empty.
func (p *parser) required(f field, check func(string) error) (string, error) {
	if !f.set() {
		return "", p.errorf(f.line(), f.path, "required")
	}
	s, err := p.str(f, nil)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", p.errorf(f.line(), f.path, "must not be empty")
	}
	if check != nil {
		if err := check(s); err != nil {
			return "", p.errorf(f.line(), f.path, "%v", err)
		}
	}
	return s, nil
}

// checkName accepts what bastion.ParseUser accepts as a target or login
// name; anything else could never be connected to. The admin connection's
// user name is reserved.
func checkName(s string) error { return bastion.CheckName(s) }

// checkTargetLogin accepts a login name. A target's logins list is matched
// literally, so "*" there would allow nothing.
func checkTargetLogin(s string) error {
	if s == "*" {
		return errors.New(`"*" is not allowed in a target's logins; leave logins out to let the rules decide`)
	}
	return checkName(s)
}

// checkRuleLogin accepts a login name or "*".
func checkRuleLogin(s string) error {
	if s == "*" {
		return nil
	}
	return checkName(s)
}

// normalizeAddress checks a target address and returns it as host:port,
// adding port 22 to a bare host.
func normalizeAddress(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "22"
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		} else if strings.Contains(host, ":") {
			if _, err := netip.ParseAddr(host); err != nil {
				return "", fmt.Errorf("%q is not host:port, like \"10.0.0.5:22\" or \"db01.internal\"", s)
			}
		}
	}
	if !validHost(host) {
		return "", fmt.Errorf("invalid host %q in %q", host, s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// validHost accepts an IP address or something that could be a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// hostKeyKeys are the ways to verify a target's host key; a target sets
// exactly one.
var hostKeyKeys = []string{"host_key", "known_hosts", "host_ca"}

// hostKey reads the one of host_key, known_hosts and host_ca that m sets
// into t.
func (p *parser) hostKey(m mapping, t *bastion.Target) error {
	var set []field
	for _, k := range hostKeyKeys {
		if f := m.get(k); f.set() {
			set = append(set, f)
		}
	}
	if len(set) == 0 {
		return p.errorf(m.node.Line, m.path,
			"set one of host_key, known_hosts or host_ca: the bastion never connects to a target whose host key it cannot verify")
	}
	// Blame the key that comes later in the file.
	slices.SortFunc(set, func(a, b field) int {
		return cmp.Or(cmp.Compare(a.key.Line, b.key.Line), cmp.Compare(a.key.Column, b.key.Column))
	})
	if len(set) > 1 {
		return p.errorf(set[1].line(), set[1].path, "conflicts with %s: set exactly one of host_key, known_hosts or host_ca",
			set[0].key.Value)
	}
	which := set[0]
	s, err := p.required(which, nil)
	if err != nil {
		return err
	}
	switch which.key.Value {
	case "host_key":
		t.HostKey, err = parsePublicKey(s)
	case "host_ca":
		t.HostCA, err = parsePublicKey(s)
	case "known_hosts":
		t.KnownHostsFile = p.resolve(s)
		err = checkKnownHosts(t.KnownHostsFile)
	}
	if err != nil {
		return p.errorf(which.line(), which.path, "%v", err)
	}
	return nil
}

// parsePublicKey parses one public key in authorized_keys format without
// options, as found in a .pub file.
func parsePublicKey(s string) (ssh.PublicKey, error) {
	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, errors.New(`not an OpenSSH public key: give one line like "ssh-ed25519 AAAA... comment", as in a .pub file`)
	}
	if len(options) > 0 {
		return nil, fmt.Errorf("%q comes before the key type: give just the key as in a .pub file, without known_hosts host names or authorized_keys options",
			strings.Join(options, ","))
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("holds more than one key: give exactly one")
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, errors.New("is a certificate: give the plain public key")
	}
	return key, nil
}

// checkKnownHosts checks that name is a known_hosts file with at least one
// entry that x/crypto parses.
func checkKnownHosts(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read known_hosts file: %w", err)
	}
	if _, err := knownhosts.New(name); err != nil {
		return fmt.Errorf("parse known_hosts file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 && line[0] != '#' {
			return nil
		}
	}
	return fmt.Errorf("known_hosts file %s has no entries", name)
}
