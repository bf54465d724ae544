package main

import (
	"strings"
	"testing"
)

// TestDecideUsage: bad uses of approve and deny are refused before ssh
// runs, exit 2, each saying what to do.
func TestDecideUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() // no postern-demo here
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"approve"}, "give exactly one request ID"},
		{[]string{"approve", "a", "b"}, "give exactly one request ID"},
		{[]string{"approve", "x;rm", "--bastion", "h"}, "is not a request ID"},
		{[]string{"deny", "abc123", "--bastion", "h"}, "say why with --reason"},
		{[]string{"deny", "abc123", "--reason"}, "say why with --reason"},
		{[]string{"approve", "abc123"}, "say which bastion: --bastion"},
		{[]string{"approve", "--bastion", "-oProxyCommand=touch /tmp/x", "abc123"}, "is not HOST or HOST:PORT"},
		{[]string{"approve", "--bastion", "evil@host", "abc123"}, "is not HOST or HOST:PORT"},
	} {
		r := admin(t, dir, c.args...)
		if r.ExitCode != 2 || !strings.Contains(string(r.Stderr), c.want) {
			t.Errorf("postern %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), r.ExitCode, r.Stderr, c.want)
		}
	}
}

func TestSplitReason(t *testing.T) {
	for _, c := range []struct {
		in           []string
		flags, words string
	}{
		{[]string{"ID", "--reason", "not", "now"}, "ID", "not now"},
		{[]string{"--bastion", "h", "ID", "--reason=not", "now"}, "--bastion h ID", "not now"},
		{[]string{"ID", "--", "--reason", "x"}, "ID -- --reason x", ""},
		{[]string{"ID"}, "ID", ""},
	} {
		f, w := splitReason(c.in)
		if strings.Join(f, " ") != c.flags || strings.Join(w, " ") != c.words {
			t.Errorf("splitReason(%q) = %q, %q", c.in, f, w)
		}
	}
}
