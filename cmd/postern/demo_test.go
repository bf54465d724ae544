package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

// The demo runs commands as the user who started it: it refuses to
// listen anywhere but loopback, before it creates anything.
func TestDemoLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:2222", "[::]:2222", ":2222", "192.0.2.1:2222", "example.com:22"} {
		dir := filepath.Join(t.TempDir(), "state")
		code, out, errs := runCLI(t, "demo", "--data-dir", dir, "--listen", addr)
		if code != 2 || out != "" || !strings.Contains(errs, "not a loopback address") {
			t.Errorf("demo --listen %s: exit %d, stdout %q, stderr %q; want exit 2 and the refusal", addr, code, out, errs)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("demo --listen %s created %s", addr, dir)
		}
	}
	for _, addr := range []string{"127.0.0.1:2222", "[::1]:0", "localhost:0", "127.0.0.2:0"} {
		if err := loopbackOnly(addr); err != nil {
			t.Errorf("loopbackOnly(%s): %v", addr, err)
		}
	}
}

func TestInvokedName(t *testing.T) {
	t.Parallel()
	for arg0, want := range map[string]string{
		"postern": "postern", "./bin/postern": "./bin/postern", "/usr/local/bin/postern": "/usr/local/bin/postern",
		"/tmp/a b/postern": "'/tmp/a b/postern'",
	} {
		if got := invokedName(arg0); got != want {
			t.Errorf("invokedName(%q) = %q, want %q", arg0, got, want)
		}
	}
}

// The demo's text names the binary as it was run, and its scp command
// (scp -O: the demo target has no sftp) copies a file as printed.
func TestDemoHints(t *testing.T) {
	t.Parallel()
	scp := testenv.Require(t, "scp")
	work := t.TempDir()
	d := startDemo(t, work)
	text := strings.Join(d.text, "\n")
	if !strings.Contains(text, "\n  "+binary(t)+" sessions ") {
		t.Errorf("the demo's text does not name the binary %s:\n%s", binary(t), text)
	}
	var cmd string
	for _, l := range d.text {
		if strings.HasPrefix(l, "scp -O ") {
			cmd = l
		}
	}
	if cmd == "" || !strings.HasSuffix(cmd, " FILE demo@demo@127.0.0.1:") {
		t.Fatalf("no scp -O command in the demo's text:\n%s", text)
	}
	src, dst := filepath.Join(work, "src.txt"), filepath.Join(work, "copied.txt")
	if err := os.WriteFile(src, []byte("copied through the bastion\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = strings.Replace(cmd, "scp ", shellQuote(scp)+" -o BatchMode=yes ", 1)
	cmd = strings.Replace(cmd, " FILE ", " "+shellQuote(src)+" ", 1) + shellQuote(dst)
	if r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", cmd); r.ExitCode != 0 {
		t.Fatalf("%s\nexit %d stdout %q stderr %q", cmd, r.ExitCode, r.Stdout, r.Stderr)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "copied through the bastion\n" {
		t.Fatalf("copied file: %q, %v", b, err)
	}
}

// TestDemoApprovals walks through the demo's approval commands as the
// README does, exactly as printed: the held rm waits; the approver lists
// it, approves it, and it runs; held again and denied, it never runs.
func TestDemoApprovals(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "ssh")
	work := t.TempDir()
	d := startDemo(t, work)
	if len(d.cmds) != 7 || !strings.Contains(d.cmds[3], "'rm -v ") || !strings.HasSuffix(d.cmds[4], "postern@127.0.0.1 approvals") ||
		!strings.HasSuffix(d.cmds[5], " approve ID") || !strings.HasSuffix(d.cmds[6], " deny ID --reason not now") {
		t.Fatalf("the demo's ssh commands:\n%s", strings.Join(d.cmds, "\n"))
	}
	held := filepath.Join(work, "postern-demo", "held-demo-file")
	// decide runs the held rm and, once it is pending, each decision
	// command: all but the last must be refused (exit 1, a message).
	decide := func(decisions ...string) (string, int) {
		t.Helper()
		type result struct {
			out  string
			code int
		}
		done := make(chan result, 1)
		go func() {
			r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", d.cmds[3])
			done <- result{string(r.Stdout) + string(r.Stderr), r.ExitCode}
		}()
		var id string
		testenv.WaitFor(t, 30*time.Second, func() bool {
			r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", d.cmds[4])
			for _, l := range strings.Split(string(r.Stdout), "\n") {
				if f := strings.Fields(l); len(f) > 1 && f[1] == "pending" {
					id = f[0]
				}
			}
			return id != ""
		})
		for i, decision := range decisions {
			r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", strings.Replace(decision, " ID", " "+id, 1))
			if last := i == len(decisions)-1; last && r.ExitCode != 0 || !last && (r.ExitCode != 1 || len(r.Stderr) == 0) {
				t.Fatalf("%s: exit %d %s %s", decision, r.ExitCode, r.Stdout, r.Stderr)
			}
		}
		res := <-done
		return res.out, res.code
	}
	out, code := decide(d.cmds[5])
	if _, err := os.Stat(held); code != 0 || err == nil || !strings.Contains(out, "held for approval") || !strings.Contains(out, "approved by approver; running") {
		t.Fatalf("approved: exit %d, file removed: %v\n%s", code, err != nil, out)
	}
	os.WriteFile(held, []byte("x"), 0o644)
	out, code = decide(d.cmds[6])
	if _, err := os.Stat(held); code != 126 || err != nil || !strings.Contains(out, "denied by approver: not now; the command did not run") {
		t.Fatalf("denied: exit %d, file kept: %v\n%s", code, err == nil, out)
	}
	// The CLI wrapper decides as whoever runs it: in the demo's
	// directory the demo approver, unless -i names another key (the
	// demo user's, who may not decide).
	os.WriteFile(held, []byte("x"), 0o644)
	cli := "cd " + shellQuote(work) + " && " + shellQuote(binary(t))
	out, code = decide(cli+" approve ID -i postern-demo/id_ed25519", cli+" approve ID --reason looks fine")
	if _, err := os.Stat(held); code != 0 || err == nil || !strings.Contains(out, "approved by approver") {
		t.Fatalf("approved with postern approve: exit %d, file removed: %v\n%s", code, err != nil, out)
	}
	if r := admin(t, work, "verify"); r.ExitCode != 0 {
		t.Fatalf("verify after the walk-through: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// The history, from the running demo (admin socket) and, once it has
	// stopped, from the data directory: the same both ways.
	history := func() string {
		t.Helper()
		r := admin(t, work, "approvals", "--all", "--json")
		var list []approval.Request
		if err := json.Unmarshal(r.Stdout, &list); err != nil || r.ExitCode != 0 || len(list) != 3 {
			t.Fatalf("approvals --all --json: exit %d %v\n%s%s", r.ExitCode, err, r.Stdout, r.Stderr)
		}
		if list[0].State != approval.StateApproved || list[1].State != approval.StateDenied || list[1].Decisions[0].Reason != "not now" ||
			list[2].State != approval.StateApproved || list[2].Decisions[0].Reason != "looks fine" {
			t.Fatalf("history %+v", list)
		}
		if r := admin(t, work, "approvals"); r.ExitCode != 0 || strings.Count(string(r.Stdout), "\n") != 1 {
			t.Fatalf("approvals (pending only): exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
		}
		return string(r.Stdout)
	}
	served := history()
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	if direct := history(); direct != served {
		t.Fatalf("approvals --all --json differs without the server:\n%s\nwith it:\n%s", direct, served)
	}
}
