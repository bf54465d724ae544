package config

import (
	"fmt"
	"net"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/bastion"
)

// targetForwards reads a target's forward list: each item a port (1 to
// 65535, once) and its protocol. Errors name the target. Ports that reach
// an SSH server (22, the port of the target's own address) are refused: a
// forward to one would carry a session the bastion cannot see.
func (p *parser) targetForwards(f field, t *bastion.Target) error {
	items, err := p.items(f, "a list of forwards, like [{port: 5432, protocol: postgres}]")
	if err != nil {
		return err
	}
	_, sshPort, _ := net.SplitHostPort(t.Address)
	lines := map[int]int{} // port → line it was declared on
	for i, n := range items {
		at := index(f.path, i)
		m, err := p.mapping(n, at, "port", "protocol")
		if err != nil {
			return err
		}
		var fw bastion.Forward
		pf := m.get("port")
		if !pf.set() {
			return p.errorf(n.Line, at+".port", "target %q: required: the port on the target to forward to", t.Name)
		}
		if fw.Port, err = p.integer(pf); err != nil {
			return err
		}
		switch {
		case fw.Port < 1 || fw.Port > 65535:
			return p.errorf(pf.line(), pf.path, "target %q: port %d is not a number from 1 to 65535", t.Name, fw.Port)
		case fw.Port == 22 || strconv.Itoa(fw.Port) == sshPort:
			return p.errorf(pf.line(), pf.path, "target %q: port %d is an SSH port: a forward to it would carry an SSH session the bastion cannot see (users connect through the bastion instead)", t.Name, fw.Port)
		}
		if prev, dup := lines[fw.Port]; dup {
			return p.errorf(pf.line(), pf.path, "target %q: port %d is declared twice (first on line %d)", t.Name, fw.Port, prev)
		}
		lines[fw.Port] = pf.line()
		prf := m.get("protocol")
		if !prf.set() {
			return p.errorf(n.Line, at+".protocol", "target %q: required: tcp (opaque: counted, not recorded or masked) or postgres (parsed, recorded, masked)", t.Name)
		}
		protocol := func(s string) error {
			if err := oneOf(bastion.ForwardProtocols)(s); err != nil {
				return fmt.Errorf("target %q: %v", t.Name, err)
			}
			return nil
		}
		if fw.Protocol, err = p.str(prf, protocol); err != nil {
			return err
		}
		t.Forwards = append(t.Forwards, fw)
	}
	return nil
}

// ruleForwards reads a rule's forwards: ports, or "*" for every port its
// targets declare. A port that none of the rule's targets declares is a
// warning: it grants nothing. With remote, it reads remote_forwards:
// ports on the target, or "*" for any; a port one of the rule's targets
// declares is a warning: the bastion never listens there (another user's
// forward to it would reach this user).
func (p *parser) ruleForwards(f field, r *bastion.Rule, targets []bastion.Target, remote bool) ([]int, error) {
	var ports []int
	items, err := p.items(f, `a list of ports, like [5432, 8080], or ["*"]`)
	if err != nil {
		return nil, err
	}
	for i, n := range items {
		at := index(f.path, i)
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Value == "*" {
			ports = append(ports, bastion.AnyDeclaredPort)
			continue
		}
		port, err := p.integer(field{path: at, parent: f.val, val: n})
		if err != nil {
			return nil, p.errorf(n.Line, at, `rule %q: must be a port number or "*", got %s`, r.Name, describe(n))
		}
		if port < 1 || port > 65535 {
			return nil, p.errorf(n.Line, at, "rule %q: port %d is not a number from 1 to 65535", r.Name, port)
		}
		switch declared := declaredBy(r, targets, port); {
		case remote && declared:
			p.warnf(n.Line, at, "rule %q: a target of the rule declares port %d under forward: ssh -R is never granted on it", r.Name, port)
		case !remote && targets != nil && !declared:
			p.warnf(n.Line, at, "rule %q: none of its targets declares port %d under forward: it grants nothing", r.Name, port)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// ruleForwardKeys reads a rule's forwards, remote_forwards,
// agent_forwarding and the obsolete port_forwarding.
func (p *parser) ruleForwardKeys(m mapping, r *bastion.Rule, targets []bastion.Target) error {
	var err error
	if f := m.get("port_forwarding"); f.set() {
		if err := p.portForwarding(f); err != nil {
			return err
		}
	}
	if f := m.get("forwards"); f.set() {
		if targets == nil {
			targets = []bastion.Target{} // a bad targets list: no port is declared
		}
		if r.Forwards, err = p.ruleForwards(f, r, targets, false); err != nil {
			return err
		}
	}
	if f := m.get("remote_forwards"); f.set() {
		if r.RemoteForwards, err = p.ruleForwards(f, r, targets, true); err != nil {
			return err
		}
	}
	if f := m.get("agent_forwarding"); f.set() {
		if r.AgentForwarding, err = p.boolean(f); err != nil {
			return err
		}
	}
	return nil
}

// declaredBy reports whether a target r matches declares port.
func declaredBy(r *bastion.Rule, targets []bastion.Target, port int) bool {
	for i := range targets {
		if !r.MatchesTarget(&targets[i]) {
			continue
		}
		for _, fw := range targets[i].Forwards {
			if fw.Port == port {
				return true
			}
		}
	}
	return false
}

// portForwarding handles the key forwards replaced. Its true used to let a
// rule forward to any port, unseen; it is refused with the way to say it
// now, so that an old config does not keep a meaning it no longer has.
// false is only a warning.
func (p *parser) portForwarding(f field) error {
	on, err := p.boolean(f)
	if err != nil {
		return err
	}
	if on {
		return p.errorf(f.line(), f.path, `port_forwarding was replaced: each target declares the ports it forwards, with their protocol (forward: [{port: 5432, protocol: postgres}]), and each rule lists the ports it grants (forwards: [5432], or ["*"] for every declared port); undeclared ports are refused`)
	}
	p.warnf(f.line(), f.path, "port_forwarding is obsolete (false is the default): remove it")
	return nil
}
