package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/config"
)

// withApprovals is minimal (10 lines) followed by an approvals section:
// "approvals:" is line 11, the section starts on line 12.
func withApprovals(section string) []byte {
	return []byte(minimal + "approvals:\n" + section)
}

func TestApprovals(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("a.yaml", withApprovals(`  - name: harmless
    match: {commands: [ls, cat]}
    action: allow
  - name: rm
    match:
      commands: [rm]
      args: '(^| )-[a-z]*r'
    scope:
      targets: ["db*"]
      target_labels: {pci: "yes"}
      requesters: [alice, "group:dev"]
      logins: [root]
    action: approve
    approvers: [ops, security]
    required: 2
    timeout: 30m
  - name: drop
    match: {regex: 'DROP +TABLE'}
    action: deny
  - name: jit
    scope: {targets: [db01]}
    access: request
    action: approve
    approvers: [ops]
  - name: rest
    action: approve
    approvers: [ops]
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	rules := c.Approvals.Rules
	if len(rules) != 5 {
		t.Fatalf("got %d rules, want 5", len(rules))
	}
	rm := rules[1]
	if rm.Name != "rm" || rm.Action != approval.Approve || rm.Required != 2 || rm.Timeout != 30*time.Minute ||
		rm.Match.Args == nil || !rm.Match.Args.MatchString("-rf /") || rm.Scope.Labels["pci"] != "yes" ||
		len(rm.Scope.Requesters) != 2 || rm.Scope.Logins[0] != "root" || rm.Approvers[1] != "security" {
		t.Errorf("rule rm: %+v", rm)
	}
	if rules[3].Access != approval.AccessRequest || rules[4].Timeout != approval.DefaultTimeout || rules[4].Required != 1 {
		t.Errorf("defaults: jit %+v, rest %+v", rules[3], rules[4])
	}
	if err := c.Approvals.Check(); err != nil {
		t.Errorf("parsed policy fails its own check: %v", err)
	}
	s := &approval.Subject{Principals: []string{"alice"}, Target: "db01", Labels: map[string]string{"pci": "yes"}, Login: "root"}
	if d := c.Approvals.Decide(s, "ls; sudo rm -rf /tmp/x"); d.Action != approval.Approve || d.Rule.Name != "rest" {
		t.Errorf("sudo is not allowed, so rest holds first: %v %v", d.Action, d.Reason)
	}
	if d := c.Approvals.Decide(s, "ls; rm -rf /tmp/x"); d.Action != approval.Approve || d.Rule.Name != "rm" {
		t.Errorf("rm -rf: %v %v", d.Action, d.Reason)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "not input to full-screen programs") {
		t.Errorf("warnings %q, want one saying what approval rules do not see", c.Warnings)
	}
	if c, err := config.Parse("a.yaml", []byte(minimal)); err != nil || len(c.Approvals.Rules) != 0 || len(c.Warnings) != 0 {
		t.Errorf("no approvals: %v, %+v", err, c)
	}
}

func TestApprovalsBad(t *testing.T) {
	t.Parallel()
	rule := "  - name: r\n    match: {commands: [rm]}\n    action: approve\n    approvers: [ops]\n"
	tests := []struct {
		name, section string
		line          int
		key, msg      string
	}{
		{"not a list", "  name: r\n", 12, "approvals", "must be a list"},
		{"unknown key", rule + "    aprovers: [x]\n", 16, "approvals[0].aprovers", `rule "r": unknown key; did you mean "approvers"?`},
		{"no name", "  - action: deny\n", 12, "approvals[0].name", "required"},
		{"duplicate name", rule + rule, 16, "approvals[1].name", `rule "r": duplicate rule name (first defined on line 12)`},
		{"no action", "  - name: r\n", 12, "approvals[0].action", `rule "r": required`},
		{"bad action", "  - name: r\n    action: hold\n", 13, "approvals[0].action", `rule "r": "hold" is not an action`},
		{"no approvers", "  - name: r\n    action: approve\n", 12, "approvals[0].approvers", `rule "r": required`},
		{"empty approvers", "  - name: r\n    action: approve\n    approvers: []\n", 14, "approvals[0].approvers", "at least one group"},
		{"approvers on deny", "  - name: r\n    action: deny\n    approvers: [ops]\n", 14, "approvals[0].approvers", "only for action approve"},
		{"required 3", rule + "    required: 3\n", 16, "approvals[0].required", `rule "r": must be 1 or 2`},
		{"required 0", rule + "    required: 0\n", 16, "approvals[0].required", "must be 1 or 2"},
		{"timeout 0", rule + "    timeout: 0s\n", 16, "approvals[0].timeout", "more than 0"},
		{"timeout 25h", rule + "    timeout: 25h\n", 16, "approvals[0].timeout", "at most 24h0m0s"},
		{"timeout bad", rule + "    timeout: soon\n", 16, "approvals[0].timeout", "invalid duration"},
		{"bad regex", "  - name: r\n    match: {regex: 'a('}\n    action: deny\n", 13, "approvals[0].match.regex", "invalid regular expression"},
		{"bad args", "  - name: r\n    match: {commands: [rm], args: '['}\n    action: deny\n", 13, "approvals[0].match.args", "invalid regular expression"},
		{"args alone", "  - name: r\n    match: {args: x}\n    action: deny\n", 13, "approvals[0].match.args", "needs commands"},
		{"commands and regex", "  - name: r\n    match: {commands: [rm], regex: x}\n    action: deny\n", 13, "approvals[0].match.regex", "conflicts with commands"},
		{"empty match", "  - name: r\n    match: {}\n    action: deny\n", 13, "approvals[0].match", "leave match out"},
		{"path command", "  - name: r\n    match: {commands: [/bin/rm]}\n    action: deny\n", 13, "approvals[0].match.commands[0]", "not a command's base name"},
		{"bad glob", "  - name: r\n    scope: {targets: ['[']}\n    action: deny\n", 13, "approvals[0].scope.targets[0]", "not a valid pattern"},
		{"unknown target", "  - name: r\n    scope: {targets: [db02]}\n    action: deny\n", 13, "approvals[0].scope.targets[0]", "unknown target"},
		{"bad requester", "  - name: r\n    scope: {requesters: ['group:']}\n    action: deny\n", 13, "approvals[0].scope.requesters[0]", "names no group"},
		{"scope key", "  - name: r\n    scope: {target: [db01]}\n    action: deny\n", 13, "approvals[0].scope.target", "unknown key"},
		{"bad access", "  - name: r\n    access: maybe\n    action: deny\n", 13, "approvals[0].access", "not one of open, request"},
		{"access deny", "  - name: r\n    access: request\n    action: deny\n    approvers: [ops]\n", 12, "approvals[0]", "take action approve and no match"},
		{"sql and commands", "  - name: r\n    match: {sql: [DROP], commands: [rm]}\n    action: deny\n", 13, "approvals[0].match.commands", "conflicts with sql"},
		{"sql empty", "  - name: r\n    match: {sql: []}\n    action: deny\n", 13, "approvals[0].match.sql", "at least one pattern"},
		{"sql blank", "  - name: r\n    match: {sql: ['  ']}\n    action: deny\n", 13, "approvals[0].match.sql[0]", "not a SQL pattern"},
		{"group approver", "  - name: r\n    action: approve\n    approvers: ['group:ops']\n", 14, "approvals[0].approvers[0]", `write "ops"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("a.yaml", withApprovals(tt.section))
			ps := problems(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems (%v), want 1", len(ps), err)
			}
			if p := ps[0]; p.Line != tt.line || p.Key != tt.key || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("got %d %s: %s; want %d %s: …%s…", p.Line, p.Key, p.Msg, tt.line, tt.key, tt.msg)
			}
		})
	}
}

