package approval

import (
	"reflect"
	"strings"
	"testing"
	"unicode"

	"mvdan.cc/sh/v3/syntax"
)

// FuzzDecide: Decide never panics and is deterministic; a line that leads
// with rm, or that has rm as the plain name of a simple command anywhere,
// is never allowed under a rule on rm; reasons hold no control characters.
func FuzzDecide(f *testing.F) {
	for _, l := range held {
		f.Add(l)
	}
	for _, l := range notHeld {
		f.Add(l)
	}
	s := &Subject{Principals: []string{"alice"}, Target: "web1"}
	f.Fuzz(func(t *testing.T, line string) {
		d := rmPolicy.Decide(s, line)
		if again := rmPolicy.Decide(s, line); !reflect.DeepEqual(d, again) {
			t.Fatalf("Decide(%q) is not deterministic: %+v then %+v", line, d, again)
		}
		if strings.ContainsFunc(d.Reason, unicode.IsControl) {
			t.Fatalf("Decide(%q) reason holds a control character: %q", line, d.Reason)
		}
		if d := rmPolicy.Decide(s, "rm x; "+line); d.Action == Allow {
			t.Fatalf("Decide(%q) = allow (%s)", "rm x; "+line, d.Reason)
		}
		if d.Action == Allow && hasPlainRm(line) {
			t.Fatalf("Decide(%q) = allow (%s), but it runs rm; commands %+v", line, d.Reason, d.Commands)
		}
		_ = allowlist.Decide(s, line)
	})
}

// hasPlainRm reports whether line parses and has a simple command named
// by the bare word rm, found with syntax.Walk alone.
func hasPlainRm(line string) bool {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(line), "")
	if err != nil || len(line) > MaxLine {
		return false
	}
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.CallExpr); ok && len(c.Args) > 0 && c.Args[0].Lit() == "rm" {
			found = true
		}
		return !found
	})
	return found
}
