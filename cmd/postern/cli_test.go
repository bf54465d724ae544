package main

import (
	"strings"
	"testing"
)

// A bad flag is reported on stderr only, with exit 2; --help goes to
// stdout, once, with exit 0.
func TestBadFlagGoesToStderr(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "--bogus"},
		{"ca", "sign", "--bogus", "x.pub"},
		{"ca", "show", "--bogus"},
		{"play", "--speed", "fast", "x.cast"},
		{"sessions", "--bogus"},
		{"demo", "--bogus"},
		{"config", "check", "--bogus"},
	} {
		code, out, errs := runCLI(t, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "postern: ") {
			t.Errorf("postern %v: exit %d, stdout %q, stderr %q; want exit 2, empty stdout, the error on stderr", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"serve", "--help"}, {"play", "-h"}, {"ca", "sign", "--help"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || strings.Count(out, "Usage: postern") != 1 || !strings.Contains(out, "Flags:") || errs != "" {
			t.Errorf("postern %v: exit %d, stdout %q, stderr %q; want exit 0, the usage once on stdout", args, code, out, errs)
		}
	}
}
