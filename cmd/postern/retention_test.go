package main

import (
	"strings"
	"testing"
)

// TestPruneBelowRetentionRefused: --older-than-days below the configured
// retention (365 days without a config) is bad usage, and nothing is
// opened.
func TestPruneBelowRetentionRefused(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, "recordings", "prune", "--data-dir", t.TempDir(), "--older-than-days", "30")
	if code != 2 || !strings.Contains(stderr, "below the configured retention") {
		t.Fatalf("prune --older-than-days 30: exit %d, %q", code, stderr)
	}
}
