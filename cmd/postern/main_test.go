package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"--help"}, 0, "postern serve --config FILE", ""},
		{[]string{"serve", "--help"}, 0, "-config", ""},
		{[]string{"ca", "sign", "--help"}, 0, "-principal", ""},
		{nil, 2, "", "no command given"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"serve"}, 2, "", "--config FILE is required"},
		{[]string{"serve", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"ca", "sign", "--data-dir", t.TempDir(), "x.pub"}, 2, "", "--principal is required"},
		{[]string{"ca", "sign", "--principal", "a", "--ttl", "-1h", "x.pub"}, 2, "", "--ttl must be positive"},
		{[]string{"serve", "--config", "/nonexistent/postern.yaml"}, 1, "", "/nonexistent/postern.yaml"},
		{[]string{"config", "check", "--config", "../../examples/postern.yaml"}, 0, "ok: 3 targets, 3 rules", ""},
		{[]string{"config", "check", "--config", "../../testdata/config/bad-unknown-key.yaml"}, 1, "", "bad-unknown-key.yaml:"},
	}
	for _, tt := range tests {
		code, out, errs := runCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
			t.Errorf("postern %v: exit %d, stdout %q, stderr %q; want exit %d, %q in stdout, %q in stderr",
				tt.args, code, out, errs, tt.code, tt.out, tt.err)
		}
		if n := strings.Count(out, "Usage:"); n > 1 {
			t.Errorf("postern %v: the usage printed %d times", tt.args, n)
		}
	}
}

// Every bad config in testdata/config must stop `postern serve` before it
// creates anything, with a message naming the file and line.
func TestServeRefusesBadConfigs(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/config/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("only %d bad configs in testdata/config", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			code, _, errs := runCLI(t, "serve", "--config", f)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", code, errs)
			}
			if !strings.Contains(errs, f+":") {
				t.Fatalf("stderr %q does not name %s with a line", errs, f)
			}
		})
	}
}

func TestCASignIssuesCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// ca sign refuses to create a CA: that is the bastion's job.
	signer, keyPath := testenv.NewKey(t, dir, "alice")
	if code, _, errs := runCLI(t, "ca", "sign", "--data-dir", filepath.Join(dir, "data"), "--principal", "alice", keyPath+".pub"); code != 1 || !strings.Contains(errs, "no user CA") {
		t.Fatalf("ca sign without a CA: exit %d %q", code, errs)
	}
	if code, out, errs := runCLI(t, "ca", "init", "--data-dir", filepath.Join(dir, "data")); code != 0 || strings.Count(out, "ssh-ed25519 ") != 4 {
		t.Fatalf("ca init: exit %d stdout %q stderr %q", code, out, errs)
	}
	code, _, errs := runCLI(t, "ca", "sign", "--data-dir", filepath.Join(dir, "data"), "--principal", "alice",
		"--group", "dba", "--ttl", "1h", "--source-address", "127.0.0.1/32", keyPath+".pub")
	if code != 0 {
		t.Fatalf("ca sign: exit %d: %s", code, errs)
	}
	data, err := os.ReadFile(keyPath + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.UserCert || cert.ValidPrincipals[0] != "alice" ||
		cert.CriticalOptions["source-address"] != "127.0.0.1/32" ||
		!bytes.Equal(cert.Key.Marshal(), signer.PublicKey().Marshal()) {
		t.Fatalf("issued certificate %+v", cert)
	}
	if ttl := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second; ttl > time.Hour+2*time.Minute {
		t.Fatalf("validity %s for --ttl 1h", ttl)
	}
	if code, _, errs := runCLI(t, "ca", "sign", "--data-dir", filepath.Join(dir, "data"), "--principal", "a", keyPath); code != 1 || !strings.Contains(errs, "not an OpenSSH public key") {
		t.Fatalf("signing a private key file: exit %d %q", code, errs)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  string
)

// binary builds postern once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "postern-bin-")
		if err != nil {
			binErr = err.Error()
			return
		}
		binPath = filepath.Join(dir, "postern")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Sprintf("go build: %v: %s", err, out)
		}
	})
	if binErr != "" {
		t.Fatal(binErr)
	}
	return binPath
}

