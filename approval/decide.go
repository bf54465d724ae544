package approval

import (
	"fmt"
	"strings"
)

// Verdict is what a Policy decides about one line.
type Verdict struct {
	// Action is the most restrictive action among the line's commands:
	// Deny over Approve over Allow. Allow when no rule matched.
	Action Action
	// Rule is the rule behind Action (the first command's, among the
	// commands with that action); nil when no rule matched. It points
	// into the Policy. When commands are held by different rules, the
	// others are in Commands (a workflow may ask each rule's approvers).
	Rule *Rule
	// Reason says why, for the requester and the approvers: which
	// command matched which rule, or why the line cannot be judged.
	// Words from the line are quoted with control characters escaped.
	Reason string
	// Commands are the line's commands with the rule each matched.
	Commands []Command
}

// Decide decides line, typed or sent by s. Each command of the line (see
// Commands) gets the first rule in scope that matches it; the line gets
// the most restrictive of those. Decide is deterministic and safe for
// concurrent use. A nil s is a Subject with no fields set.
func (p *Policy) Decide(s *Subject, line string) Verdict {
	return p.decide(s, Commands(line))
}

// decide decides a line made of cmds.
func (p *Policy) decide(s *Subject, cmds []Command) Verdict {
	return p.decideBy(s, cmds, commandRules, "no commands")
}

// ruleKind is what a kind of input (command lines, SQL) needs of the
// rules: which judge it, and which of those matches a command.
type ruleKind struct {
	judges  func(r *Rule) bool
	matches func(r *Rule, c *Command) bool
	all     func(r *Rule) bool // r matches any command of the kind
}

var commandRules = ruleKind{
	judges:  func(r *Rule) bool { return len(r.Match.SQL) == 0 },
	matches: func(r *Rule, c *Command) bool { return r.Match.matches(c, r.action() != Allow) },
	all:     func(r *Rule) bool { return r.Match.All() },
}

// decideBy gives each of cmds the first rule of kind in scope of s that
// matches it, and the verdict the most restrictive of their actions.
func (p *Policy) decideBy(s *Subject, cmds []Command, kind ruleKind, none string) Verdict {
	if s == nil {
		s = &Subject{}
	}
	var rules []*Rule // in scope, in order
	for i := range p.Rules {
		if r := &p.Rules[i]; r.Access != AccessRequest && kind.judges(r) && r.Scope.In(s) {
			rules = append(rules, r)
		}
	}
	d := Verdict{Action: Allow, Commands: cmds, Reason: "no rule matches"}
	if len(cmds) == 0 {
		d.Reason = none
	}
	for i := range cmds {
		c := &cmds[i]
		r := first(rules, c, kind)
		if r == nil {
			c.Action = Allow
			continue
		}
		c.Rule, c.Action = r.Name, r.action()
		if c.Action > d.Action || d.Rule == nil {
			d.Action, d.Rule, d.Reason = c.Action, r, reason(c, r)
		}
	}
	return d
}

// first returns the first of rules that matches c, or nil. A command that
// cannot be judged could be any command: it gets the first rule that
// matches every command; failing that, it is held by the first approve
// rule, or failing that refused by the first deny rule: it fails closed.
func first(rules []*Rule, c *Command, kind ruleKind) *Rule {
	if c.Unjudged != "" {
		var approve, deny *Rule
		for _, r := range rules {
			switch {
			case kind.all(r):
				return r
			case r.action() == Approve && approve == nil:
				approve = r
			case r.action() == Deny && deny == nil:
				deny = r
			}
		}
		if approve != nil {
			return approve
		}
		return deny
	}
	for _, r := range rules {
		if kind.matches(r, c) {
			return r
		}
	}
	return nil
}

// matches reports whether m matches c. closed is the answer when Args must
// be checked against arguments that are not known.
func (m *Match) matches(c *Command, closed bool) bool {
	switch {
	case m.All():
		return true
	case m.Regex != nil:
		return m.Regex.MatchString(c.Text())
	case !contains(m.Commands, c.Name):
		return false
	case m.Args == nil:
		return true
	case !c.ArgsKnown:
		return closed
	}
	return m.Args.MatchString(strings.Join(c.Args, " "))
}

// action is r's action; one that is not valid denies.
func (r *Rule) action() Action {
	if r.Action < Allow || r.Action > Deny {
		return Deny
	}
	return r.Action
}

// reason says why c got rule r.
func reason(c *Command, r *Rule) string {
	if c.Unjudged != "" {
		return fmt.Sprintf("cannot judge %s; rule %q applies", c.Unjudged, r.Name)
	}
	return fmt.Sprintf("%s matches rule %q", show(c.Text()), r.Name)
}

// DecideUnjudged decides a line its caller could not read whole, for why
// (a phrase: "a line longer than …"): as a part of a line that cannot be
// judged is decided (see first).
func (p *Policy) DecideUnjudged(s *Subject, why string) Verdict {
	return p.decide(s, []Command{{Unjudged: why}})
}
