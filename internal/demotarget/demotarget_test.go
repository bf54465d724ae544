package demotarget_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/demotarget"
	"github.com/postern/postern/internal/testenv"
)

type target struct {
	srv  *demotarget.Server
	host ssh.PublicKey
	ca   ssh.Signer
}

// start runs a demo target for the test, with /bin/sh as its shell; edit
// changes its config.
func start(t *testing.T, edit func(*demotarget.Config)) *target {
	t.Helper()
	host, ca := testenv.NewSigner(t), testenv.NewSigner(t)
	cfg := demotarget.Config{
		HostKey:   host,
		TrustedCA: ca.PublicKey(),
		Shell:     "/bin/sh",
		Log:       slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := demotarget.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &target{srv: srv, host: host.PublicKey(), ca: ca}
}

func (tg *target) dial(t *testing.T, user string, signer ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	c, err := ssh.Dial("tcp", tg.srv.Addr(), &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(tg.host),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// session logs in as "demo" with a valid certificate and opens a session.
func (tg *target) session(t *testing.T) *ssh.Session {
	t.Helper()
	c, err := tg.dial(t, "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *ssh.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("got error %v, want an exit status", err)
	}
	return ee.ExitStatus()
}

func TestExec(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	tests := []struct {
		name  string
		cmd   string
		stdin string
		env   map[string]string
		out   string
		code  int
	}{
		{name: "status", cmd: "echo hi; exit 3", out: "hi\n", code: 3},
		{name: "stdin until EOF", cmd: "cat; echo done", stdin: "abc\n", out: "abc\ndone\n"},
		{name: "env", cmd: `echo "$LANG|$LC_TIME|$FOO|$USER|$LOGNAME|$HOME|$TERM"`,
			env: map[string]string{"LANG": "C.UTF-8", "LC_TIME": "C", "FOO": "bar"},
			out: "C.UTF-8|C||demo|demo|" + home(t) + "|\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tg.session(t)
			for k, v := range tt.env {
				if err := s.Setenv(k, v); err != nil {
					t.Fatalf("Setenv %s: %v", k, err)
				}
			}
			s.Stdin = strings.NewReader(tt.stdin)
			out, err := s.Output(tt.cmd)
			if code := exitStatus(t, err); string(out) != tt.out || code != tt.code {
				t.Fatalf("got %q exit %d, want %q exit %d", out, code, tt.out, tt.code)
			}
		})
	}
}

func home(t *testing.T) string {
	h, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestOutputBeforeExit checks that a command's whole output arrives before
// its exit status, and stderr separately.
func TestOutputBeforeExit(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	s := tg.session(t)
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	err := s.Run("head -c 1048576 /dev/zero; echo oops >&2; exit 7")
	if code := exitStatus(t, err); code != 7 || stdout.Len() != 1<<20 || stderr.String() != "oops\n" {
		t.Fatalf("got %d bytes, stderr %q, exit %d; want 1 MiB, \"oops\\n\", exit 7", stdout.Len(), stderr.String(), code)
	}
}

func TestExitSignal(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	err := tg.session(t).Run("kill -TERM $$")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("got %v, want exit signal TERM", err)
	}
}

func TestPtyExec(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	tests := []struct {
		cmd  string
		want string
		code int
	}{
		{"stty size", "40 100\r\n", 0},
		{"echo hi; exit 3", "hi\r\n", 3},
		{`echo "$TERM"`, "xterm-256color\r\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			t.Parallel()
			s := tg.session(t)
			if err := s.RequestPty("xterm-256color", 40, 100, ssh.TerminalModes{}); err != nil {
				t.Fatal(err)
			}
			out, err := s.Output(tt.cmd)
			if code := exitStatus(t, err); string(out) != tt.want || code != tt.code {
				t.Fatalf("got %q exit %d, want %q exit %d", out, code, tt.want, tt.code)
			}
		})
	}
}

func TestPtyShellWindowChange(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	s := tg.session(t)
	if err := s.RequestPty("xterm", 40, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out testenv.Buffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	// The shell may read a line before a window-change that the client
	// sent earlier has been applied (they travel different paths), so ask
	// again until the answer shows up.
	ask := func(want string) {
		t.Helper()
		var last time.Time
		testenv.WaitFor(t, 10*time.Second, func() bool {
			if strings.Contains(out.String(), want) {
				return true
			}
			if time.Since(last) > 300*time.Millisecond {
				last = time.Now()
				io.WriteString(stdin, "stty size\n")
			}
			return false
		})
	}
	ask("40 100")
	if err := s.WindowChange(50, 120); err != nil {
		t.Fatal(err)
	}
	ask("50 120")
	io.WriteString(stdin, "exit 5\n")
	if code := exitStatus(t, s.Wait()); code != 5 {
		t.Fatalf("shell exit %d, want 5; output %q", code, out.String())
	}
}

func TestPtyNeedsPermitPty(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	c, err := tg.dial(t, "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, func(c *ssh.Certificate) { c.Extensions = nil }))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 40, 100, ssh.TerminalModes{}); err == nil {
		t.Fatal("pty granted to a certificate without permit-pty")
	}
}

// TestCloseEndsSessions checks that Close returns while a command is still
// running, ending its session.
func TestCloseEndsSessions(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	for _, withPty := range []bool{false, true} {
		s := tg.session(t)
		if withPty {
			if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
				t.Fatal(err)
			}
		}
		var out testenv.Buffer
		s.Stdout = &out
		if err := s.Start("echo started; sleep 600"); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "started") })
	}
	closed := make(chan error, 1)
	go func() { closed <- tg.srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waiting 10 s after it was called")
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	host, ca := testenv.NewSigner(t), testenv.NewSigner(t)
	tests := []struct {
		name string
		cfg  demotarget.Config
	}{
		{"all interfaces", demotarget.Config{Addr: "0.0.0.0:0", HostKey: host, TrustedCA: ca.PublicKey()}},
		{"empty host", demotarget.Config{Addr: ":0", HostKey: host, TrustedCA: ca.PublicKey()}},
		{"IPv6 any", demotarget.Config{Addr: "[::]:0", HostKey: host, TrustedCA: ca.PublicKey()}},
		{"remote IP", demotarget.Config{Addr: "192.0.2.1:22", HostKey: host, TrustedCA: ca.PublicKey()}},
		{"host name", demotarget.Config{Addr: "example.com:22", HostKey: host, TrustedCA: ca.PublicKey()}},
		{"no port", demotarget.Config{Addr: "127.0.0.1", HostKey: host, TrustedCA: ca.PublicKey()}},
		{"no host key", demotarget.Config{TrustedCA: ca.PublicKey()}},
		{"no CA", demotarget.Config{HostKey: host}},
		{"relative shell", demotarget.Config{HostKey: host, TrustedCA: ca.PublicKey(), Shell: "sh"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if srv, err := demotarget.New(tt.cfg); err == nil {
				srv.Close()
				t.Fatal("New accepted the config")
			}
		})
	}
	for _, addr := range []string{"", "localhost:0", "127.0.0.2:0"} {
		srv, err := demotarget.New(demotarget.Config{Addr: addr, HostKey: host, TrustedCA: ca.PublicKey()})
		if err != nil {
			t.Fatalf("New with Addr %q: %v", addr, err)
		}
		if !strings.HasPrefix(srv.Addr(), "127.") {
			t.Errorf("Addr() = %q for %q", srv.Addr(), addr)
		}
		srv.Close()
	}
}

