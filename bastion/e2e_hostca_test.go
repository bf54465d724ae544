package bastion

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// A target verified by a host CA (known_hosts @cert-authority style): an
// sshd whose ECDSA host key carries a certificate from the CA is accepted;
// the same sshd checked against another CA is refused.
func TestHostCATarget(t *testing.T) {
	t.Parallel()
	h := env(t)
	keygen := testenv.Require(t, "ssh-keygen")
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "host_ecdsa")
	if r := testenv.Cmd(t, time.Minute, nil, keygen, "-q", "-t", "ecdsa", "-N", "", "-f", hostKey); r.ExitCode != 0 {
		t.Fatalf("ssh-keygen: %s", r.Stderr)
	}
	pubData, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
	if err != nil {
		t.Fatal(err)
	}
	hostCA, wrongCA := testenv.NewSigner(t), testenv.NewSigner(t)
	cert := &ssh.Certificate{
		Key: pub, CertType: ssh.HostCert, ValidPrincipals: []string{"127.0.0.1"},
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, hostCA); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostKey+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
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
