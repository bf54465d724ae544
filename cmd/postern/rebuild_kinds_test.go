package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// echoOnce listens on loopback and answers the first line of the first
// connection with "pong <line>"; the listener closes at the end of the test.
func echoOnce(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "pong %s", line)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRebuildKeepsKinds: sessions of every kind a recording header can
// name (shell, exec, sftp, scp and a tcp forward, through `postern serve`
// to a real sshd) are listed with the same kind, identity, login, target
// and command after their index is lost and `postern index rebuild` makes
// it again from the recordings' headers.
func TestRebuildKeepsKinds(t *testing.T) {
	t.Parallel()
	scp, sftp := testenv.Require(t, "scp"), testenv.Require(t, "sftp")
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
	port := echoOnce(t)
	s.cfg = filepath.Join(s.dir, "postern.yaml")
	os.WriteFile(s.cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
data_dir: ./data
targets:
  - name: app01
    address: %s
    host_key: %q
    logins: [%s]
    default_login: %[3]s
    forward:
      - {port: %[4]d, protocol: tcp}
rules:
  - name: devs
    principals: [alice]
    targets: [app01]
    logins: [%[3]s]
    forwards: [%[4]d]
`, sshd.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey))), u.Username, port), 0o600)
	s.start(t)
	_, s.key = testenv.NewKey(t, s.dir, "alice")
	if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", "alice", "--ttl", "1h", s.key+".pub"); r.ExitCode != 0 {
		t.Fatalf("ca sign: %s", r.Stderr)
	}
	opts := testenv.ClientOpts{Identity: s.key, KnownHosts: s.knownHosts}.Options()
	src := filepath.Join(s.dir, "upload.txt")
	os.WriteFile(src, []byte("a file\n"), 0o600)
	batch := filepath.Join(s.dir, "batch")
	os.WriteFile(batch, []byte("ls "+s.dir+"\n"), 0o600)
	runs := []struct {
		kind string
		bin  string
		args []string
		in   string
	}{
		{"exec", s.sshBin, s.sshArgs("echo exec-ok"), ""},
		{"shell", s.sshBin, append(slices.Clone(opts), "-T", "-p", s.port, "app01@127.0.0.1"), "echo shell-ok\nexit 0\n"},
		{"sftp", sftp, append(slices.Clone(opts), "-P", s.port, "-b", batch, "app01@127.0.0.1"), ""},
		{"scp", scp, append(slices.Clone(opts), "-O", "-P", s.port, src, "app01@127.0.0.1:"+filepath.Join(s.dir, "copied.txt")), ""},
		{"forward", s.sshBin, append(slices.Clone(opts), "-p", s.port, "-W", "localhost:"+strconv.Itoa(port), "app01@127.0.0.1"), "ping\n"},
	}
	for _, r := range runs {
		if res := testenv.Cmd(t, time.Minute, strings.NewReader(r.in), r.bin, r.args...); res.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s %s", r.kind, res.ExitCode, res.Stdout, res.Stderr)
		}
	}
	var before []listed
	testenv.WaitFor(t, 20*time.Second, func() bool {
		before = sessionsJSON(t, s.dir, "--config", s.cfg)
		return len(before) == len(runs) && !slices.ContainsFunc(before, func(l listed) bool { return l.Status != recorder.StatusClosed })
	})
	kinds := map[string]bool{}
	for _, l := range before {
		kinds[l.Kind] = true
	}
	for _, r := range runs {
		if !kinds[r.kind] {
			t.Fatalf("no %s session before the rebuild: %+v", r.kind, before)
		}
	}
	s.stop(t)

	// The index is lost: every session comes back from its recording.
	if err := os.Remove(filepath.Join(s.data, recorder.IndexFile)); err != nil {
		t.Fatal(err)
	}
	r := admin(t, s.dir, "index", "rebuild", "--config", s.cfg, "--json")
	var out struct {
		Rebuild recorder.RebuildReport `json:"rebuild"`
	}
	if err := json.Unmarshal(r.Stdout, &out); err != nil || r.ExitCode != 0 || len(out.Rebuild.Sealed) != len(runs) {
		t.Fatalf("index rebuild: %d %v %s %s", r.ExitCode, err, r.Stdout, r.Stderr)
	}
	after := map[string]recorder.Session{}
	for _, l := range sessionsJSON(t, s.dir, "--config", s.cfg) {
		after[l.ID] = l.Session
	}
	for _, b := range before {
		a, ok := after[b.ID]
		if !ok || a.Status != recorder.StatusRebuilt {
			t.Fatalf("%s (%s) after the rebuild: %+v", b.ID, b.Kind, a)
		}
		if a.Kind != b.Kind || a.Identity != b.Identity || a.Login != b.Login || a.Target != b.Target || a.Command != b.Command {
			t.Errorf("%s after the rebuild: kind %q identity %q login %q target %q command %q; before: %q %q %q %q %q",
				b.ID, a.Kind, a.Identity, a.Login, a.Target, a.Command, b.Kind, b.Identity, b.Login, b.Target, b.Command)
		}
	}
}
