package approval

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Action is what a rule does with a command it matches. The zero value is
// not an action: Check refuses it and Decide treats it as Deny.
type Action int

// Actions, from least to most restrictive: a line's decision is the most
// restrictive of its commands' (see Policy.Decide).
const (
	Allow   Action = iota + 1 // run it
	Approve                   // hold it until enough approvers approve
	Deny                      // refuse it
)

// String returns "allow", "approve", "deny", or "invalid".
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Approve:
		return "approve"
	case Deny:
		return "deny"
	}
	return "invalid"
}

// ParseAction returns the Action named s: allow, approve or deny.
func ParseAction(s string) (Action, error) {
	for _, a := range []Action{Allow, Approve, Deny} {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%q is not an action: use allow, approve or deny", s)
}

// Limits on a rule's approval settings.
const (
	DefaultTimeout = 15 * time.Minute // Rule.Timeout when zero
	MaxTimeout     = 24 * time.Hour   // longest Rule.Timeout
)

// Rule is one entry of a Policy. A Rule is not changed by Decide and may be
// shared by goroutines once checked.
type Rule struct {
	// Name identifies the rule in decisions, notices and errors; unique
	// within a policy.
	Name string
	// Match selects the commands the rule applies to; the zero value
	// matches every command.
	Match Match
	// Scope selects the connections the rule applies to; the zero value
	// is every connection.
	Scope Scope
	// Access, when AccessRequest, makes the rule a just-in-time access
	// rule: it holds connections in its scope (until a grant is approved),
	// not commands. Decide skips such rules; NeedsGrant finds them.
	Access Access
	// Action is what happens to a matching command.
	Action Action
	// Approvers are the groups whose members may approve (Action Approve
	// or Access AccessRequest; required then, empty otherwise).
	Approvers []string
	// Required is how many distinct people must approve: 1 or 2. Zero
	// means 1.
	Required int
	// Timeout is how long a request waits for approval before it is
	// refused. Zero means DefaultTimeout; at most MaxTimeout.
	Timeout time.Duration
}

// Match selects commands. A command matches when Commands names it (and Args,
// if set, matches its arguments) or when Regex matches its normalised text.
// Commands and Regex are exclusive; when both are empty the Match matches
// every command, including ones that cannot be judged.
type Match struct {
	// Commands are base names (rm, not /bin/rm) compared exactly.
	Commands []string
	// Args, if not nil, must also match the command's arguments, joined
	// by single spaces after quote removal (unanchored: use ^ and $).
	Args *regexp.Regexp
	// Regex matches a command's normalised text (see Command.Text),
	// unanchored.
	Regex *regexp.Regexp
	// SQL, when set, makes the rule a SQL rule: it judges the statements
	// of postgres forwards (DecideSQL), never command lines, and rules
	// without SQL never judge statements. Each entry is a pattern on a
	// SQL command's normalised text (see SQLCommands): case-insensitive,
	// * matches any run of characters, and a pattern matches the whole
	// text or its first words ("DROP" matches "DROP TABLE x"; "*"
	// matches every statement, also one that cannot be judged).
	SQL []string
}

// All reports whether m matches every command.
func (m *Match) All() bool { return len(m.Commands) == 0 && m.Regex == nil && len(m.SQL) == 0 }

// Access says whether connecting needs an approved grant.
type Access int

// Access modes.
const (
	AccessOpen    Access = iota // the zero value: rules decide commands only
	AccessRequest               // a grant must be approved before connecting
)

// Scope selects connections: a rule is in scope when every set field
// matches the Subject. The zero value is every connection.
type Scope struct {
	// Targets are path.Match patterns on the target name; one must match.
	Targets []string
	// Labels must all be on the target with these values.
	Labels map[string]string
	// Requesters are certificate principals, or "group:NAME" for a group;
	// one must match.
	Requesters []string
	// Logins are the target logins (root, deploy); one must equal the
	// login.
	Logins []string
}

// GroupPrefix marks a Scope.Requesters entry that names a group.
const GroupPrefix = "group:"

// Subject is who runs a line where.
type Subject struct {
	Principals []string          // the certificate's principals
	Groups     []string          // the certificate's groups@postern groups
	Target     string            // the target's name
	Labels     map[string]string // the target's labels
	Login      string            // the login on the target
}

// In reports whether s is in scope c.
func (c *Scope) In(s *Subject) bool {
	if len(c.Targets) > 0 && !slices.ContainsFunc(c.Targets, func(p string) bool {
		ok, _ := path.Match(p, s.Target)
		return ok
	}) {
		return false
	}
	for k, v := range c.Labels {
		if got, ok := s.Labels[k]; !ok || got != v {
			return false
		}
	}
	if len(c.Logins) > 0 && !slices.Contains(c.Logins, s.Login) {
		return false
	}
	if len(c.Requesters) == 0 {
		return true
	}
	for _, r := range c.Requesters {
		if g, ok := strings.CutPrefix(r, GroupPrefix); ok {
			if slices.Contains(s.Groups, g) {
				return true
			}
		} else if slices.Contains(s.Principals, r) {
			return true
		}
	}
	return false
}

// RuleError is a problem with one rule of a policy.
type RuleError struct {
	Rule   string // the rule's name, "" if it has none
	Reason string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("approval rule %q: %s", e.Rule, e.Reason)
}

// Policy is an ordered list of rules. Its zero value allows everything.
// Decide and NeedsGrant only read it, so a checked Policy may be shared by
// goroutines.
type Policy struct {
	Rules []Rule
}

// Check reports every problem with p's rules as a *RuleError (joined with
// errors.Join when there are several).
func (p *Policy) Check() error {
	var errs []error
	seen := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		for _, reason := range r.problems() {
			errs = append(errs, &RuleError{Rule: r.Name, Reason: reason})
		}
		if r.Name != "" && seen[r.Name] {
			errs = append(errs, &RuleError{Rule: r.Name, Reason: "duplicate rule name"})
		}
		seen[r.Name] = true
	}
	return errors.Join(errs...)
}

