package approval

import (
	"strings"
	"testing"
)

// TestBounds: pathological lines finish, stay within the command bound, and
// hold what they cannot judge.
func TestBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		held bool
	}{
		{strings.Repeat("`", 5000), true},
		{strings.Repeat("$(", 5000), true},
		{"echo '" + strings.Repeat("$(a ", 8000) + "'", false},
		{"echo '" + strings.Repeat("`a ", 8000) + "'", true},
		{strings.Repeat("sudo ", 10000) + "rm", true},
		{strings.Repeat("a=$(b) ", 5000), true},
		{strings.Repeat("ls;", 20000), true},
		{strings.Repeat("( ", 10000), true},
		{strings.Repeat("$((", 10000), true},
		{strings.Repeat("eval ", 10000) + "rm", true},
		{strings.Repeat("bash -c '", 1) + strings.Repeat(`eval \"`, 3000), true},
	} {
		d := rmPolicy.Decide(&Subject{}, tc.line)
		if len(d.Commands) > maxCommands+1 {
			t.Errorf("%.40q…: %d commands", tc.line, len(d.Commands))
		}
		if held := d.Action != Allow; held != tc.held {
			t.Errorf("%.40q…: %v (%s), want held %v", tc.line, d.Action, d.Reason, tc.held)
		}
	}
}
