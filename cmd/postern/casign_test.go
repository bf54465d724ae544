package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// ca sign grants a terminal and forwarding unless told not to, agent
// forwarding only when told to, and never X11 forwarding.
func TestCASignPermitFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _, errs := runCLI(t, "ca", "init", "--data-dir", data); code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, errs)
	}
	_, keyPath := testenv.NewKey(t, dir, "alice")
	tests := []struct {
		flags []string
		want  []string // the certificate's extensions
	}{
		{nil, []string{"permit-port-forwarding", "permit-pty"}},
		{[]string{"--no-pty"}, []string{"permit-port-forwarding"}},
		{[]string{"--no-port-forwarding"}, []string{"permit-pty"}},
		{[]string{"--no-pty", "--no-port-forwarding"}, nil},
		{[]string{"--no-pty=false"}, []string{"permit-port-forwarding", "permit-pty"}},
		{[]string{"--agent-forwarding"}, []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"}},
		{[]string{"--agent-forwarding", "--no-pty", "--no-port-forwarding"}, []string{"permit-agent-forwarding"}},
	}
	for _, tt := range tests {
		args := append([]string{"ca", "sign", "--data-dir", data, "--principal", "alice", "--group", "dba", "--out", "-"}, tt.flags...)
		code, out, errs := runCLI(t, append(args, keyPath+".pub")...)
		if code != 0 {
			t.Fatalf("ca sign %v: exit %d: %s", tt.flags, code, errs)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(out))
		if err != nil {
			t.Fatalf("ca sign %v: %v", tt.flags, err)
		}
		var got []string
		for ext := range pub.(*ssh.Certificate).Extensions {
			if !strings.Contains(ext, "@") { // groups@postern is not a permission
				got = append(got, ext)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("ca sign %v: extensions %v, want %v", tt.flags, got, tt.want)
		}
	}
	// Bad usage changes nothing and exits 2.
	cert := keyPath + "-cert.pub"
	code, _, errs := runCLI(t, "ca", "sign", "--data-dir", data, "--principal", "alice", "--no-pty=maybe", keyPath+".pub")
	if code != 2 || !strings.Contains(errs, "no-pty") {
		t.Fatalf("--no-pty=maybe: exit %d stderr %q; want usage error (2)", code, errs)
	}
	if _, err := os.Stat(cert); err == nil {
		t.Fatalf("a refused ca sign wrote %s", cert)
	}
	code, out, _ := runCLI(t, "ca", "sign", "--help")
	if code != 0 || !strings.Contains(out, "-no-pty") || !strings.Contains(out, "-no-port-forwarding") || !strings.Contains(out, "-agent-forwarding") {
		t.Fatalf("ca sign --help: exit %d, stdout %q lacks the permission flags", code, out)
	}
}
