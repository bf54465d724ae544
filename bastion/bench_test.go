package bastion

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"golang.org/x/crypto/ssh"
)

// Benchmarks compare the same OpenSSH client going straight to sshd and
// going through Postern, in the same run. They report figures; no test
// asserts a timing. `make bench` runs them.

// directClientOpts are client options for going straight to the target
// sshd, with a certificate from the upstream CA (which sshd trusts).
func (h *harness) directClientOpts(b *testing.B) []string {
	b.Helper()
	dir := b.TempDir()
	signer, path := testenv.NewKey(b, dir, "direct")
	cert := &ssh.Certificate{
		Key: signer.PublicKey(), CertType: ssh.UserCert, ValidPrincipals: []string{"root"},
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, h.auth.UpstreamCA); err != nil {
		b.Fatal(err)
	}
	testenv.WriteCert(b, path+"-cert.pub", cert)
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(h.sshd.KnownHostsLine()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return append(testenv.ClientOpts{Identity: path, KnownHosts: kh}.Options(), "-p", strconv.Itoa(h.sshd.Port))
}

var devNull, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)

func BenchmarkBulkDownload(b *testing.B) {
	h := env(b)
	const size = 256 << 20
	norec := h.extraServer(b, Config{Policy: h.policy})
	paths := map[string][]string{
		"postern-recording": append(h.opts(h.alice), "-p", strconv.Itoa(h.port), "root@t1@127.0.0.1"),
		"postern-norecord":  append(norec.opts(h.alice), "-p", strconv.Itoa(norec.port), "root@t1@127.0.0.1"),
		"direct":            append(h.directClientOpts(b), "root@127.0.0.1"),
	}
	// Same run, same machine: compare the ratios, not the absolute
	// figures (this machine is shared and noisy).
	for _, name := range []string{"direct", "postern-norecord", "postern-recording"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				// Output goes straight to /dev/null: on this VM a
				// pipe to the benchmark costs more than the SSH path.
				var stderr bytes.Buffer
				cmd := exec.Command(h.sshBin, append(paths[name], "yes 'terminal output, 0123456789 abcdefghij' | head -c "+strconv.Itoa(size))...)
				cmd.Stdout, cmd.Stderr = devNull, &stderr
				if err := cmd.Run(); err != nil {
					b.Fatalf("%v: %s", err, stderr.Bytes())
				}
			}
		})
	}
}

func BenchmarkConnect(b *testing.B) {
	h := env(b)
	paths := map[string][]string{
		"postern": append(h.opts(h.alice), "-p", strconv.Itoa(h.port), "root@t1@127.0.0.1"),
		"direct":  append(h.directClientOpts(b), "root@127.0.0.1"),
	}
	for _, name := range []string{"direct", "postern"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				r := testenv.Cmd(b, time.Minute, nil, h.sshBin, append(paths[name], "true")...)
				if r.ExitCode != 0 {
					b.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
				}
			}
		})
	}
}
