package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// TestServeAgentForwarding follows the README's Agent forwarding section
// with the real binaries: a rule with agent_forwarding: true, a
// certificate from `ca sign --agent-forwarding`, then `ssh -A` through
// `postern serve` to a real sshd, where `ssh-add -l` lists the key in the
// user's ssh-agent; `postern sessions` and `play` show the agent
// connection, and verify finds the chain intact. A certificate without
// the flag is refused agent forwarding with the README's line.
func TestServeAgentForwarding(t *testing.T) {
	t.Parallel()
	sshAdd := testenv.Require(t, "ssh-add")
	keygen := testenv.Require(t, "ssh-keygen")
	s := &serveProc{dir: t.TempDir(), sshBin: testenv.Require(t, "ssh"), logs: &testenv.Buffer{}, done: make(chan error, 1)}
	s.data = filepath.Join(s.dir, "data")
	if r := admin(t, s.dir, "ca", "init", "--data-dir", s.data); r.ExitCode != 0 {
		t.Fatalf("ca init: %s", r.Stderr)
	}
	upstreamCA, _ := os.ReadFile(filepath.Join(s.data, "ca", "upstream_ca.pub"))
	caKey, _, _, _, err := ssh.ParseAuthorizedKey(upstreamCA)
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{caKey}})
	s.cfg = filepath.Join(s.dir, "postern.yaml")
	os.WriteFile(s.cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
data_dir: ./data
targets:
  - name: app01
    address: %s
    host_key: %q
rules:
  - name: deploy
    principals: [alice]
    targets: ["app*"]
    logins: [root]
    agent_forwarding: true
`, sshd.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey)))), 0o600)
	if r := admin(t, s.dir, "config", "check", "--config", s.cfg); r.ExitCode != 0 {
		t.Fatalf("config check: %s %s", r.Stdout, r.Stderr)
	}
	s.start(t)
	sock := testenv.SSHAgent(t)
	sshA := func(key string) testenv.Result {
		t.Helper()
		args := append(append([]string{"-A"}, testenv.ClientOpts{Identity: key, KnownHosts: s.knownHosts}.Options()...),
			"-p", s.port, "root@app01@127.0.0.1", "ssh-add -l")
		cmd := exec.Command(s.sshBin, args...)
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); cmd.ProcessState == nil {
			t.Fatalf("ssh -A: %v", err)
		}
		return testenv.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: cmd.ProcessState.ExitCode()}
	}

	// Without --agent-forwarding: refused, the command runs without an
	// agent.
	_, plain := testenv.NewKey(t, s.dir, "plain")
	if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", "alice", "--ttl", "1h", plain+".pub"); r.ExitCode != 0 {
		t.Fatalf("ca sign: %s", r.Stderr)
	}
	r := sshA(plain)
	if !strings.Contains(string(r.Stderr), "postern: agent forwarding is not allowed: your certificate lacks permit-agent-forwarding") ||
		r.ExitCode != 2 { // ssh-add: cannot connect to an agent
		t.Fatalf("ssh -A with a certificate without the extension: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}

	_, s.key = testenv.NewKey(t, s.dir, "alice")
	if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", "alice", "--ttl", "1h", "--agent-forwarding", s.key+".pub"); r.ExitCode != 0 {
		t.Fatalf("ca sign --agent-forwarding: %s", r.Stderr)
	}
	add := exec.Command(sshAdd, s.key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	fp := testenv.Cmd(t, time.Minute, nil, keygen, "-l", "-f", s.key+".pub")
	fields := strings.Fields(string(fp.Stdout))
	if len(fields) < 2 {
		t.Fatalf("ssh-keygen -l: %s %s", fp.Stdout, fp.Stderr)
	}
	if r := sshA(s.key); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), fields[1]) {
		t.Fatalf("ssh -A ... ssh-add -l: exit %d, stdout %q, stderr %q; want %s listed", r.ExitCode, r.Stdout, r.Stderr, fields[1])
	}

	var id string
	testenv.WaitFor(t, 20*time.Second, func() bool {
		for _, l := range sessionsJSON(t, s.dir, "--config", s.cfg) {
			if l.Kind == "agent" && l.Status == "closed" && l.Identity == "alice" && l.Command == "ssh-agent: list 1" {
				id = l.ID
				return true
			}
		}
		return false
	})
	table := admin(t, s.dir, "sessions", "--config", s.cfg)
	play := admin(t, s.dir, "play", "--config", s.cfg, "--cat", id)
	for what, want := range map[string][]string{
		string(table.Stdout): {id, "alice", "app01", "agent", "ssh-agent: list 1"},
		string(play.Stdout):  {"-- agent forwarding: a program on app01 opened a connection to alice's agent", "-- list → 2 keys: " + fields[1], "-- closed (target closed)"},
	} {
		for _, w := range want {
			if !strings.Contains(what, w) {
				t.Errorf("%q missing from:\n%s", w, what)
			}
		}
	}
	if v := admin(t, s.dir, "verify", "--config", s.cfg, "--json"); v.ExitCode != 0 || !strings.Contains(string(v.Stdout), `"problems": []`) {
		t.Fatalf("verify: %d %s %s", v.ExitCode, v.Stdout, v.Stderr)
	}
}
