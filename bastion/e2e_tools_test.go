package bastion

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// ptySSH starts the OpenSSH client through the bastion on a terminal of
// the given size, as user with key and extra arguments, and copies what it
// prints into the returned buffer. wait waits for ssh and for the copy.
func (h *harness) ptySSH(t *testing.T, key, user string, rows, cols uint16, args ...string) (tty *os.File, out *testenv.Buffer, wait func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	a := append(append(h.opts(key), "-tt", "-p", strconv.Itoa(h.port), user+"@127.0.0.1"), args...)
	cmd := exec.CommandContext(ctx, h.sshBin, a...)
	cmd.Env = append(os.Environ(), "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	out = &testenv.Buffer{}
	copied := make(chan struct{})
	go func() { io.Copy(out, tty); close(copied) }()
	return tty, out, func() error {
		err := cmd.Wait()
		tty.Close()
		<-copied
		return err
	}
}

func TestInteractivePTY(t *testing.T) {
	t.Parallel()
	h := env(t)
	tty, out, wait := h.ptySSH(t, h.alice, "root@t1", 24, 80, "/bin/sh")
	expect := func(s string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("waited for %q; terminal shows:\n%s", s, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := tty.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	// The prompt: the echo of this assignment comes back, then the
	// prompt it sets ("POSTERN" "PROMPT" keeps the echo from matching).
	send("PS1='POSTERN''PROMPT$ '\n")
	expect("POSTERNPROMPT$ ")
	send("stty size; echo SIZE-DONE\n")
	expect("24 80")
	// Resize the client's terminal: ssh gets SIGWINCH and sends
	// window-change, which must reach the target's pty.
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	// The window-change and the next command travel on the same channel,
	// but SIGWINCH handling in ssh is asynchronous: poll.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; !strings.Contains(out.String(), "40 100"); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("target never saw 40x100; terminal:\n%s", out.String())
		}
		send("stty size\n")
		time.Sleep(100 * time.Millisecond)
	}
	// A command through the shell, then exit with a status.
	send("echo $((6*7))\n")
	expect("42")
	send("exit 7\n")
	err := wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("ssh exited with %v, want status 7; terminal:\n%s", err, out.String())
	}
}

// makeTree writes n files with varied sizes and nested directories.
func makeTree(t *testing.T, root string, n int) {
	t.Helper()
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i%37), fmt.Sprintf("e%d", i%3))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte(fmt.Sprintf("file %d;", i)), i%97+1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.txt", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// treeDigest hashes every regular file's relative path and content.
func treeDigest(t *testing.T, root string) (string, int) {
	t.Helper()
	h := sha256.New()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(data))
		h.Write(data)
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}

func TestSCPBothWays(t *testing.T) {
	t.Parallel()
	h := env(t)
	scp := testenv.Require(t, "scp")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	makeTree(t, src, 50)
	want, _ := treeDigest(t, src)
	for _, mode := range []struct{ name, flag string }{{"sftp protocol", ""}, {"legacy scp protocol", "-O"}} {
		t.Run(mode.name, func(t *testing.T) {
			base := append(h.opts(h.alice), "-P", strconv.Itoa(h.port), "-r", "-q")
			if mode.flag != "" {
				base = append(base, mode.flag)
			}
			remote := filepath.Join(dir, "remote"+mode.flag)
			back := filepath.Join(dir, "back"+mode.flag)
			r := testenv.Cmd(t, 2*time.Minute, nil, scp, append(base, src, "root@t1@127.0.0.1:"+remote)...)
			if r.ExitCode != 0 {
				t.Fatalf("scp up: exit %d: %s", r.ExitCode, r.Stderr)
			}
			r = testenv.Cmd(t, 2*time.Minute, nil, scp, append(base, "root@t1@127.0.0.1:"+remote, back)...)
			if r.ExitCode != 0 {
				t.Fatalf("scp down: exit %d: %s", r.ExitCode, r.Stderr)
			}
			for _, d := range []string{remote, back} {
				if got, n := treeDigest(t, d); got != want {
					t.Fatalf("%s differs from the source (%d files)", d, n)
				}
			}
			// Each file is in the audit trail, both ways.
			f := filepath.Join("d01", "e1", "f0001.txt")
			size := len(bytes.Repeat([]byte("file 1;"), 2))
			// sftp names full paths; legacy scp names files relative
			// to the directory being sent, and the record gives the
			// command's path as target.
			wants := []string{
				fmt.Sprintf(`"event":"sftp_file","op":"upload","path":%q,"bytes":%d`, filepath.Join(remote, f), size),
				fmt.Sprintf(`"event":"sftp_file","op":"download","path":%q,"bytes":%d`, filepath.Join(remote, f), size),
			}
			if mode.flag == "-O" {
				wants = []string{
					fmt.Sprintf(`"event":"scp_file","op":"upload","path":%q,"bytes":%d`, filepath.Join(remote, "src", f), size),
					fmt.Sprintf(`"event":"scp_file","op":"download","path":%q,"bytes":%d`, filepath.Join(remote, f), size),
				}
			}
			for _, want := range wants {
				testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), want) })
			}
		})
	}
}

