package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/testenv"
)

// TestNoTestingLinked: the benchmark and the postern binary link neither
// testing nor internal/testenv (what they share with the tests lives in
// internal/sshdproc), so shipped binaries carry no test code.
func TestNoTestingLinked(t *testing.T) {
	t.Parallel()
	goBin := testenv.Require(t, "go")
	out, err := exec.Command(goBin, "list", "-deps", ".", "../postern").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, bad := range []string{"testing", "github.com/postern/postern/internal/testenv"} {
		if slices.Contains(deps, bad) {
			t.Errorf("the binaries link %s", bad)
		}
	}
	if !slices.Contains(deps, "github.com/postern/postern/internal/sshdproc") || !slices.Contains(deps, "github.com/postern/postern/internal/app") {
		t.Errorf("go list -deps did not list internal/sshdproc and internal/app: %s", out)
	}
}