func TestApprovalsSQL(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("a.yaml", withApprovals(`  - name: ddl
    match: {sql: [DROP, "DELETE FROM cards*"]}
    scope: {targets: [db01]}
    action: approve
    approvers: [ops]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Approvals.Rules[0]
	if len(r.Match.SQL) != 2 || r.Match.SQL[1] != "DELETE FROM cards*" {
		t.Fatalf("rule %+v", r)
	}
	s := &approval.Subject{Target: "db01"}
	if d := c.Approvals.DecideSQL(s, "delete from cards where id = 1"); d.Action != approval.Approve {
		t.Errorf("DELETE: %+v", d)
	}
	if d := c.Approvals.Decide(s, "DROP"); d.Action != approval.Allow {
		t.Errorf("a sql rule judged a command line: %+v", d)
	}
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[1], "functions") {
		t.Errorf("warnings %q, want the one about what sql rules do not see", c.Warnings)
	}
}

// Every bad approval rule is reported in one run.
func TestApprovalsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := config.Parse("a.yaml", withApprovals(`  - name: one
    action: nope
  - name: ok
    action: deny
  - name: two
    match: {regex: '('}
    action: deny
`))
	ps := problems(t, err)
	if len(ps) != 2 || ps[0].Line != 13 || !strings.Contains(ps[0].Msg, `rule "one"`) || ps[1].Line != 17 || !strings.Contains(ps[1].Msg, `rule "two"`) {
		t.Errorf("got %v", err)
	}
}

// The README's approvals example is a valid config section.
func TestApprovalsREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\napprovals:\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README has no approvals example")
	}
	c, err := config.Parse("readme.yaml", withApprovals(block))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if n := len(c.Approvals.Rules); n != 6 {
		t.Errorf("README example has %d rules, want 6", n)
	}
	// The second example: SQL rules.
	_, rest, ok = strings.Cut(rest, "```yaml\napprovals:\n")
	block, _, ok2 = strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(block, "sql:") {
		t.Fatal("README has no SQL approvals example")
	}
	if c, err = config.Parse("readme.yaml", withApprovals(block)); err != nil || len(c.Approvals.Rules) != 2 || len(c.Approvals.Rules[0].Match.SQL) != 4 {
		t.Fatalf("README SQL example: %v", err)
	}
	if d := c.Approvals.DecideSQL(&approval.Subject{Target: "db-1"}, "delete from public.cards"); d.Action != approval.Approve {
		t.Errorf("README SQL example: %+v", d)
	}
}

func TestApprovalWebhook(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("a.yaml", []byte(minimal+"approval_webhook: https://hooks.example.com/T1/B2\n"))
	if err != nil || c.ApprovalWebhook != "https://hooks.example.com/T1/B2" {
		t.Fatalf("%v %+v", err, c)
	}
	for _, bad := range []string{"ftp://x/", "hooks.example.com", "https://", "[::1"} {
		_, err := config.Parse("a.yaml", []byte(minimal+"approval_webhook: '"+bad+"'\n"))
		if err == nil || !strings.Contains(err.Error(), "approval_webhook") || !strings.Contains(err.Error(), "is not an http:// or https:// URL") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestHostNames(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("a.yaml", []byte(minimal+"host_names: [bastion.example.com, 10.0.0.2]\n"))
	if err != nil || strings.Join(c.Bastion(nil, nil, nil).HostNames, ",") != "bastion.example.com,10.0.0.2" {
		t.Fatalf("%v %+v", err, c)
	}
	if _, err := config.Parse("a.yaml", []byte(minimal+"host_names: ['a b']\n")); err == nil || !strings.Contains(err.Error(), "host_names") {
		t.Fatalf("a name with a space: %v", err)
	}
	// Default: the listen address's host, unless it is every address.
	for listen, want := range map[string]string{"127.0.0.1:2222": "127.0.0.1", "bastion.internal:22": "bastion.internal", ":2222": "", "0.0.0.0:2222": ""} {
		c, err := config.Parse("a.yaml", []byte(minimal+"listen: "+listen+"\n"))
		if err != nil || strings.Join(c.Bastion(nil, nil, nil).HostNames, ",") != want {
			t.Errorf("listen %s: %v %q", listen, err, c.Bastion(nil, nil, nil).HostNames)
		}
	}
}
