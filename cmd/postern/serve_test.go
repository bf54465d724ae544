package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/demotarget"
	"github.com/postern/postern/internal/testenv"
	"golang.org/x/crypto/ssh"
)

// TestServeFromConfig follows the README's "Running a bastion": check a
// config, create the CA, start `postern serve`, issue a certificate with
// `ca sign`, connect with plain ssh, and stop the bastion with SIGTERM.
func TestServeFromConfig(t *testing.T) {
	t.Parallel()
	sshBin := testenv.Require(t, "ssh")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if r := admin(t, dir, "ca", "init", "--data-dir", data); r.ExitCode != 0 {
		t.Fatalf("ca init: %s", r.Stderr)
	}
	upstreamCA, err := os.ReadFile(filepath.Join(data, "ca", "upstream_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, _, _, _, err := ssh.ParseAuthorizedKey(upstreamCA)
	if err != nil {
		t.Fatal(err)
	}
	// A target that trusts the upstream CA, as sshd's TrustedUserCAKeys would.
	hostKey, _ := testenv.NewKey(t, dir, "target_host")
	target, err := demotarget.New(demotarget.Config{HostKey: hostKey, TrustedCA: caKey, Logins: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	go target.Serve()
	t.Cleanup(func() { target.Close() })

	cfg := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
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
	if r := admin(t, dir, "config", "check", "--config", cfg); r.ExitCode != 0 {
		t.Fatalf("config check: %s %s", r.Stdout, r.Stderr)
	}

	serve := exec.Command(binary(t), "serve", "--config", cfg)
	stderr, _ := serve.StderrPipe()
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	t.Cleanup(func() { serve.Process.Kill() })
	addrs := make(chan string, 1)
	logs := &testenv.Buffer{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "postern listening" {
				addrs <- line.Addr
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrs:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start:\n%s", logs.String())
	}
	_, port, _ := strings.Cut(addr, ":")

	_, key := testenv.NewKey(t, dir, "alice")
	if r := admin(t, dir, "ca", "sign", "--config", cfg, "--principal", "alice", "--ttl", "1h", key+".pub"); r.ExitCode != 0 {
		t.Fatalf("ca sign: %s", r.Stderr)
	}
	kh := filepath.Join(dir, "known_hosts")
	hk, _ := os.ReadFile(filepath.Join(data, "ca", "host_ed25519.pub"))
	os.WriteFile(kh, []byte("[127.0.0.1]:"+port+" "+string(hk)), 0o600)
	args := append(testenv.ClientOpts{Identity: key, KnownHosts: kh}.Options(), "-p", port, "app01@127.0.0.1", "echo via-serve; exit 5")
	r := testenv.Cmd(t, time.Minute, nil, sshBin, args...)
	if r.ExitCode != 5 || string(r.Stdout) != "via-serve\n" {
		t.Fatalf("ssh through serve: exit %d stdout %q stderr %q\n%s", r.ExitCode, r.Stdout, r.Stderr, logs.String())
	}
	if r := admin(t, dir, "sessions", "--config", cfg, "--json"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "via-serve") {
		t.Fatalf("sessions: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// Retention: nothing is a year old; a dry run deletes nothing.
	if r := admin(t, dir, "recordings", "prune", "--config", cfg, "--dry-run", "--json"); r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "[]" {
		t.Fatalf("prune --dry-run: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, dir, "verify", "--config", cfg, "--json"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), `"problems": []`) {
		t.Fatalf("verify --json: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}
