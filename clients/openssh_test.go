package clients

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// run runs name with args and the environment variables vars added to
// the test's (through env(1), so that testenv.Cmd's timeout and output
// capture apply), with stdin (nil: /dev/null).
func run(t testing.TB, timeout time.Duration, vars []string, name string, args ...string) testenv.Result {
	t.Helper()
	return testenv.Cmd(t, timeout, nil, "env", slices.Concat(vars, []string{name}, args)...)
}

// OpenSSH logs in with a certificate for each user key type, from the key
// file and from ssh-agent. RSA signs with rsa-sha2-512 (the bastion
// refuses ssh-rsa's SHA-1: bastion/e2e_sigalgs_test.go).
func TestOpenSSHKeyTypesAndAgent(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	sshBin := testenv.Require(t, "ssh")
	for _, tt := range []struct {
		typ   string
		extra []string
	}{
		{"ed25519", nil},
		{"ecdsa", nil},
		{"rsa", []string{"-o", "PubkeyAcceptedAlgorithms=rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-512"}},
	} {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			key := e.userKey(t, "id_"+tt.typ, tt.typ)
			r := testenv.Cmd(t, time.Minute, nil, sshBin, slices.Concat(tt.extra, e.sshArgs(key), []string{dest, "echo file-" + tt.typ})...)
			if r.ExitCode != 0 || string(r.Stdout) != "file-"+tt.typ+"\n" {
				t.Fatalf("key file: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
			}

			// The agent holds the key and its certificate (ssh-add
			// loads KEY-cert.pub beside KEY); ssh has no key file.
			sock := testenv.SSHAgent(t)
			vars := []string{"SSH_AUTH_SOCK=" + sock}
			if r := run(t, time.Minute, vars, "ssh-add", key); r.ExitCode != 0 {
				t.Fatalf("ssh-add: %s", r.Stderr)
			}
			if r := run(t, time.Minute, vars, "ssh-add", "-l"); !strings.Contains(string(r.Stdout), "-CERT)") {
				t.Fatalf("ssh-add -l shows no certificate: %s %s", r.Stdout, r.Stderr)
			}
			// ssh keeps an option's first value: these come before
			// ClientOpts' IdentitiesOnly=yes.
			args := slices.Concat(tt.extra, []string{"-o", "IdentitiesOnly=no"},
				e.sshArgs(""), []string{dest, "echo agent-" + tt.typ})
			r = run(t, time.Minute, vars, sshBin, args...)
			if r.ExitCode != 0 || string(r.Stdout) != "agent-"+tt.typ+"\n" {
				t.Fatalf("agent: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
			}
		})
	}
	t.Cleanup(func() {
		// Every login, by file and by agent, is one allowed connect
		// record with the certificate's key ID.
		for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
			n := 0
			for _, m := range e.audits("connect") {
				if m["key_id"] == "clients-id_"+typ && m["allowed"] == true {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%s: %d allowed connect records, want 2 (file and agent)", typ, n)
			}
		}
	})
}
