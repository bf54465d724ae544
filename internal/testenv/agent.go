package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SSHAgent runs a private OpenSSH ssh-agent in the foreground for the
// test, listening on a socket in a fresh directory, and stops it in
// t.Cleanup. It returns the socket (what SSH_AUTH_SOCK names). A missing
// ssh-agent skips the test (fails it in CI).
func SSHAgent(t testing.TB) string {
	t.Helper()
	bin := Require(t, "ssh-agent")
	// Not t.TempDir: a socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "testenv-agent-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.Command(bin, "-D", "-a", sock)
	var log Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("testenv: start ssh-agent: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("ssh-agent log:\n%s", log.String())
		}
	})
	// The socket file appears at bind, before the agent listens: wait
	// until a connection is taken, not for the file.
	WaitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return sock
}

// AgentList runs `ssh-add -l` against the agent at sock and returns its
// lines; an agent without identities gives none.
func AgentList(t testing.TB, sock string) []string {
	t.Helper()
	bin := Require(t, "ssh-add")
	cmd := exec.Command(bin, "-l")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && strings.Contains(text, "no identities") {
		return nil
	}
	if err != nil {
		t.Fatalf("testenv: ssh-add -l: %v: %s", err, out)
	}
	return strings.Split(text, "\n")
}