// TestOpenSSHClient checks the target with OpenSSH's ssh and sftp, which
// find the certificate next to the key as in a real demo.
func TestOpenSSHClient(t *testing.T) {
	t.Parallel()
	sshBin := testenv.Require(t, "ssh")
	sftpBin := testenv.Require(t, "sftp")
	tg := start(t, nil)
	dir := t.TempDir()
	key, keyPath := testenv.NewKey(t, dir, "id_ed25519")
	testenv.WriteCert(t, keyPath+"-cert.pub", testenv.SignUserCert(t, tg.ca, key.PublicKey(), "demo"))
	_, port, err := net.SplitHostPort(tg.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(dir, "known_hosts")
	line := "[127.0.0.1]:" + port + " " + string(ssh.MarshalAuthorizedKey(tg.host))
	if err := os.WriteFile(kh, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := testenv.ClientOpts{Identity: keyPath, KnownHosts: kh}.Options()

	res := testenv.Cmd(t, 30*time.Second, nil, sshBin, append(append([]string{"-p", port}, opts...), "demo@127.0.0.1", "echo hi; exit 3")...)
	if string(res.Stdout) != "hi\n" || res.ExitCode != 3 {
		t.Errorf("ssh: got %q exit %d, want \"hi\\n\" exit 3; stderr: %s", res.Stdout, res.ExitCode, res.Stderr)
	}
	res = testenv.Cmd(t, 30*time.Second, strings.NewReader("ls\n"), sftpBin, append(append([]string{"-P", port, "-b", "-"}, opts...), "demo@127.0.0.1")...)
	if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "sftp is not available on the demo target") {
		t.Errorf("sftp: exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
}