func TestSFTPBatch(t *testing.T) {
	t.Parallel()
	h := env(t)
	sftp := testenv.Require(t, "sftp")
	dir := t.TempDir()
	data := bytes.Repeat([]byte("sftp payload\n"), 200000)
	if err := os.WriteFile(filepath.Join(dir, "up.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "doomed"), []byte("x"), 0o644)
	batch := fmt.Sprintf("put %s %s\nget %s %s\nrm %s\n",
		filepath.Join(dir, "up.bin"), filepath.Join(dir, "remote.bin"),
		filepath.Join(dir, "remote.bin"), filepath.Join(dir, "down.bin"),
		filepath.Join(dir, "doomed"))
	if err := os.WriteFile(filepath.Join(dir, "batch"), []byte(batch), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(h.opts(h.alice), "-P", strconv.Itoa(h.port), "-b", filepath.Join(dir, "batch"), "root@t1@127.0.0.1")
	r := testenv.Cmd(t, 2*time.Minute, nil, sftp, args...)
	if r.ExitCode != 0 {
		t.Fatalf("sftp: exit %d: %s", r.ExitCode, r.Stderr)
	}
	for _, f := range []string{"remote.bin", "down.bin"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes, err %v; want the %d uploaded bytes", f, len(got), err, len(data))
		}
	}
	// The audit trail names each file, direction and size, not the bytes.
	remote := filepath.Join(dir, "remote.bin")
	for _, want := range []string{
		fmt.Sprintf(`"event":"sftp_file","op":"upload","path":%q,"bytes":%d`, remote, len(data)),
		fmt.Sprintf(`"event":"sftp_file","op":"download","path":%q,"bytes":%d`, remote, len(data)),
		fmt.Sprintf(`"event":"sftp_op","op":"remove","path":%q`, filepath.Join(dir, "doomed")),
	} {
		testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), want) })
	}
}