// demoProc is a running `postern demo`.
type demoProc struct {
	cmd  *exec.Cmd
	cmds []string // the printed ssh commands
	text []string // every line printed, up to "Ctrl-C stops the demo."
	logs *testenv.Buffer
	done chan struct{}
}

// startDemo runs `postern demo` in work and waits for its two ssh
// commands. It is stopped (SIGTERM, then kill) at the end of the test.
func startDemo(t *testing.T, work string, extra ...string) *demoProc {
	t.Helper()
	d := &demoProc{logs: &testenv.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(binary(t), append([]string{"demo", "--listen", "127.0.0.1:0"}, extra...)...)
	d.cmd.Dir = work
	d.cmd.Stderr = d.logs
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", d.logs.String())
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(time.Minute)
	for len(d.text) == 0 || !strings.HasPrefix(d.text[len(d.text)-1], "Ctrl-C") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo exited before printing its text: %q", d.text)
			}
			d.text = append(d.text, l)
			if strings.HasPrefix(l, "ssh ") {
				d.cmds = append(d.cmds, l)
			}
		case <-timeout:
			t.Fatalf("demo printed no full text within a minute: %q", d.text)
		}
	}
	go func() {
		for range lines {
		}
	}()
	return d
}

// admin runs a postern admin command in dir.
func admin(t *testing.T, dir string, args ...string) testenv.Result {
	t.Helper()
	c := exec.Command(binary(t), args...)
	c.Dir = dir
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return testenv.Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: code}
}

// TestDemo runs the real binary like a user: `postern demo` in a fresh
// directory, then the ssh commands it printed, exactly as printed.
func TestDemo(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "ssh")
	work := t.TempDir()
	d := startDemo(t, work)
	cmds := d.cmds
	if _, err := os.Stat(filepath.Join(work, "postern-demo", "ca", "user_ca")); err != nil {
		t.Fatalf("demo state not in ./postern-demo: %v", err)
	}
	// The first command opens a shell; without a terminal the shell reads
	// commands from stdin.
	r := testenv.Cmd(t, time.Minute, strings.NewReader("echo shell-works-$((40+2))\nexit 0\n"), "sh", "-c", cmds[0])
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "shell-works-42") {
		t.Fatalf("%s\nexit %d stdout %q stderr %q", cmds[0], r.ExitCode, r.Stdout, r.Stderr)
	}
	// The second runs a command that exits 3.
	r = testenv.Cmd(t, time.Minute, nil, "sh", "-c", cmds[1])
	if r.ExitCode != 3 || !strings.Contains(string(r.Stdout), "hello from ") {
		t.Fatalf("%s\nexit %d stdout %q stderr %q", cmds[1], r.ExitCode, r.Stdout, r.Stderr)
	}
	// The third asks the bastion's admin connection who the user is.
	r = testenv.Cmd(t, time.Minute, nil, "sh", "-c", cmds[2])
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "identity:") {
		t.Fatalf("%s\nexit %d stdout %q stderr %q", cmds[2], r.ExitCode, r.Stdout, r.Stderr)
	}
	// Admin commands run in the demo's directory act on its state.
	if r := admin(t, work, "ca", "show"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "upstream CA") {
		t.Fatalf("ca show in the demo dir: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// The certificates the demo signed are in the register of
	// issued certificates, under its serial, like one from ca sign.
	certFile, err := os.ReadFile(filepath.Join(work, "postern-demo", "id_ed25519-cert.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certFile)
	if err != nil {
		t.Fatal(err)
	}
	var issued []recorder.IssuedCert
	r = admin(t, work, "ca", "issued", "--json")
	// The user's and the demo approver's.
	if err := json.Unmarshal(r.Stdout, &issued); err != nil || len(issued) != 2 ||
		!slices.ContainsFunc(issued, func(c recorder.IssuedCert) bool { return c.Serial == pub.(*ssh.Certificate).Serial }) {
		t.Fatalf("ca issued after the demo signed serial %d: %v %s %s", pub.(*ssh.Certificate).Serial, err, r.Stdout, r.Stderr)
	}
	if !strings.Contains(d.logs.String(), `"event":"cert_issued"`) {
		t.Fatalf("no cert_issued record in the demo's log:\n%s", d.logs.String())
	}
}
