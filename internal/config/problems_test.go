package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
)

// problems returns the *config.Errors in err, one per problem.
func problems(t testing.TB, err error) []*config.Error {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var out []*config.Error
	for _, e := range errs {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("problem %q is %T, want *config.Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// One Parse reports every problem, each with its line and key, not just
// the first: an operator fixes them in one go.
func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	const data = `listen: "nohost"
data_dir: /var/lib/postern
idle_timeout: 5 minutes
targets:
  - name: db01
    address: 10.0.0.5
    host_key: "` + db01Key + `"
  - name: web01
    address: 10.0.0.6
    host_key: "not a key"
  - name: db01
    address: 10.0.0.7
    host_key: "` + db01Key + `"
rules:
  - name: all
    principals: ["*"]
    targets: [web01, nosuch]
    logins: ["*"]
  - name: ops
    targets: ["*"]
    logins: ["*"]
`
	_, err := config.Parse("p.yaml", []byte(data))
	want := []struct {
		line int
		key  string
		msg  string
	}{
		{1, "listen", "not host:port"},
		{3, "idle_timeout", "invalid duration"},
		{10, "targets[1].host_key", "not an OpenSSH public key"},
		{11, "targets[2].name", "duplicate target name"},
		{17, "rules[0].targets[1]", `unknown target "nosuch"`},
		{19, "rules[1]", "set principals or groups"},
	}
	got := problems(t, err)
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if g := got[i]; g.File != "p.yaml" || g.Line != w.line || g.Key != w.key || !strings.Contains(g.Msg, w.msg) {
			t.Errorf("problem %d: %q, want line %d key %q msg containing %q", i, g, w.line, w.key, w.msg)
		}
	}
	var first *config.Error
	if !errors.As(err, &first) || first.Key != "listen" {
		t.Errorf("errors.As finds %v, want the first problem", first)
	}
}

// Each bad config in testdata has one problem: reporting every problem
// must not add follow-on ones (a rule's target "unknown" because the
// targets list itself was bad).
func TestBadConfigsOneProblemEach(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/config/bad-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs: %v", err)
	}
	for _, f := range files {
		_, err := config.Load(f)
		if n := len(problems(t, err)); n != 1 {
			t.Errorf("%s: %d problems, want 1:\n%v", f, n, err)
		}
	}
}

// A rule that selects no target is valid but grants nothing: a warning
// with its line, not an error.
func TestParseWarnsRuleMatchingNoTarget(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("p.yaml", []byte(minimal+`  - name: dead
    principals: [bob]
    targets: ["web*"]
    logins: [root]
  - name: labelled
    principals: [bob]
    target_labels: {env: prod}
    logins: [root]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 2 || !strings.HasPrefix(c.Warnings[0], "p.yaml:11: rules[1]: ") || !strings.Contains(c.Warnings[0], `rule "dead" matches no target`) ||
		!strings.Contains(c.Warnings[1], `rule "labelled" matches no target`) {
		t.Fatalf("warnings %q", c.Warnings)
	}
	if c, err := config.Parse("p.yaml", []byte(minimal)); err != nil || c.Warnings != nil {
		t.Fatalf("minimal config: warnings %q, err %v", c.Warnings, err)
	}
}
