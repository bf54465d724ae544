package bastion

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// User authentication takes SHA-2 RSA signatures, never ssh-rsa (SHA-1):
// the same RSA certificate works with OpenSSH's defaults
// (rsa-sha2-512-cert-v01) and is refused when the client may only sign
// with ssh-rsa; server-sig-algs does not advertise ssh-rsa.
func TestUserAuthRefusesSHA1Signatures(t *testing.T) {
	t.Parallel()
	h := env(t)
	key := filepath.Join(t.TempDir(), "rsa")
	if r := testenv.Cmd(t, time.Minute, nil, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", key); r.ExitCode != 0 {
		t.Fatalf("ssh-keygen: %s", r.Stderr)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(mustRead(t, key+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := h.auth.SignUser(pub, certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "alice-rsa"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteCert(t, key+"-cert.pub", cert)

	r := h.sshWith(t, []string{"-vvv"}, key, "root@t1", nil, "echo rsa-ok")
	if r.ExitCode != 0 || string(r.Stdout) != "rsa-ok\n" {
		t.Fatalf("RSA certificate, default algorithms: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if !strings.Contains(string(r.Stderr), "signing using rsa-sha2-512-cert-v01@openssh.com") {
		t.Errorf("ssh -vvv does not show rsa-sha2-512-cert-v01 in use:\n%s", r.Stderr)
	}
	m := regexp.MustCompile(`server-sig-algs=<([^>]*)>`).FindSubmatch(r.Stderr)
	if m == nil {
		t.Fatalf("ssh -v shows no server-sig-algs:\n%s", r.Stderr)
	}
	algs := strings.Split(string(m[1]), ",")
	if slices.Contains(algs, ssh.KeyAlgoRSA) || !slices.Contains(algs, ssh.KeyAlgoRSASHA512) || !slices.Contains(algs, ssh.KeyAlgoED25519) {
		t.Errorf("server-sig-algs = %q, want SHA-2 RSA, ECDSA and ed25519 and no ssh-rsa", algs)
	}

	r = h.sshWith(t, []string{"-o", "PubkeyAcceptedAlgorithms=ssh-rsa-cert-v01@openssh.com"}, key, "root@t1", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || len(r.Stdout) != 0 || !strings.Contains(string(r.Stderr), "Permission denied") {
		t.Fatalf("ssh-rsa-cert-v01 only: exit %d stdout %q stderr %s; want refused", r.ExitCode, r.Stdout, r.Stderr)
	}

	// A client that ignores server-sig-algs and signs with ssh-rsa anyway
	// (x/crypto's falls back to the key's format) is refused by the
	// server, not only by OpenSSH's own check.
	signer, err := ssh.ParsePrivateKey(mustRead(t, key))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		t.Fatal(err)
	}
	sha1Only, err := ssh.NewSignerWithAlgorithms(cs.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)), &ssh.ClientConfig{
		User:            "root@t1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(sha1Only)},
		HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		c.Close()
		t.Fatal("x/crypto client signing with ssh-rsa was let in")
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("ssh-rsa signature: %v, want an authentication failure", err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
