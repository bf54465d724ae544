package bastion

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// With a host CA, the bastion presents a host certificate beside its
// plain key: OpenSSH trusting only the CA (an @cert-authority line,
// strict checking) connects, and one that pinned the plain key still does.
func TestHostCertificate(t *testing.T) {
	t.Parallel()
	h := env(t)
	auth := *h.auth
	auth.HostCA = testenv.NewSigner(t)
	withCA := *h
	withCA.auth = &auth
	b := withCA.extraServer(t, Config{Policy: h.policy, HostNames: []string{"127.0.0.1", "localhost"}})

	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s", b.port, ssh.MarshalAuthorizedKey(auth.HostCA.PublicKey()))
	if err := os.WriteFile(kh, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	r := b.sshWith(t, []string{"-o", "UserKnownHostsFile=" + kh, "-o", "StrictHostKeyChecking=yes"}, b.alice, "root@t1", nil, "echo via-ca")
	if r.ExitCode != 0 || string(r.Stdout) != "via-ca\n" {
		t.Fatalf("trusting the host CA: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// A CA the client does not trust for this host: refused.
	other := fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s", b.port, ssh.MarshalAuthorizedKey(testenv.NewSigner(t).PublicKey()))
	os.WriteFile(kh, []byte(other), 0o644)
	r = b.sshWith(t, []string{"-o", "UserKnownHostsFile=" + kh, "-o", "StrictHostKeyChecking=yes"}, b.alice, "root@t1", nil, "echo no")
	if r.ExitCode != 255 || strings.Contains(string(r.Stdout), "no") {
		t.Fatalf("another CA: exit %d stdout %q", r.ExitCode, r.Stdout)
	}
	// Without host names there is no certificate to present.
	nameless := withCA.extraServer(t, Config{Policy: h.policy})
	os.WriteFile(kh, []byte(fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s", nameless.port, ssh.MarshalAuthorizedKey(auth.HostCA.PublicKey()))), 0o644)
	if r := nameless.sshWith(t, []string{"-o", "UserKnownHostsFile=" + kh}, b.alice, "root@t1", nil, "echo no"); r.ExitCode != 255 {
		t.Fatalf("no host names: exit %d stdout %q", r.ExitCode, r.Stdout)
	}
	// The pinned plain key (the harness's known_hosts) still works.
	if r := b.ssh(t, b.alice, "root@t1", nil, "echo pinned"); r.ExitCode != 0 || string(r.Stdout) != "pinned\n" {
		t.Fatalf("pinned key: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}
