package config

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/bastion"
)

// rules reads the required, non-empty rules list. Plain target names in
// rules must name one of targets.
func (p *parser) rules(f field, targets []bastion.Target) ([]bastion.Rule, error) {
	const none = "at least one rule is required: without rules the bastion refuses every connection"
	if !f.set() {
		return nil, p.errorf(f.line(), f.path, none)
	}
	items, err := p.items(f, "a list of rules")
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, p.errorf(f.line(), f.path, none)
	}
	rules := make([]bastion.Rule, 0, len(items))
	lines := make(map[string]int, len(items)) // name → line it was defined on
	var errs []error
	for i, n := range items {
		r, err := p.rule(n, index(f.path, i), targets)
		if err != nil {
			errs = append(errs, err) // and go on to the other rules
			continue
		}
		if prev, dup := lines[r.Name]; dup {
			errs = append(errs, p.errorf(nameLine(n), index(f.path, i)+".name", "duplicate rule name %q (first defined on line %d)", r.Name, prev))
			continue
		}
		lines[r.Name] = nameLine(n)
		rules = append(rules, r)
		if !matchesAny(&r, targets) {
			p.warnf(nameLine(n), index(f.path, i), "rule %q matches no target: it grants nothing", r.Name)
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return rules, nil
}

// rule reads one item of the rules list.
func (p *parser) rule(n *yaml.Node, at string, targets []bastion.Target) (bastion.Rule, error) {
	var r bastion.Rule
	m, err := p.mapping(n, at,
		"name", "principals", "groups", "targets", "target_labels", "logins", "default_login", "forwards", "remote_forwards", "port_forwarding", "agent_forwarding", "transfers", "file_pans")
	if err != nil {
		return r, err
	}
	if r.Name, err = p.required(m.get("name"), nil); err != nil {
		return r, err
	}
	if f := m.get("principals"); f.set() {
		if r.Principals, err = p.strList(f, checkNotEmpty); err != nil {
			return r, err
		}
	}
	if f := m.get("groups"); f.set() {
		if r.Groups, err = p.strList(f, checkNotEmpty); err != nil {
			return r, err
		}
	}
	if len(r.Principals) == 0 && len(r.Groups) == 0 {
		return r, p.errorf(m.node.Line, at, `set principals or groups (or both); "*" matches everyone`)
	}
	if f := m.get("targets"); f.set() {
		if r.Targets, err = p.strList(f, targetPattern(targets)); err != nil {
			return r, err
		}
	}
	if f := m.get("target_labels"); f.set() {
		if r.TargetLabels, err = p.strMap(f); err != nil {
			return r, err
		}
	}
	if len(r.Targets) == 0 && len(r.TargetLabels) == 0 {
		return r, p.errorf(m.node.Line, at, `set targets or target_labels (or both); targets: ["*"] matches every target`)
	}
	f := m.get("logins")
	if f.set() {
		if r.Logins, err = p.strList(f, checkRuleLogin); err != nil {
			return r, err
		}
	}
	if len(r.Logins) == 0 {
		return r, p.errorf(f.line(), f.path, `required: list the logins this rule allows, or "*" for any`)
	}
	if f := m.get("default_login"); f.set() {
		if r.DefaultLogin, err = p.str(f, checkName); err != nil {
			return r, err
		}
		if !slices.Contains(r.Logins, r.DefaultLogin) && !slices.Contains(r.Logins, "*") {
			return r, p.errorf(f.line(), f.path, "%q is not in logins %v", r.DefaultLogin, r.Logins)
		}
	}
	if err := p.ruleForwardKeys(m, &r, targets); err != nil {
		return r, err
	}
	if f := m.get("transfers"); f.set() {
		// An empty list is allowed: it grants no file transfer.
		if r.Transfers, err = p.strList(f, oneOf(bastion.TransferKinds)); err != nil {
			return r, err
		}
	}
	if f := m.get("file_pans"); f.set() {
		if r.FilePANs, err = p.str(f, oneOf([]string{bastion.FilePANsBlock, bastion.FilePANsMask, bastion.FilePANsAllow})); err != nil {
			return r, err
		}
	}
	return r, nil
}

// oneOf returns a check that accepts only the listed words.
func oneOf(words []string) func(string) error {
	return func(s string) error {
		if !slices.Contains(words, s) {
			return fmt.Errorf("%q is not one of %s", s, strings.Join(words, ", "))
		}
		return nil
	}
}

func checkNotEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// targetPattern returns a check for a rule's targets entry: a valid
// path.Match pattern, and if it has no pattern characters, the name of one
// of targets (a typo there would silently grant nothing).
func targetPattern(targets []bastion.Target) func(string) error {
	return func(pat string) error {
		if pat == "" {
			return errors.New("must not be empty")
		}
		if _, err := path.Match(pat, ""); err != nil {
			return fmt.Errorf("%q is not a valid pattern: %v", pat, err)
		}
		if strings.ContainsAny(pat, `*?[\`) || targets == nil {
			// targets is nil when the list itself was bad (reported
			// there): no name can be checked against it.
			return nil
		}
		for _, t := range targets {
			if t.Name == pat {
				return nil
			}
		}
		return fmt.Errorf("unknown target %q: no target has that name", pat)
	}
}

// matchesAny reports whether rule r selects one of targets, with the
// bastion policy's own matching.
func matchesAny(r *bastion.Rule, targets []bastion.Target) bool {
	for i := range targets {
		if r.MatchesTarget(&targets[i]) {
			return true
		}
	}
	return false
}
