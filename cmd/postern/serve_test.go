package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/demotarget"
	"github.com/postern/postern/internal/testenv"
)

// serveProc is a running `postern serve` (the real binary) with one
// target, app01 (a demo target trusting the upstream CA), that principal
// alice may log in to as app.
type serveProc struct {
	cmd             *exec.Cmd
	dir, data, cfg  string
	port            string
	sshBin          string
	key, knownHosts string // alice's key (with certificate) and the bastion's pinned host key
	logs            *testenv.Buffer
	done            chan error  // gets Wait's result
	loginURLs       chan string // gets the login API's URL, when it listens
	metricsURLs     chan string // gets the metrics listener's URL, when it listens
}

// startServe follows the README's "Running a bastion": create the CA,
// write and check a config, start `postern serve`, issue alice a
// certificate with `ca sign`. The server is killed at the end of the test.
func startServe(t *testing.T) *serveProc {
	t.Helper()
	s := &serveProc{dir: t.TempDir(), sshBin: testenv.Require(t, "ssh"), logs: &testenv.Buffer{}, done: make(chan error, 1)}
	s.data = filepath.Join(s.dir, "data")
	if r := admin(t, s.dir, "ca", "init", "--data-dir", s.data); r.ExitCode != 0 {
		t.Fatalf("ca init: %s", r.Stderr)
	}
	upstreamCA, err := os.ReadFile(filepath.Join(s.data, "ca", "upstream_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, _, _, _, err := ssh.ParseAuthorizedKey(upstreamCA)
	if err != nil {
		t.Fatal(err)
	}
	// A target that trusts the upstream CA, as sshd's TrustedUserCAKeys would.
	hostKey, _ := testenv.NewKey(t, s.dir, "target_host")
	target, err := demotarget.New(demotarget.Config{HostKey: hostKey, TrustedCA: caKey, Logins: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- target.Serve() }()
	t.Cleanup(func() { target.Close(); <-served })

	s.cfg = filepath.Join(s.dir, "postern.yaml")
	os.WriteFile(s.cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
data_dir: ./data
targets:
  - name: app01
    address: %s
    host_key: %q
    logins: [app]
    default_login: app
rules:
  - name: devs
    principals: [alice]
    targets: [app01]
    logins: [app]
`, target.Addr(), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey.PublicKey())))), 0o600)
	if r := admin(t, s.dir, "config", "check", "--config", s.cfg); r.ExitCode != 0 {
		t.Fatalf("config check: %s %s", r.Stdout, r.Stderr)
	}
	s.start(t)
	_, s.key = testenv.NewKey(t, s.dir, "alice")
	if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", "alice", "--ttl", "1h", s.key+".pub"); r.ExitCode != 0 {
		t.Fatalf("ca sign: %s", r.Stderr)
	}
	return s
}

// start runs `postern serve`, waits until it logs its address, and pins
// its host key for that address in known_hosts.
func (s *serveProc) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(binary(t), "serve", "--config", s.cfg)
	stderr, _ := s.cmd.StderrPipe()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	s.loginURLs = make(chan string, 1)
	s.metricsURLs = make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Addr, URL string }
			switch json.Unmarshal(sc.Bytes(), &line); line.Msg {
			case "postern listening":
				addrs <- line.Addr
			case "login API listening":
				s.loginURLs <- line.URL
			case "metrics listening":
				s.metricsURLs <- line.URL
			}
		}
		s.done <- s.cmd.Wait()
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("serve log:\n%s", s.logs.String())
		}
	})
	select {
	case addr := <-addrs:
		_, s.port, _ = strings.Cut(addr, ":")
	case err := <-s.done:
		t.Fatalf("serve exited: %v\n%s", err, s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start:\n%s", s.logs.String())
	}
	s.knownHosts = filepath.Join(s.dir, "known_hosts")
	hk, _ := os.ReadFile(filepath.Join(s.data, "ca", "host_ed25519.pub"))
	os.WriteFile(s.knownHosts, []byte("[127.0.0.1]:"+s.port+" "+string(hk)), 0o600)
}

// sshArgs are the ssh arguments that run command on app01 as alice.
func (s *serveProc) sshArgs(command string) []string {
	return append(testenv.ClientOpts{Identity: s.key, KnownHosts: s.knownHosts}.Options(), "-p", s.port, "app01@127.0.0.1", command)
}

// ssh runs command on app01 through the bastion.
func (s *serveProc) ssh(t *testing.T, stdin io.Reader, command string) testenv.Result {
	t.Helper()
	return testenv.Cmd(t, time.Minute, stdin, s.sshBin, s.sshArgs(command)...)
}

// stop sends SIGTERM and waits for serve to exit.
func (s *serveProc) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, s.logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

// TestServeFromConfig follows the README's "Running a bastion" (see
// startServe), connects with plain ssh, runs the admin commands, and stops
// the bastion with SIGTERM.
func TestServeFromConfig(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	r := s.ssh(t, nil, "echo via-serve; exit 5")
	if r.ExitCode != 5 || string(r.Stdout) != "via-serve\n" {
		t.Fatalf("ssh through serve: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, s.dir, "sessions", "--config", s.cfg, "--json"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "via-serve") {
		t.Fatalf("sessions: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// Retention: nothing is a year old; a dry run deletes nothing.
	if r := admin(t, s.dir, "recordings", "prune", "--config", s.cfg, "--dry-run", "--json"); r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "[]" {
		t.Fatalf("prune --dry-run: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, s.dir, "verify", "--config", s.cfg, "--json"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), `"problems": []`) {
		t.Fatalf("verify --json: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	s.stop(t)
}
