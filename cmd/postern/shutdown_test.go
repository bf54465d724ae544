package main

import (
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMDrains: SIGTERM with an OpenSSH session open through `serve`
// to a real sshd. The user is told on the terminal, the log says what the
// drain waits for, the user finishes within the drain, serve exits 0 once
// the session ended (not at the deadline), and verify passes.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	h := startHUPServe(t, hupPolicy{targets: []string{"app01"}, principals: []string{"alice"}, drain: "5m"})
	s := open(t, h.sshBin, h.args(h.key, "app01", liveCommand))
	off := h.logs.End()
	h.signal(t, syscall.SIGTERM)
	logs := h.waitLog(t, off, `"msg":"draining: waiting for connections to end"`)
	if !strings.Contains(logs, `"connections":1`) || !strings.Contains(logs, "alice@app01 as "+h.login) {
		t.Fatalf("the drain log does not name the session it waits for:\n%s", logs)
	}
	s.waitFor(t, func() bool {
		return strings.Contains(s.errb.String(), "the bastion is shutting down; this session will be closed within 5m0s")
	},
		"the shutdown notice on stderr")
	// New connections are refused while it drains.
	if r := h.ssh(t, nil, "echo late"); r.ExitCode == 0 {
		t.Fatalf("a connection during the drain was served: %q %s", r.Stdout, r.Stderr)
	}
	io.WriteString(s.stdin, "bye\n")
	s.stdin.Close()
	start := time.Now()
	if code := s.ended(t, 30*time.Second); code != 0 || !strings.Contains(s.out.String(), "got-bye") {
		t.Fatalf("the session did not finish its work: exit %d stdout %q stderr %q", code, s.out.String(), s.errb.String())
	}
	if code := h.exited(t, 30*time.Second); code != 0 {
		t.Fatalf("serve exit code %d after a drain:\n%s", code, h.logs.String())
	}
	if waited := time.Since(start); waited > 20*time.Second {
		t.Fatalf("serve waited %s after the last session ended", waited)
	}
	if strings.Contains(h.logs.String(), "drain deadline passed") {
		t.Fatalf("the session was cut at the deadline:\n%s", h.logs.String())
	}
	checkSealed(t, h, "closed")
}

// TestSecondSIGTERMClosesAtOnce: with a 5-minute drain and a session that
// does not end, a second SIGTERM closes it at once; the user is told the
// bastion is shutting down, serve exits 0, and the recording is sealed.
func TestSecondSIGTERMClosesAtOnce(t *testing.T) {
	t.Parallel()
	h := startHUPServe(t, hupPolicy{targets: []string{"app01"}, principals: []string{"alice"}, drain: "5m"})
	s := open(t, h.sshBin, h.args(h.key, "app01", liveCommand))
	off := h.logs.End()
	h.signal(t, syscall.SIGTERM)
	h.waitLog(t, off, `"msg":"draining: waiting for connections to end"`)
	s.waitFor(t, func() bool { return strings.Contains(s.errb.String(), "will be closed within") }, "the shutdown notice")
	start := time.Now()
	h.signal(t, syscall.SIGTERM)
	if code := h.exited(t, 30*time.Second); code != 0 {
		t.Fatalf("serve exit code %d after a second SIGTERM:\n%s", code, h.logs.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the second SIGTERM took %s", d)
	}
	s.ended(t, 30*time.Second)
	if !strings.Contains(s.errb.String(), "postern: the bastion is shutting down\r\n") {
		t.Fatalf("the user was not told why the session ended: %q", s.errb.String())
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "second stop signal: closing the sessions left now") || !strings.Contains(logs, "drain cut short") {
		t.Fatalf("the log does not say the drain was cut short:\n%s", logs)
	}
	checkSealed(t, h, "")
}

// checkSealed checks that no session is left active, each is in the
// given status ("" for any but active), and verify passes.
func checkSealed(t *testing.T, h *hupServe, status string) {
	t.Helper()
	list := sessionsJSON(t, h.dir, "--config", h.cfg)
	if len(list) == 0 {
		t.Fatal("no session recorded")
	}
	for _, l := range list {
		if l.Status == "active" || status != "" && l.Status != status || l.SHA256 == "" {
			t.Fatalf("session after shutdown: %+v", l.Session)
		}
	}
	if r := admin(t, h.dir, "verify", "--config", h.cfg); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), " 0 problems") {
		t.Fatalf("verify after shutdown: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}
