package approval

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNormalise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{`r''m  -rf /`, "rm -rf /"},
		{`"/bin/rm" -rf '/tmp/x'`, "rm -rf /tmp/x"},
		{"ls;pwd", "ls\npwd"},
		{"sudo -u root rm x", "sudo -u root rm x\nrm x"},
		{"echo $(rm x)", "echo $(rm x)\nrm x"},
		{"rm $f", "rm $f"},
		{"$x", "? non-literal command name `$x`"},
		{"x=1", ""},
	} {
		if got := Normalise(tc.line); got != tc.want {
			t.Errorf("Normalise(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// allowlist allows a few commands and holds everything else.
var allowlist = Policy{Rules: []Rule{
	{Name: "harmless", Match: Match{Commands: []string{"ls", "cat", "echo", "pwd"}}, Action: Allow},
	{Name: "no-shutdown", Match: Match{Commands: []string{"shutdown"}}, Action: Deny},
	{Name: "everything-else", Action: Approve, Approvers: []string{"ops"}},
}}

func TestAllowlist(t *testing.T) {
	t.Parallel()
	s := &Subject{Principals: []string{"alice"}, Target: "db1"}
	for _, tc := range []struct {
		line string
		want Action
		rule string
	}{
		{"ls -l", Allow, "harmless"},
		{"ls; cat x | echo", Allow, "harmless"},
		{"ls | grep x", Approve, "everything-else"},
		{"grep x f", Approve, "everything-else"},
		{"sudo ls", Approve, "everything-else"},
		{"$x", Approve, "everything-else"},
		{"echo 'open", Approve, "everything-else"},
		{"ls; shutdown now; grep x", Deny, "no-shutdown"},
		{"grep x; shutdown now", Deny, "no-shutdown"},
		{"", Allow, ""},
	} {
		d := allowlist.Decide(s, tc.line)
		rule := ""
		if d.Rule != nil {
			rule = d.Rule.Name
		}
		if d.Action != tc.want || rule != tc.rule {
			t.Errorf("Decide(%q) = %v by %q (%s), want %v by %q", tc.line, d.Action, rule, d.Reason, tc.want, tc.rule)
		}
	}
}

func TestUnjudgedNeedsHoldingRule(t *testing.T) {
	t.Parallel()
	allowOnly := Policy{Rules: []Rule{{Name: "ls", Match: Match{Commands: []string{"ls"}}, Action: Allow}}}
	if d := allowOnly.Decide(&Subject{}, "$x"); d.Action != Allow {
		t.Errorf("no deny or approve rule in scope: $x = %v, want allow", d.Action)
	}
	denyOnly := Policy{Rules: []Rule{{Name: "no-rm", Match: Match{Commands: []string{"rm"}}, Action: Deny}}}
	d := denyOnly.Decide(&Subject{}, "ls; $x")
	if d.Action != Deny || !strings.Contains(d.Reason, "non-literal command name `$x`") {
		t.Errorf("deny rule in scope: ls; $x = %v (%s), want deny saying why", d.Action, d.Reason)
	}
}

func TestArgs(t *testing.T) {
	t.Parallel()
	p := Policy{Rules: []Rule{
		{Name: "rm-recursive", Match: Match{Commands: []string{"rm"}, Args: regexp.MustCompile(`(^| )-[a-zA-Z]*r`)}, Action: Approve, Approvers: []string{"ops"}},
		{Name: "git-safe", Match: Match{Commands: []string{"git"}, Args: regexp.MustCompile(`^(status|log)( |$)`)}, Action: Allow},
		{Name: "git", Match: Match{Commands: []string{"git"}}, Action: Approve, Approvers: []string{"ops"}},
	}}
	for _, tc := range []struct {
		line string
		want Action
	}{
		{"rm x", Allow},
		{"rm -rf x", Approve},
		{"rm -f -r x", Approve},
		{"r''m '-rf' x", Approve},
		{"rm $opts x", Approve}, // unknown arguments: an approve rule matches
		{"xargs rm", Approve},   // arguments come from input
		{"git status", Allow},
		{"git log -p", Allow},
		{"git push", Approve},
		{"git $(echo status)", Approve}, // unknown arguments: the allow rule does not match
	} {
		if d := p.Decide(&Subject{}, tc.line); d.Action != tc.want {
			t.Errorf("Decide(%q) = %v (%s), want %v", tc.line, d.Action, d.Reason, tc.want)
		}
	}
}

func TestRegex(t *testing.T) {
	t.Parallel()
	p := Policy{Rules: []Rule{{Name: "drop", Match: Match{Regex: regexp.MustCompile(`^psql .*DROP`)}, Action: Deny}}}
	for _, tc := range []struct {
		line string
		want Action
	}{
		{`psql -c "DROP TABLE x"`, Deny},
		{`ls; /usr/bin/p's'ql  -c 'DROP TABLE x'`, Deny},
		{`echo psql DROP`, Allow},
		{`psql -c 'SELECT 1'`, Allow},
	} {
		if d := p.Decide(&Subject{}, tc.line); d.Action != tc.want {
			t.Errorf("Decide(%q) = %v (%s), want %v", tc.line, d.Action, d.Reason, tc.want)
		}
	}
}

func TestScope(t *testing.T) {
	t.Parallel()
	p := Policy{Rules: []Rule{
		{Name: "prod", Scope: Scope{Targets: []string{"prod-*"}}, Match: Match{Commands: []string{"a"}}, Action: Deny},
		{Name: "pci", Scope: Scope{Labels: map[string]string{"pci": "yes"}}, Match: Match{Commands: []string{"b"}}, Action: Deny},
		{Name: "bob", Scope: Scope{Requesters: []string{"bob"}}, Match: Match{Commands: []string{"c"}}, Action: Deny},
		{Name: "dba", Scope: Scope{Requesters: []string{"group:dba"}}, Match: Match{Commands: []string{"d"}}, Action: Deny},
		{Name: "root", Scope: Scope{Logins: []string{"root"}}, Match: Match{Commands: []string{"e"}}, Action: Deny},
	}}
	alice := Subject{Principals: []string{"alice"}, Groups: []string{"dev"}, Target: "dev-1", Labels: map[string]string{"pci": "no"}, Login: "app"}
	for _, tc := range []struct {
		name string
		edit func(*Subject)
		line string
	}{
		{"target glob", func(s *Subject) { s.Target = "prod-db" }, "a"},
		{"label", func(s *Subject) { s.Labels = map[string]string{"pci": "yes"} }, "b"},
		{"principal", func(s *Subject) { s.Principals = []string{"x", "bob"} }, "c"},
		{"group", func(s *Subject) { s.Groups = []string{"dba"} }, "d"},
		{"login", func(s *Subject) { s.Login = "root" }, "e"},
	} {
		if d := p.Decide(&alice, tc.line); d.Action != Allow {
			t.Errorf("%s: out of scope, %q = %v, want allow", tc.name, tc.line, d.Action)
		}
		s := alice
		tc.edit(&s)
		if d := p.Decide(&s, tc.line); d.Action != Deny {
			t.Errorf("%s: in scope, %q = %v, want deny", tc.name, tc.line, d.Action)
		}
	}
	// "group:bob" is a group, never the principal bob.
	g := Policy{Rules: []Rule{{Name: "g", Scope: Scope{Requesters: []string{"group:bob"}}, Action: Deny}}}
	if d := g.Decide(&Subject{Principals: []string{"bob"}}, "ls"); d.Action != Allow {
		t.Errorf("group:bob matched principal bob")
	}
}

func TestAccess(t *testing.T) {
	t.Parallel()
	p := Policy{Rules: []Rule{
		{Name: "jit", Scope: Scope{Targets: []string{"prod-*"}}, Access: AccessRequest, Action: Approve, Approvers: []string{"ops"}, Required: 2},
		{Name: "ls", Match: Match{Commands: []string{"ls"}}, Action: Allow},
	}}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	if r := p.NeedsGrant(&Subject{Target: "prod-1"}); r == nil || r.Name != "jit" || r.Approvals() != 2 || r.Wait() != DefaultTimeout {
		t.Errorf("NeedsGrant(prod-1) = %+v, want jit, 2 approvals, default timeout", r)
	}
	if r := p.NeedsGrant(&Subject{Target: "dev-1"}); r != nil {
		t.Errorf("NeedsGrant(dev-1) = %q, want nil", r.Name)
	}
	if d := p.Decide(&Subject{Target: "prod-1"}, "$x"); d.Action != Allow {
		t.Errorf("Decide used the access rule: %v (%s)", d.Action, d.Reason)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ok := Rule{Name: "ok", Action: Approve, Approvers: []string{"ops"}}
	for _, tc := range []struct {
		rule Rule
		want string
	}{
		{Rule{Action: Allow}, "has no name"},
		{Rule{Name: "r"}, "action must be"},
		{Rule{Name: "r", Action: Approve}, "at least one approver"},
		{Rule{Name: "r", Action: Deny, Approvers: []string{"x"}}, "only for action approve"},
		{Rule{Name: "r", Action: Approve, Approvers: []string{"x"}, Required: 3}, "required must be 1 or 2"},
		{Rule{Name: "r", Action: Approve, Approvers: []string{"x"}, Timeout: 25 * time.Hour}, "timeout must be"},
		{Rule{Name: "r", Action: Deny, Match: Match{Commands: []string{"/bin/rm"}}}, "not a base name"},
		{Rule{Name: "r", Action: Deny, Match: Match{Commands: []string{"rm"}, Regex: regexp.MustCompile("x")}}, "both commands and regex"},
		{Rule{Name: "r", Action: Deny, Match: Match{Args: regexp.MustCompile("x")}}, "args needs commands"},
		{Rule{Name: "r", Action: Deny, Scope: Scope{Targets: []string{"["}}}, "not valid"},
		{Rule{Name: "r", Action: Deny, Scope: Scope{Requesters: []string{"group:"}}}, "names nobody"},
		{Rule{Name: "r", Access: AccessRequest, Action: Allow, Approvers: []string{"x"}}, "access request rules"},
		{ok, "duplicate rule name"},
	} {
		err := (&Policy{Rules: []Rule{ok, tc.rule}}).Check()
		var re *RuleError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) || re.Rule != tc.rule.Name {
			t.Errorf("Check(%+v) = %v, want a *RuleError for %q saying %q", tc.rule, err, tc.rule.Name, tc.want)
		}
	}
	if err := (&Policy{Rules: []Rule{ok}}).Check(); err != nil {
		t.Errorf("Check(ok) = %v", err)
	}
}

func TestReasonEscapes(t *testing.T) {
	t.Parallel()
	d := rmPolicy.Decide(&Subject{}, "$'\x1b[2J'x")
	if strings.ContainsRune(d.Reason, 0x1b) {
		t.Errorf("reason holds a raw escape: %q", d.Reason)
	}
}