func TestRsyncTree1000Files(t *testing.T) {
	t.Parallel()
	h := env(t)
	rsync := testenv.Require(t, "rsync")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	makeTree(t, src, 1000)
	want, n := treeDigest(t, src)
	if n != 1000 {
		t.Fatalf("made %d files", n)
	}
	rsh := h.rsyncRSH(h.rsyncer) // a rule that grants rsync
	remote := filepath.Join(dir, "remote")
	r := testenv.Cmd(t, 3*time.Minute, nil, rsync, "-a", "-e", rsh, src+"/", "root@t1@127.0.0.1:"+remote+"/")
	if r.ExitCode != 0 {
		t.Fatalf("rsync up: exit %d: %s", r.ExitCode, r.Stderr)
	}
	back := filepath.Join(dir, "back")
	r = testenv.Cmd(t, 3*time.Minute, nil, rsync, "-a", "-e", rsh, "root@t1@127.0.0.1:"+remote+"/", back+"/")
	if r.ExitCode != 0 {
		t.Fatalf("rsync down: exit %d: %s", r.ExitCode, r.Stderr)
	}
	for _, d := range []string{remote, back} {
		if got, n := treeDigest(t, d); got != want || n != 1000 {
			t.Fatalf("%s: %d files, digest match %v", d, n, got == want)
		}
	}
	// rsync's file list is not parsed: each channel has one record, of
	// the command's path, direction and bytes.
	for _, want := range []string{
		fmt.Sprintf(`"event":"rsync_file","op":"upload","path":%q`, remote+"/"),
		fmt.Sprintf(`"event":"rsync_file","op":"download","path":%q`, remote+"/"),
	} {
		testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), want) })
	}
	// A second run transfers nothing: rsync's delta protocol works.
	r = testenv.Cmd(t, 3*time.Minute, nil, rsync, "-a", "--stats", "-e", rsh, src+"/", "root@t1@127.0.0.1:"+remote+"/")
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "Number of regular files transferred: 0") {
		t.Fatalf("rsync again: exit %d stdout %s stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// OpenSSH connection sharing: one master connection through the bastion,
// ten sessions at once multiplexed over it as channels, each with its own
// output and exit status.
func TestControlMasterSharesOneConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	keyID := uniqueMarker("controlmaster-")
	key := h.userKey(t, keyID, certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: keyID})
	sock := filepath.Join(t.TempDir(), "cm.sock")
	base := append(h.opts(key), "-p", strconv.Itoa(h.port), "-S", sock)
	// -f puts the master in the background once it is authenticated; its
	// output goes to /dev/null so nothing holds our pipes.
	master := exec.Command(h.sshBin, append(base, "-M", "-N", "-f", "root@t1@127.0.0.1")...)
	if out, err := master.CombinedOutput(); err != nil {
		t.Fatalf("master: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command(h.sshBin, append(base, "-O", "exit", "root@t1@127.0.0.1")...).Run() })
	const sessions = 10
	var (
		wg      sync.WaitGroup
		results [sessions]testenv.Result
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i := range sessions {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, h.sshBin, slices.Concat(base, []string{"root@t1@127.0.0.1", fmt.Sprintf("echo mux-%d; exit %d", i, i+1)})...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := -1 // did not start, or killed
			if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
				fmt.Fprintf(&stderr, "run ssh: %v", err)
			} else {
				code = cmd.ProcessState.ExitCode()
			}
			results[i] = testenv.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}
		})
	}
	wg.Wait()
	for i, r := range results {
		if string(r.Stdout) != fmt.Sprintf("mux-%d\n", i) || r.ExitCode != i+1 {
			t.Errorf("multiplexed session %d: stdout %q exit %d stderr %s", i, r.Stdout, r.ExitCode, r.Stderr)
		}
	}
	if n := strings.Count(h.logs.String(), `"key_id":"`+keyID+`"`); n != 1 {
		t.Fatalf("bastion saw %d connections for the shared master, want 1", n)
	}
}

// Port forwarding through the target (ssh -W / -L) works for a rule that
// grants it, to ports on the target itself, and is refused otherwise.
func TestPortForwarding(t *testing.T) {
	t.Parallel()
	h := env(t)
	port := strconv.Itoa(h.echoPort)
	fwd := h.userKey(t, "fwd-pf", certs.UserCertRequest{Principals: []string{"fwd"}, TTL: time.Hour})
	// Something that talks like an SSH server on another declared port.
	fakePort := strconv.Itoa(h.bannerPort)

	tests := []struct {
		name, key, dest string
		ok              bool
		want            string // in stderr when refused
	}{
		{"granted, target by name", fwd, "t1:" + port, true, ""},
		{"granted, localhost", fwd, "localhost:" + port, true, ""},
		{"not granted", h.alice, "t1:" + port, false, "port forwarding is not allowed"},
		{"another host", fwd, "192.0.2.1:" + port, false, "only allowed to ports on t1"},
		{"the target's own sshd via localhost", fwd, "localhost:" + strconv.Itoa(h.sshd.Port), false, "ProxyJump"},
		{"an SSH server on another port", fwd, "localhost:" + fakePort, false, ""},
		{"an undeclared port", fwd, "localhost:1", false, "port 1 of t1 is not declared for forwarding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			user := "root@t1"
			r := h.sshWith(t, []string{"-W", tt.dest}, tt.key, user, strings.NewReader("ping through postern\n"))
			if tt.ok {
				if r.ExitCode != 0 || string(r.Stdout) != "ping through postern\n" {
					t.Fatalf("exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
				}
				return
			}
			if tt.want == "" {
				// Refused after the open: the channel closes
				// before any byte of the SSH banner reaches
				// the client (the line before it may).
				if strings.Contains(string(r.Stdout), "SSH-") {
					t.Fatalf("client received %q from an SSH server through a tunnel", r.Stdout)
				}
				testenv.WaitFor(t, 10*time.Second, func() bool {
					return strings.Contains(h.logs.String(), "destination speaks SSH")
				})
				return
			}
			if r.ExitCode == 0 || len(r.Stdout) != 0 || !strings.Contains(string(r.Stderr), tt.want) {
				t.Fatalf("exit %d stdout %q stderr %q; want refusal %q", r.ExitCode, r.Stdout, r.Stderr, tt.want)
			}
		})
	}
}
