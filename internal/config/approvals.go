package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/bastion"
)

// approvals reads the optional approvals list into an approval.Policy.
// Every bad rule is reported, each error naming the rule.
func (p *parser) approvals(f field, targets []bastion.Target) (approval.Policy, error) {
	var pol approval.Policy
	if !f.set() {
		return pol, nil
	}
	items, err := p.items(f, "a list of approval rules")
	if err != nil {
		return pol, err
	}
	lines := make(map[string]int, len(items)) // name → line it was defined on
	var errs []error
	for i, n := range items {
		at := index(f.path, i)
		r, err := p.approval(n, at, targets)
		if err == nil {
			if prev, dup := lines[r.Name]; dup {
				err = p.errorf(nameLine(n), at+".name", "duplicate rule name (first defined on line %d)", prev)
			}
		}
		if err != nil {
			errs = append(errs, nameRule(err, itemName(n)))
			continue
		}
		lines[r.Name] = nameLine(n)
		pol.Rules = append(pol.Rules, r)
	}
	if len(errs) > 0 {
		return approval.Policy{}, joinErrors(errs)
	}
	if len(pol.Rules) > 0 {
		p.warnf(f.line(), f.path, "approval rules judge exec commands, the lines typed in shells and access requests, but not input to full-screen programs (vim, less) nor what scripts and interpreters run")
		if slices.ContainsFunc(pol.Rules, func(r approval.Rule) bool { return len(r.Match.SQL) > 0 }) {
			p.warnf(f.line(), f.path, "sql rules judge the statements of postgres forwards as written, not what functions, procedures or triggers they call run")
		}
	}
	return pol, nil
}

// nameRule puts the rule's name in front of the message of each *Error in
// err.
func nameRule(err error, name string) error {
	if name == "" {
		return err
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *Error
		if errors.As(e, &ce) {
			ce.Msg = fmt.Sprintf("rule %q: %s", name, ce.Msg)
		}
	}
	return err
}

// approval reads one item of the approvals list.
func (p *parser) approval(n *yaml.Node, at string, targets []bastion.Target) (approval.Rule, error) {
	var r approval.Rule
	m, err := p.mapping(n, at, "name", "match", "scope", "access", "action", "approvers", "required", "timeout")
	if err != nil {
		return r, err
	}
	if r.Name, err = p.required(m.get("name"), checkRuleName); err != nil {
		return r, err
	}
	if err := p.approvalMatch(m.get("match"), &r.Match); err != nil {
		return r, err
	}
	if err := p.approvalScope(m.get("scope"), &r.Scope, targets); err != nil {
		return r, err
	}
	if f := m.get("access"); f.set() {
		if _, err := p.str(f, oneOf([]string{"open", "request"})); err != nil {
			return r, err
		}
		if f.val.Value == "request" {
			r.Access = approval.AccessRequest
		}
	}
	a, err := p.required(m.get("action"), func(s string) error { _, err := approval.ParseAction(s); return err })
	if err != nil {
		return r, err
	}
	r.Action, _ = approval.ParseAction(a)
	if err := p.approvalHold(m, &r); err != nil {
		return r, err
	}
	// The package's own check, for anything the keys above let through.
	if err := (&approval.Policy{Rules: []approval.Rule{r}}).Check(); err != nil {
		var re *approval.RuleError
		errors.As(err, &re)
		return r, p.errorf(m.node.Line, at, "%s", re.Reason)
	}
	return r, nil
}

// checkRuleName accepts a name that reads cleanly in notices and logs.
func checkRuleName(s string) error {
	if strings.TrimSpace(s) != s || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '\n' }) {
		return fmt.Errorf("%q: use letters, digits and punctuation, without leading or trailing spaces", s)
	}
	return nil
}

// approvalMatch reads the optional match mapping into m.
func (p *parser) approvalMatch(f field, m *approval.Match) error {
	if !f.set() {
		return nil // every command
	}
	mm, err := p.mapping(f.val, f.path, "commands", "args", "regex", "sql")
	if err != nil {
		return err
	}
	cmds, args, re := mm.get("commands"), mm.get("args"), mm.get("regex")
	if q := mm.get("sql"); q.set() {
		for _, o := range []field{cmds, args, re} {
			if o.set() {
				return p.errorf(o.line(), o.path, "conflicts with sql: SQL rules judge the statements of postgres forwards, not command lines; write two rules")
			}
		}
		if m.SQL, err = p.strList(q, checkSQLPattern); err != nil {
			return err
		}
		if len(m.SQL) == 0 {
			return p.errorf(q.line(), q.path, "must name at least one pattern, like [DROP, TRUNCATE]")
		}
		return nil
	}
	switch {
	case args.set() && !cmds.set():
		return p.errorf(args.line(), args.path, "needs commands: args is matched against the arguments of those commands")
	case !cmds.set() && !re.set():
		return p.errorf(f.line(), f.path, "set commands or regex; leave match out to match every command")
	case cmds.set() && re.set():
		return p.errorf(re.line(), re.path, "conflicts with commands: a rule matches by commands or by regex; write two rules")
	}
	if cmds.set() {
		if m.Commands, err = p.strList(cmds, checkCommandName); err != nil {
			return err
		}
		if len(m.Commands) == 0 {
			return p.errorf(cmds.line(), cmds.path, "must name at least one command")
		}
	}
	if m.Args, err = p.regexp(args); err != nil {
		return err
	}
	m.Regex, err = p.regexp(re)
	return err
}

