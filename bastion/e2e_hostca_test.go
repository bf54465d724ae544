package bastion

import (
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// A target verified by a host CA (known_hosts @cert-authority style): an
// sshd whose ECDSA host key carries a certificate from the CA is accepted;
// the same sshd checked against another CA is refused.
func TestHostCATarget(t *testing.T) {
	t.Parallel()
	h := env(t)
	hostCA, wrongCA := testenv.NewSigner(t), testenv.NewSigner(t)
	hostKey, _ := certifiedHostKey(t, t.TempDir(), hostCA)
	sshd := testenv.SSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: []ssh.PublicKey{h.auth.UpstreamCA.PublicKey()},
		Extra:             []string{"HostKey " + hostKey, "HostCertificate " + hostKey + "-cert.pub"},
	})
	b := h.extraServer(t, Config{Policy: Policy{
		Targets: []Target{
			{Name: "viaca", Address: sshd.Addr, HostCA: hostCA.PublicKey()},
			{Name: "wrongca", Address: sshd.Addr, HostCA: wrongCA.PublicKey()},
		},
		Rules: []Rule{{Name: "a", Principals: []string{"alice"}, Targets: []string{"*"}, Logins: []string{"root"}}},
	}})
	r := b.ssh(t, h.alice, "root@viaca", nil, "echo via-ca")
	if r.ExitCode != 0 || string(r.Stdout) != "via-ca\n" {
		t.Fatalf("host CA target: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	r = b.ssh(t, h.alice, "root@wrongca", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "host key the bastion does not trust") {
		t.Fatalf("wrong host CA: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}
