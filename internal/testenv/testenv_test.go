package testenv_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// login is the OS user the tests log in as: sshd only lets the user it runs
// as log in when not root, and tests run as root in CI.
func login(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// client is an ssh identity and known_hosts for one sshd.
type client struct {
	opts testenv.ClientOpts
	dir  string
}

func newClient(t *testing.T, s *testenv.SSHDInstance, ca ssh.Signer, principal string) client {
	t.Helper()
	dir := t.TempDir()
	signer, keyPath := testenv.NewKey(t, dir, "id_ed25519")
	if ca != nil {
		testenv.WriteCert(t, keyPath+"-cert.pub", testenv.SignUserCert(t, ca, signer.PublicKey(), principal))
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(s.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return client{opts: testenv.ClientOpts{Port: s.Port, Identity: keyPath, KnownHosts: kh}, dir: dir}
}

func (c client) sshArgs(dest string, command ...string) []string {
	args := append([]string{"-p", strconv.Itoa(c.opts.Port)}, c.opts.Options()...)
	return append(append(args, dest), command...)
}

// sharedCA is the CA the shared sshd trusts. It lives as long as that sshd
// (the test binary), so that -count=N reruns reuse both.
var sharedCA = sync.OnceValues(func() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
})

func TestSharedSSHD(t *testing.T) {
	sshBin := testenv.Require(t, "ssh")
	ca, err := sharedCA()
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.SharedSSHD(t, "ca", testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{ca.PublicKey()}})
	if again := testenv.SharedSSHD(t, "ca", testenv.SSHDOptions{}); again != s {
		t.Fatalf("second SharedSSHD call started another sshd")
	}
	user := login(t)
	dest := user + "@127.0.0.1"

	t.Run("cert", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, s, ca, user)
		res := testenv.Cmd(t, 30*time.Second, nil, sshBin, c.sshArgs(dest, "echo hi; exit 3")...)
		if string(res.Stdout) != "hi\n" || res.ExitCode != 3 {
			t.Fatalf("got stdout %q exit %d, want \"hi\\n\" exit 3; stderr: %s", res.Stdout, res.ExitCode, res.Stderr)
		}
	})
	t.Run("plain key refused", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, s, nil, user)
		res := testenv.Cmd(t, 30*time.Second, nil, sshBin, c.sshArgs(dest, "echo hi")...)
		if res.ExitCode != 255 || len(res.Stdout) != 0 {
			t.Fatalf("got stdout %q exit %d, want exit 255; stderr: %s", res.Stdout, res.ExitCode, res.Stderr)
		}
	})
	t.Run("wrong principal refused", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, s, ca, "nobody-"+user)
		res := testenv.Cmd(t, 30*time.Second, nil, sshBin, c.sshArgs(dest, "echo hi")...)
		if res.ExitCode != 255 {
			t.Fatalf("got exit %d, want 255; stderr: %s", res.ExitCode, res.Stderr)
		}
	})
	t.Run("sftp", func(t *testing.T) {
		t.Parallel()
		sftpBin := testenv.Require(t, "sftp")
		c := newClient(t, s, ca, user)
		src := filepath.Join(c.dir, "src")
		dst := filepath.Join(c.dir, "dst")
		if err := os.WriteFile(src, []byte("payload"), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"-P", strconv.Itoa(s.Port), "-b", "-"}, c.opts.Options()...)
		res := testenv.Cmd(t, 30*time.Second, strings.NewReader("put "+src+" "+dst+"\n"), sftpBin, append(args, dest)...)
		if res.ExitCode != 0 {
			t.Fatalf("sftp exit %d; stderr: %s", res.ExitCode, res.Stderr)
		}
		if b, err := os.ReadFile(dst); err != nil || string(b) != "payload" {
			t.Fatalf("copied file: %q, %v", b, err)
		}
	})
}

// TestSSHDClose checks that Close ends sessions in progress, not only the
// listener, and that the logs record the login.
func TestSSHDClose(t *testing.T) {
	sshBin := testenv.Require(t, "ssh")
	ca, _ := testenv.NewKey(t, t.TempDir(), "ca")
	s := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{ca.PublicKey()}})
	if want := "[127.0.0.1]:" + strconv.Itoa(s.Port) + " ssh-ed25519 AAAA"; !strings.HasPrefix(s.KnownHostsLine(), want) {
		t.Fatalf("KnownHostsLine() = %q, want prefix %q", s.KnownHostsLine(), want)
	}
	user := login(t)
	c := newClient(t, s, ca, user)

	cmd := exec.Command(sshBin, c.sshArgs(user+"@127.0.0.1", "echo started; exec sleep 600")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := out.Read(buf)
		started <- string(buf[:n])
		exited <- cmd.Wait()
	}()
	var once sync.Once
	wait := func() error {
		var err error
		once.Do(func() { err = <-exited })
		return err
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		wait()
	})
	if got := <-started; got != "started\n" {
		cmd.Process.Kill()
		wait()
		t.Fatalf("session output %q, want \"started\\n\"; ssh stderr: %s", got, stderr.String())
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(s.Logs(), "Accepted publickey for "+user) })

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- wait() }()
	select {
	case err := <-stopped:
		if err == nil {
			t.Fatal("ssh exited 0 after sshd was stopped")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ssh session still running 10 s after sshd Close")
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("sshd dir not removed: %v", err)
	}
}

func TestCmd(t *testing.T) {
	t.Parallel()
	sh := testenv.Require(t, "sh")
	tests := []struct {
		name   string
		script string
		stdin  string
		out    string
		code   int
	}{
		{"exit code", "echo out; echo err >&2; exit 4", "", "out\n", 4},
		{"stdin", "cat", "abc", "abc", 0},
		{"signal", "kill -KILL $$", "", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := testenv.Cmd(t, 10*time.Second, strings.NewReader(tt.stdin), sh, "-c", tt.script)
			if string(res.Stdout) != tt.out || res.ExitCode != tt.code {
				t.Fatalf("got %q exit %d, want %q exit %d", res.Stdout, res.ExitCode, tt.out, tt.code)
			}
		})
	}
}

func TestClientOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key := testenv.NewKey(t, dir, "id")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v, %v", fi.Mode(), err)
	}
	opts := testenv.ClientOpts{Identity: key, KnownHosts: "kh"}
	got := strings.Join(opts.Options(), " ")
	if strings.Contains(got, "CertificateFile") {
		t.Errorf("CertificateFile without a certificate: %s", got)
	}
	if err := os.WriteFile(key+"-cert.pub", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got = strings.Join(opts.Options(), " ")
	for _, want := range []string{"-F /dev/null", "-i " + key, "CertificateFile=" + key + "-cert.pub", "UserKnownHostsFile=kh", "GlobalKnownHostsFile=/dev/null", "BatchMode=yes"} {
		if !strings.Contains(got, want) {
			t.Errorf("Options() = %s, missing %q", got, want)
		}
	}
	if got := strings.Join(testenv.ClientOpts{}.Options(), " "); !strings.Contains(got, "IdentityFile=none") || !strings.Contains(got, "UserKnownHostsFile=/dev/null") {
		t.Errorf("zero ClientOpts.Options() = %s, want IdentityFile=none and UserKnownHostsFile=/dev/null", got)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	psql := testenv.Require(t, "psql")
	pg := testenv.Postgres(t)
	r := testenv.Cmd(t, time.Minute, nil, psql, pg.PSQL("-tAc", "select 6*7")...)
	if r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "42" {
		t.Fatalf("psql: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}
