package main

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// startSSHDServe runs `postern serve` (the real binary) with one target,
// app01 (what sshArgs reaches): a real OpenSSH sshd trusting the upstream CA, which principal
// alice may reach as the login that runs the tests; alice's certificate
// comes from ca sign.
func startSSHDServe(t *testing.T) *serveProc {
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
	os.WriteFile(s.cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
data_dir: ./data
targets:
  - name: app01
    address: %s
    host_key: %q
    logins: [%s]
    default_login: %[3]s
rules:
  - name: devs
    principals: [alice]
    targets: [app01]
    logins: [%[3]s]
`, sshd.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey))), u.Username), 0o600)
	s.start(t)
	_, s.key = testenv.NewKey(t, s.dir, "alice")
	if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", "alice", "--ttl", "1h", s.key+".pub"); r.ExitCode != 0 {
		t.Fatalf("ca sign: %s", r.Stderr)
	}
	return s
}

// TestSIGKILLThenRestart: `postern serve` is killed (SIGKILL) while two
// OpenSSH sessions to a real sshd run through it. The next start checks
// the index, seals both sessions as interrupted with their recordings as
// written, and says so in its log; the recordings play up to the kill,
// verify passes, and the bastion takes new sessions.
func TestSIGKILLThenRestart(t *testing.T) {
	t.Parallel()
	s := startSSHDServe(t)
	for i := range 2 {
		liveSession(t, s.sshBin, s.sshArgs(fmt.Sprintf("echo live-now-%d; read line; echo got-$line", i))...)
	}
	var active []listed
	testenv.WaitFor(t, 20*time.Second, func() bool {
		active = sessionsJSON(t, s.dir, "--config", s.cfg, "--active")
		return len(active) == 2
	})
	// What the sessions printed reaches the files within the flush
	// interval; the kill must not lose it.
	for _, a := range active {
		testenv.WaitFor(t, 10*time.Second, func() bool {
			data, _ := os.ReadFile(filepath.Join(s.data, a.Path))
			return bytes.Contains(data, []byte(`"o", "live-now-`))
		})
	}
	// While it runs, the index is the server's: neither index command
	// touches it.
	before := mustRead(t, filepath.Join(s.data, "postern.db"))
	for _, cmd := range [][]string{{"index", "check"}, {"index", "rebuild", "--force"}} {
		r := admin(t, s.dir, append(cmd, "--config", s.cfg)...)
		if r.ExitCode != 1 || !regexp.MustCompile(`postern \(pid \d+\) is running with data directory .*: .*stop it`).Match(r.Stderr) {
			t.Fatalf("%v while serve runs: %d %s", cmd, r.ExitCode, r.Stderr)
		}
	}
	if after := mustRead(t, filepath.Join(s.data, "postern.db")); !bytes.Equal(after, before) {
		t.Fatal("index commands changed the running server's index")
	}
	s.cmd.Process.Kill()
	<-s.done
	off := s.logs.End()

	s.start(t)
	logs := s.logs.Since(off)
	if !strings.Contains(logs, `"msg":"session index checked"`) || !strings.Contains(logs, `"msg":"index repaired`) {
		t.Fatalf("the restart did not say it checked and repaired the index:\n%s", logs)
	}
	for _, a := range active {
		if !regexp.MustCompile(`"event":"recording_interrupted","recording":"` + regexp.QuoteMeta(a.ID) + `"`).MatchString(logs) {
			t.Fatalf("no recording_interrupted record for %s:\n%s", a.ID, logs)
		}
	}
	byID := map[string]listed{}
	for _, l := range sessionsJSON(t, s.dir, "--config", s.cfg) {
		byID[l.ID] = l
	}
	for _, a := range active {
		got := byID[a.ID]
		if got.Status != "interrupted" || got.SHA256 == "" {
			t.Fatalf("after SIGKILL and restart: %+v", got)
		}
		if r := admin(t, s.dir, "play", "--cat", "--config", s.cfg, a.ID); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "live-now-") {
			data, _ := os.ReadFile(filepath.Join(s.data, a.Path))
			t.Fatalf("play the interrupted session: %d %q %s\n%s", r.ExitCode, r.Stdout, r.Stderr, data)
		}
	}
	if r := admin(t, s.dir, "verify", "--config", s.cfg); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), " 0 problems") {
		t.Fatalf("verify after the restart: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := s.ssh(t, nil, "echo after-restart"); r.ExitCode != 0 || string(r.Stdout) != "after-restart\n" {
		t.Fatalf("a session after the restart: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	s.stop(t)
}