// checkSQLPattern accepts a pattern on SQL commands' normalised text.
func checkSQLPattern(s string) error {
	if strings.TrimSpace(s) == "" || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return fmt.Errorf("%q is not a SQL pattern: write the statement's first words, like \"DROP\" or \"DELETE FROM cards*\"", s)
	}
	return nil
}

// checkCommandName accepts a command's base name.
func checkCommandName(s string) error {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r == '/' || unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("%q is not a command's base name: rules match rm, not /bin/rm", s)
	}
	return nil
}

// regexp compiles a set field as a Go (RE2) regular expression; nil when
// the field is not set.
func (p *parser) regexp(f field) (*regexp.Regexp, error) {
	if !f.set() {
		return nil, nil
	}
	s, err := p.str(f, nil)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, p.errorf(f.line(), f.path, "invalid regular expression (Go RE2 syntax): %v", err)
	}
	return re, nil
}

// approvalScope reads the optional scope mapping into s.
func (p *parser) approvalScope(f field, s *approval.Scope, targets []bastion.Target) error {
	if !f.set() {
		return nil // every connection
	}
	m, err := p.mapping(f.val, f.path, "targets", "target_labels", "requesters", "logins")
	if err != nil {
		return err
	}
	if f := m.get("targets"); f.set() {
		if s.Targets, err = p.strList(f, targetPattern(targets)); err != nil {
			return err
		}
	}
	if f := m.get("target_labels"); f.set() {
		if s.Labels, err = p.strMap(f); err != nil {
			return err
		}
	}
	if f := m.get("requesters"); f.set() {
		if s.Requesters, err = p.strList(f, checkRequester); err != nil {
			return err
		}
	}
	if f := m.get("logins"); f.set() {
		if s.Logins, err = p.strList(f, checkName); err != nil {
			return err
		}
	}
	return nil
}

// checkRequester accepts a principal or group:NAME, as admins does.
func checkRequester(s string) error {
	if err := bastion.CheckAdmin(s); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), "admin", "requester"))
	}
	return nil
}

// approvalHold reads approvers, required and timeout into r: they belong to
// action approve and access request only.
func (p *parser) approvalHold(m mapping, r *approval.Rule) error {
	holds := r.Action == approval.Approve || r.Access == approval.AccessRequest
	keys := []string{"approvers", "required", "timeout"}
	if !holds {
		for _, k := range keys {
			if f := m.get(k); f.set() {
				return p.errorf(f.line(), f.path, "only for action approve or access request; this rule's action is %s", r.Action)
			}
		}
		return nil
	}
	f := m.get("approvers")
	if !f.set() {
		return p.errorf(f.line(), f.path, "required: the groups whose members may approve, like [ops]")
	}
	var err error
	if r.Approvers, err = p.strList(f, checkGroupName); err != nil {
		return err
	}
	if len(r.Approvers) == 0 {
		return p.errorf(f.line(), f.path, "must name at least one group")
	}
	r.Required = 1
	if f := m.get("required"); f.set() {
		if r.Required, err = p.integer(f); err != nil {
			return err
		}
		if r.Required != 1 && r.Required != 2 {
			return p.errorf(f.line(), f.path, "must be 1 or 2 (distinct approvers), got %d", r.Required)
		}
	}
	f = m.get("timeout")
	if r.Timeout, err = p.duration(f, approval.DefaultTimeout); err != nil {
		return err
	}
	if r.Timeout == 0 || r.Timeout > approval.MaxTimeout {
		return p.errorf(f.line(), f.path, "must be more than 0 and at most %v, got %v", approval.MaxTimeout, r.Timeout)
	}
	return nil
}

// checkGroupName accepts a group name as certificates carry them: no
// comma, space or control character, and no group: prefix.
func checkGroupName(s string) error {
	if strings.HasPrefix(s, approval.GroupPrefix) {
		return fmt.Errorf("%q: approvers are groups already; write %q", s, strings.TrimPrefix(s, approval.GroupPrefix))
	}
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r == ',' || r == '*' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%q is not a group name: no commas, spaces, control characters or wildcards", s)
	}
	return nil
}
