package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// hupServe is `postern serve` (the real binary) in front of a real sshd,
// with a config the test rewrites: alice and bob hold certificates, and
// policy says who reaches which of the sshd's names.
type hupServe struct {
	*serveProc
	sshdAddr, sshdKey, login string
	bobKey                   string
}

// hupPolicy is what a hupServe config grants: targets are names of the
// one sshd; principals may reach every target.
type hupPolicy struct {
	targets, principals []string
	drain               string // shutdown.drain; "" leaves it out
	broken              bool   // add a key the config does not know
}

func (h *hupServe) write(t *testing.T, p hupPolicy) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "listen: \"127.0.0.1:0\"\ndata_dir: ./data\n")
	if p.drain != "" {
		fmt.Fprintf(&b, "shutdown:\n  drain: %s\n", p.drain)
	}
	b.WriteString("targets:\n")
	for _, n := range p.targets {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n    host_key: %q\n    logins: [%s]\n    default_login: %[4]s\n", n, h.sshdAddr, h.sshdKey, h.login)
	}
	fmt.Fprintf(&b, "rules:\n  - name: devs\n    principals: [%s]\n    targets: [%s]\n    logins: [%s]\n",
		strings.Join(p.principals, ", "), strings.Join(p.targets, ", "), h.login)
	if p.broken {
		b.WriteString("    forwards: [nonsense]\n")
	}
	if err := os.WriteFile(h.cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startHUPServe starts serve with policy p, and signs alice's and bob's
// keys.
func startHUPServe(t *testing.T, p hupPolicy) *hupServe {
	t.Helper()
	s := &serveProc{dir: t.TempDir(), sshBin: testenv.Require(t, "ssh"), logs: &testenv.Buffer{}, done: make(chan error, 1)}
	s.data = filepath.Join(s.dir, "data")
	if r := admin(t, s.dir, "ca", "init", "--data-dir", s.data); r.ExitCode != 0 {
		t.Fatalf("ca init: %s", r.Stderr)
	}
	upstream, _, err := readPub(filepath.Join(s.data, "ca", "upstream_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{upstream}})
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = filepath.Join(s.dir, "postern.yaml")
	h := &hupServe{serveProc: s, sshdAddr: sshd.Addr, login: u.Username,
		sshdKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey)))}
	h.write(t, p)
	s.start(t)
	_, s.key = testenv.NewKey(t, s.dir, "alice")
	_, h.bobKey = testenv.NewKey(t, s.dir, "bob")
	for who, key := range map[string]string{"alice": s.key, "bob": h.bobKey} {
		if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", who, "--ttl", "1h", key+".pub"); r.ExitCode != 0 {
			t.Fatalf("ca sign %s: %s", who, r.Stderr)
		}
	}
	return h
}

// args are the ssh arguments that run command on target as key's owner.
func (h *hupServe) args(key, target, command string) []string {
	return append(testenv.ClientOpts{Identity: key, KnownHosts: h.knownHosts}.Options(), "-p", h.port, target+"@127.0.0.1", command)
}

// signal sends sig (SIGHUP or SIGTERM) to serve with the README's line
// for it ("Stopping and reloading"), its data directory in place of the
// example's.
func (h *hupServe) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	name := map[syscall.Signal]string{syscall.SIGHUP: "HUP", syscall.SIGTERM: "TERM"}[sig]
	var line string
	for l := range strings.Lines(string(readme)) {
		if strings.HasPrefix(l, "kill -"+name+" ") {
			line, _, _ = strings.Cut(l, "#")
			break
		}
	}
	if line == "" {
		t.Fatalf("README.md has no line starting with kill -%s", name)
	}
	line = strings.ReplaceAll(line, "./postern-data", filepath.Join(filepath.Dir(h.cfg), "data"))
	if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", line, err, out)
	}
}

// waitLog waits until serve's log since off holds want, and returns it.
func (h *hupServe) waitLog(t *testing.T, off int64, want string) string {
	t.Helper()
	var logs string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if logs = h.logs.Since(off); strings.Contains(logs, want) {
			return logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log %q within 30s:\n%s", want, logs)
		}
		select {
		case err := <-h.done:
			h.done <- err
			t.Fatalf("serve exited (%v) before logging %q:\n%s", err, want, h.logs.Since(off))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// exited waits up to d for serve to exit and returns its exit code.
func (h *hupServe) exited(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-h.done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		t.Fatalf("serve did not exit within %s:\n%s", d, h.logs.String())
		return -1
	}
}

// session is an OpenSSH client session kept open: it runs liveCommand.
type session struct {
	cmd       *exec.Cmd
	out, errb testenv.Buffer
	stdin     io.WriteCloser
	done      chan struct{} // closed when the client exited
	err       error         // Wait's, once done is closed
}

// open starts ssh with args and waits until the command printed live-now.
func open(t *testing.T, sshBin string, args []string) *session {
	t.Helper()
	s := &session{cmd: exec.Command(sshBin, args...), done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.errb
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	s.cmd.WaitDelay = 10 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	s.waitFor(t, func() bool { return strings.Contains(s.out.String(), "live-now") }, "live-now on stdout")
	return s
}

// waitFor waits up to 30s for cond, failing with what if the session
// ended or the time passed first.
func (s *session) waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-s.done:
			if cond() {
				return
			}
			t.Fatalf("session ended (%v) before %s: stdout %q stderr %q", s.err, what, s.out.String(), s.errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s: stdout %q stderr %q", what, s.out.String(), s.errb.String())
		}
	}
}

// ended waits for the session to end by itself and returns its exit code.
func (s *session) ended(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		t.Fatalf("session still open after %s: stdout %q stderr %q", d, s.out.String(), s.errb.String())
	}
	if ee, ok := s.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// isOpen reports whether the client still runs.
func (s *session) isOpen() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}
