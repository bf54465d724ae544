package bastion

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// certifiedHostKey writes an ECDSA host key into dir, and beside it a host
// certificate for 127.0.0.1 signed by ca; it returns the key's path and its
// public key. sshd serves both with "HostKey PATH" and
// "HostCertificate PATH-cert.pub".
func certifiedHostKey(t testing.TB, dir string, ca ssh.Signer) (string, ssh.PublicKey) {
	t.Helper()
	keygen := testenv.Require(t, "ssh-keygen")
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
	cert := &ssh.Certificate{
		Key: pub, CertType: ssh.HostCert, ValidPrincipals: []string{"127.0.0.1"},
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostKey+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return hostKey, pub
}

// An sshd that presents a host certificate besides its plain keys (as
// OpenSSH then offers the certificate algorithms first) still connects for
// targets that can verify only plain keys: known_hosts without an
// @cert-authority line for the target, or a pinned key. The bastion asks
// for plain host-key algorithms then, as OpenSSH does; a known_hosts
// @cert-authority line for the target keeps certificates. Wrong or unknown
// keys are still refused.
func TestKnownHostsWithHostCertificate(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	hostCA := testenv.NewSigner(t)
	hostKey, ecdsaKey := certifiedHostKey(t, dir, hostCA)
	sshd := testenv.SSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: []ssh.PublicKey{h.auth.UpstreamCA.PublicKey()},
		Extra:             []string{"HostKey " + hostKey, "HostCertificate " + hostKey + "-cert.pub"},
	})
	host := "[127.0.0.1]:" + sshd.Addr[strings.LastIndexByte(sshd.Addr, ':')+1:]
	line := func(pattern string, key ssh.PublicKey) string {
		return pattern + " " + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(key)))
	}
	caLine := func(pattern string) string { return "@cert-authority " + line(pattern, hostCA.PublicKey()) }
	knownHosts := func(name string, lines ...string) string {
		path := filepath.Join(dir, name+"_known_hosts")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	other := testenv.NewSigner(t).PublicKey()
	targets := []struct {
		target Target
		ok     bool
	}{
		{Target{Name: "plain", KnownHostsFile: knownHosts("plain", sshd.KnownHostsLine())}, true},
		{Target{Name: "certified-plain", KnownHostsFile: knownHosts("certified-plain", line(host, ecdsaKey))}, true},
		{Target{Name: "ca-elsewhere", KnownHostsFile: knownHosts("ca-elsewhere", caLine("*.example.com"), sshd.KnownHostsLine())}, true},
		{Target{Name: "ca-only", KnownHostsFile: knownHosts("ca-only", line("other.example.com", other), caLine(host))}, true},
		{Target{Name: "pinned", HostKey: sshd.HostKey}, true},
		{Target{Name: "pinned-ecdsa", HostKey: ecdsaKey}, true},
		{Target{Name: "wrong", KnownHostsFile: knownHosts("wrong", line(host, other))}, false},
		{Target{Name: "unknown", KnownHostsFile: knownHosts("unknown", line("other.example.com", sshd.HostKey))}, false},
		{Target{Name: "wrong-ca", KnownHostsFile: knownHosts("wrong-ca", "@cert-authority "+line(host, other))}, false},
		{Target{Name: "pinned-wrong", HostKey: other}, false},
	}
	policy := Policy{Rules: []Rule{{Name: "a", Principals: []string{"alice"}, Targets: []string{"*"}, Logins: []string{"root"}}}}
	for _, tc := range targets {
		tc.target.Address = sshd.Addr
		policy.Targets = append(policy.Targets, tc.target)
	}
	b := h.extraServer(t, Config{Policy: policy})
	for _, tc := range targets {
		t.Run(tc.target.Name, func(t *testing.T) {
			t.Parallel()
			r := b.ssh(t, h.alice, "root@"+tc.target.Name, nil, "echo reached")
			switch {
			case tc.ok && (r.ExitCode != 0 || string(r.Stdout) != "reached\n"):
				t.Fatalf("want a session: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
			case !tc.ok && (r.ExitCode != 255 || len(r.Stdout) != 0 || !strings.Contains(string(r.Stderr), "host key the bastion does not trust")):
				t.Fatalf("want a host key refusal: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
			}
		})
	}
}

// plainAlgorithms never asks for certificates and puts the algorithms that
// verify the known keys first (both RFC 8332 names for an RSA key).
func TestPlainAlgorithms(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		known []ssh.PublicKey
		first []string
	}{
		{"none", nil, nil},
		{"ed25519", []ssh.PublicKey{testenv.NewSigner(t).PublicKey()}, []string{ssh.KeyAlgoED25519}},
		{"rsa", []ssh.PublicKey{rsaPub}, []string{ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plainAlgorithms(tc.known)
			if !slices.Equal(got[:len(tc.first)], tc.first) {
				t.Errorf("plainAlgorithms = %q, want %q first", got, tc.first)
			}
			for _, algo := range got {
				if strings.Contains(algo, "cert") || algo == ssh.KeyAlgoRSA {
					t.Errorf("plainAlgorithms = %q: has %s", got, algo)
				}
			}
		})
	}
}

// knownCAs finds @cert-authority lines past comments and lines that do not
// parse, as knownhosts.New skips them.
func TestKnownCAs(t *testing.T) {
	t.Parallel()
	ca, plain := testenv.NewSigner(t).PublicKey(), testenv.NewSigner(t).PublicKey()
	key := func(k ssh.PublicKey) string { return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k))) }
	data := "# comment\nhost.example " + key(plain) + "\nbroken line\n\n@cert-authority *.example " + key(ca) + "\n@revoked * " + key(plain) + "\n"
	got := knownCAs([]byte(data))
	if len(got) != 1 || !bytes.Equal(got[0].Marshal(), ca.Marshal()) {
		t.Fatalf("knownCAs = %d keys, want the one CA", len(got))
	}
}
