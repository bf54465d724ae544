package bastion

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// The cipher policy holds on both legs: OpenSSH's client, which prefers
// chacha20-poly1305, gets AES-GCM from a default bastion and cannot force
// anything else; the bastion asks its targets for the same list, so a
// target that offers none of it is refused; and an operator's list
// replaces the default on both legs.
func TestCipherPolicy(t *testing.T) {
	t.Parallel()
	h := env(t)
	negotiated := regexp.MustCompile(`kex: server->client cipher: (\S+)`)

	// Default bastion: the client's first choice would be chacha20.
	r := h.sshWith(t, []string{"-v"}, h.alice, "root@t1", nil, "echo cipher-ok")
	if r.ExitCode != 0 || string(r.Stdout) != "cipher-ok\n" {
		t.Fatalf("default ciphers: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	firstRun := r.Stderr
	if m := negotiated.FindSubmatch(r.Stderr); m == nil || string(m[1]) != "aes128-gcm@openssh.com" {
		t.Fatalf("default bastion negotiated %q, want aes128-gcm@openssh.com; ssh -v said:\n%s", m, r.Stderr)
	}
	r = h.sshWith(t, []string{"-c", "chacha20-poly1305@openssh.com"}, h.alice, "root@t1", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "no matching cipher found") || len(r.Stdout) != 0 {
		t.Fatalf("chacha20-only client: exit %d stdout %q stderr %s; want refused with no matching cipher", r.ExitCode, r.Stdout, r.Stderr)
	}

	// No SHA-1 key exchange, which PCI scans flag.
	r = h.sshWith(t, []string{"-o", "KexAlgorithms=diffie-hellman-group14-sha1"}, h.alice, "root@t1", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "no matching key exchange method found") || len(r.Stdout) != 0 {
		t.Fatalf("group14-sha1 client: exit %d stdout %q stderr %s; want refused", r.ExitCode, r.Stdout, r.Stderr)
	}
	if m := regexp.MustCompile(`kex: algorithm: (\S+)`).FindSubmatch(firstRun); m == nil || string(m[1]) != "curve25519-sha256" && string(m[1]) != "mlkem768x25519-sha256" {
		t.Errorf("key exchange %q, want mlkem768x25519-sha256 or (OpenSSH before 9.9) curve25519-sha256", m)
	}

	// A target that speaks only chacha20.
	sshd := testenv.SSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: []ssh.PublicKey{h.auth.UpstreamCA.PublicKey()},
		Extra:             []string{"Ciphers chacha20-poly1305@openssh.com"},
	})
	policy := Policy{
		Targets: []Target{{Name: "chacha", Address: sshd.Addr, HostKey: sshd.HostKey}},
		Rules:   []Rule{{Name: "a", Principals: []string{"alice"}, Targets: []string{"*"}, Logins: []string{"root"}}},
	}
	def := h.extraServer(t, Config{Policy: policy})
	r = def.ssh(t, h.alice, "root@chacha", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "SSH to target chacha failed") || len(r.Stdout) != 0 {
		t.Fatalf("default bastion to chacha20-only target: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(def.logs.String(), "no common algorithm for client to server cipher")
	})

	// The operator allows chacha20: both legs use it.
	cc := h.extraServer(t, Config{Policy: policy, Ciphers: []string{"chacha20-poly1305@openssh.com"}})
	r = cc.sshWith(t, []string{"-v"}, h.alice, "root@chacha", nil, "echo chacha-ok")
	if r.ExitCode != 0 || string(r.Stdout) != "chacha-ok\n" {
		t.Fatalf("chacha20 bastion: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if m := negotiated.FindSubmatch(r.Stderr); m == nil || string(m[1]) != "chacha20-poly1305@openssh.com" {
		t.Fatalf("chacha20 bastion negotiated %q with the client; ssh -v said:\n%s", m, r.Stderr)
	}
}

func TestCipherPolicyRejectsUnknown(t *testing.T) {
	h := env(t)
	for _, c := range [][]string{{}, {"arcfour"}} {
		if _, err := New(Config{Authority: h.auth, Ciphers: c}); err == nil {
			t.Errorf("New with Ciphers %q succeeded, want an error", c)
		}
	}
}