// problems lists what is wrong with r alone.
func (r *Rule) problems() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if r.Name == "" {
		add("has no name")
	}
	if r.Action < Allow || r.Action > Deny {
		add("action must be allow, approve or deny")
	}
	if len(r.Match.Commands) > 0 && r.Match.Regex != nil {
		add("match has both commands and regex: use two rules")
	}
	if len(r.Match.SQL) > 0 && (len(r.Match.Commands) > 0 || r.Match.Regex != nil || r.Match.Args != nil) {
		add("match has sql and commands or regex: SQL rules judge statements, not command lines; use two rules")
	}
	for _, q := range r.Match.SQL {
		if strings.TrimSpace(q) == "" {
			add("sql pattern %q is empty", q)
		}
	}
	if r.Match.Args != nil && len(r.Match.Commands) == 0 {
		add("match args needs commands")
	}
	for _, c := range r.Match.Commands {
		if c == "" || strings.ContainsAny(c, "/ \t\n") {
			add("command %q is not a base name (like rm, not /bin/rm)", c)
		}
	}
	for _, t := range r.Scope.Targets {
		if _, err := path.Match(t, ""); err != nil || t == "" {
			add("target pattern %q is not valid", t)
		}
	}
	for _, q := range r.Scope.Requesters {
		if name, _ := strings.CutPrefix(q, GroupPrefix); name == "" {
			add("requester %q names nobody", q)
		}
	}
	needsApprovers := r.Action == Approve || r.Access == AccessRequest
	switch {
	case needsApprovers && len(r.Approvers) == 0:
		add("needs at least one approver group")
	case !needsApprovers && len(r.Approvers) > 0:
		add("approvers are only for action approve or access request")
	}
	if r.Required < 0 || r.Required > 2 {
		add("required must be 1 or 2, got %d", r.Required)
	}
	if r.Timeout < 0 || r.Timeout > MaxTimeout {
		add("timeout must be more than 0 and at most %v, got %v", MaxTimeout, r.Timeout)
	}
	if r.Access == AccessRequest && (r.Action != Approve || !r.Match.All()) {
		add("access request rules hold connections: they take action approve and no match")
	}
	return out
}

// NeedsGrant returns the first access-request rule whose scope holds s, or
// nil when s may connect without a grant. Its Approvers, Required and
// Timeout govern the grant request.
func (p *Policy) NeedsGrant(s *Subject) *Rule {
	if s == nil {
		s = &Subject{}
	}
	for i := range p.Rules {
		if r := &p.Rules[i]; r.Access == AccessRequest && r.Scope.In(s) {
			return r
		}
	}
	return nil
}

// Judges reports whether a line s sends could be held or refused: some
// command rule in scope for s approves or denies. When none does, every
// line is allowed and need not be read.
func (p *Policy) Judges(s *Subject) bool {
	if p == nil {
		return false
	}
	if s == nil {
		s = &Subject{}
	}
	for i := range p.Rules {
		if r := &p.Rules[i]; r.Access != AccessRequest && len(r.Match.SQL) == 0 && r.action() != Allow && r.Scope.In(s) {
			return true
		}
	}
	return false
}

// Approvals returns how many distinct people must approve under r (1 or 2).
func (r *Rule) Approvals() int { return max(1, min(r.Required, 2)) }

// Wait returns how long a request under r waits: Timeout or the default.
func (r *Rule) Wait() time.Duration {
	if r.Timeout <= 0 {
		return DefaultTimeout
	}
	return min(r.Timeout, MaxTimeout)
}
