// Package testenv is the harness for end-to-end tests that run real
// programs: OpenSSH's sshd, ssh, scp and sftp, PostgreSQL. It starts
// processes in fresh temporary directories on loopback, registers their
// cleanup with the test, and prints their logs when a test fails. It holds
// the helpers tests share (keys, certificates, a locked buffer, the
// reference PAN matcher); what the benchmark needs too lives in
// internal/sshdproc, without the testing.TB.
//
// Only tests import testenv. A binary that is missing skips the test locally
// and fails it in CI (see InCI).
package testenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/sshdproc"
)

// InCI reports whether the CI environment variable is set to a non-empty
// value. In CI a missing binary fails the test instead of skipping it.
func InCI() bool { return os.Getenv("CI") != "" }

// Require returns the absolute path of the program name, searching PATH and
// then /usr/sbin and /usr/lib/openssh. If it is missing, Require skips the
// test, or fails it when InCI.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := sshdproc.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("testenv: %v (required in CI)", err)
	}
	t.Skipf("testenv: %v", err)
	return ""
}

// RequireRoot skips a test that needs root (why says for what) when not
// run as root, and fails it in CI, which runs as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("testenv: %s needs root (required in CI)", why)
	}
	t.Skipf("testenv: %s needs root", why)
}

// FreePort returns a TCP port on 127.0.0.1 that was free when asked, drawn
// below the kernel's ephemeral range so that no connection or listener on
// port 0 is given it meanwhile (sshdproc.FreePort). Another FreePort may
// still draw it before the caller binds it; StartSSHD retries for that
// reason.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := sshdproc.FreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// NewKey generates an ed25519 key pair in dir: dir/name holds the OpenSSH
// private key (mode 0600, no passphrase) and dir/name.pub the public key. It
// returns the signer and the private key's path.
func NewKey(t testing.TB, dir, name string) (ssh.Signer, string) {
	t.Helper()
	signer, path, err := sshdproc.WriteKey(dir, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return signer, path
}

// SignUserCert signs a user certificate for pub with ca, valid for the given
// principals from one minute ago to five minutes from now, with the
// permit-pty extension (the others OpenSSH knows are left out).
func SignUserCert(t testing.TB, ca ssh.Signer, pub ssh.PublicKey, principals ...string) *ssh.Certificate {
	t.Helper()
	cert, err := sshdproc.SignUserCert(ca, pub, sshdproc.UserCert{Principals: principals})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return cert
}

// CertSigner returns a client signer with a fresh key and a user
// certificate from ca for principals, as SignUserCert makes it; edit, if
// not nil, changes the certificate before it is signed.
func CertSigner(t testing.TB, ca ssh.Signer, principals []string, edit func(*ssh.Certificate)) ssh.Signer {
	t.Helper()
	key := NewSigner(t)
	cert, err := sshdproc.SignUserCert(ca, key.PublicKey(), sshdproc.UserCert{Principals: principals, Edit: edit})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return s
}

// WriteCert writes cert to path in authorized_keys format. OpenSSH's client
// looks for KEY-cert.pub next to the identity KEY.
func WriteCert(t testing.TB, path string, cert *ssh.Certificate) {
	t.Helper()
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatalf("testenv: write certificate: %v", err)
	}
}

// ClientOpts describes how ssh, scp or sftp reach a test server without
// reading or writing ~/.ssh. The zero value uses no identity and an empty
// known_hosts (so host key checking fails).
type ClientOpts struct {
	Port       int      // server port; not part of Options (ssh takes -p, scp and sftp -P)
	Identity   string   // private key path; IDENTITY-cert.pub is used if it exists
	KnownHosts string   // known_hosts path; "" means /dev/null
	Extra      []string // appended to Options, e.g. "-o", "RequestTTY=force"
}

// Options returns the command-line options shared by ssh, scp and sftp:
// -F /dev/null, batch mode, only the given identity, strict host key checking
// against KnownHosts, a 10 s connect timeout and LogLevel=ERROR, then Extra.
func (o ClientOpts) Options() []string {
	kh := o.KnownHosts
	if kh == "" {
		kh = "/dev/null"
	}
	args := []string{
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + kh,
		"-o", "GlobalKnownHostsFile=/dev/null",
	}
	if o.Identity == "" {
		// Without an IdentityFile, ssh falls back to ~/.ssh/id_*.
		args = append(args, "-o", "IdentityFile=none")
	} else {
		args = append(args, "-i", o.Identity)
		if _, err := os.Stat(o.Identity + "-cert.pub"); err == nil {
			args = append(args, "-o", "CertificateFile="+o.Identity+"-cert.pub")
		}
	}
	args = append(args, "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR")
	return append(args, o.Extra...)
}

// Result is the outcome of Cmd.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int // -1 if the process was killed by a signal
}

// Cmd runs name with args and stdin (nil means /dev/null), capturing its
// output, and kills it after timeout. It fails the test (so it must be called
// from the test's goroutine) only if the program could not start or timed
// out; a non-zero exit is reported in Result.ExitCode.
func Cmd(t testing.TB, timeout time.Duration, stdin io.Reader, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// A grandchild that keeps the output pipes open must not hang the test;
	// the delay is generous because under -race on two busy cores the
	// copier of a large output can lag the process's exit by seconds.
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if ctx.Err() != nil {
		t.Fatalf("testenv: %s %q timed out after %v\nstdout:\n%s\nstderr:\n%s", name, args, timeout, res.Stdout, res.Stderr)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("testenv: run %s: %v\nstderr:\n%s", name, err, res.Stderr)
	}
	return res
}

// WaitFor polls cond every 20 ms until it returns true, failing the test if
// it has not after timeout. It must be called from the test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: condition not met within %v", timeout)
		}
		<-tick.C
	}
}

// Buffer is safe for a writer goroutine (a server's logger, a pty copier)
// and a reader polling it; the zero value keeps everything. See
// sshdproc.Buffer.
type Buffer = sshdproc.Buffer

// NewSigner returns a fresh in-memory ed25519 signer (a CA or host key).
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	s, err := sshdproc.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
