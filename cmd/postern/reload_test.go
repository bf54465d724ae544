package main

import (
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// TestSIGHUPAddsTarget: SIGHUP with a session open applies a config with a
// new target, which is reachable at once, while the session goes on; the
// reload is logged (targets added) and sealed in the audit chain.
func TestSIGHUPAddsTarget(t *testing.T) {
	t.Parallel()
	h := startHUPServe(t, hupPolicy{targets: []string{"app01"}, principals: []string{"alice"}})
	if r := testenvCmd(t, h, h.key, "app02", "echo too-early"); r.ExitCode == 0 {
		t.Fatalf("app02 reachable before the reload: %q", r.Stdout)
	}
	s := open(t, h.sshBin, h.args(h.key, "app01", liveCommand))
	off := h.logs.End()
	h.write(t, hupPolicy{targets: []string{"app01", "app02"}, principals: []string{"alice"}})
	h.signal(t, syscall.SIGHUP)
	logs := h.waitLog(t, off, `"msg":"config reloaded"`)
	if !strings.Contains(logs, `"targets_added":["app02"]`) || !strings.Contains(logs, `"event":"config_reload","ok":true`) ||
		!strings.Contains(logs, `"connections_ended":0`) {
		t.Fatalf("the reload log does not say what changed:\n%s", logs)
	}
	if r := testenvCmd(t, h, h.key, "app02", "echo via-app02"); r.ExitCode != 0 || string(r.Stdout) != "via-app02\n" {
		t.Fatalf("the new target after the reload: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if !s.isOpen() {
		t.Fatalf("the open session ended on the reload: %q %q", s.out.String(), s.errb.String())
	}
	io.WriteString(s.stdin, "bye\n")
	s.stdin.Close()
	if code := s.ended(t, 30*time.Second); code != 0 || !strings.Contains(s.out.String(), "got-bye") {
		t.Fatalf("the session open across the reload: exit %d %q %q", code, s.out.String(), s.errb.String())
	}
	// The chain holds the reload; verify still passes.
	r := admin(t, h.dir, "verify", "--config", h.cfg)
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), " 0 problems") {
		t.Fatalf("verify after a reload: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	h.stop(t)
}

// TestSIGHUPBrokenConfigKept: a config with an error is refused on SIGHUP,
// every problem logged with its line; the old policy stays (the old target
// works, the new one named in the broken file does not).
func TestSIGHUPBrokenConfigKept(t *testing.T) {
	t.Parallel()
	h := startHUPServe(t, hupPolicy{targets: []string{"app01"}, principals: []string{"alice"}})
	off := h.logs.End()
	h.write(t, hupPolicy{targets: []string{"app01", "app02"}, principals: []string{"alice"}, broken: true})
	h.signal(t, syscall.SIGHUP)
	logs := h.waitLog(t, off, `"msg":"config reload refused: the file does not load; the config in force stays"`)
	if !strings.Contains(logs, "rules[0].forwards[0]") || strings.Contains(logs, `"msg":"config reloaded"`) {
		t.Fatalf("the refusal does not name the bad key:\n%s", logs)
	}
	if r := testenvCmd(t, h, h.key, "app01", "echo still-app01"); r.ExitCode != 0 || string(r.Stdout) != "still-app01\n" {
		t.Fatalf("the old target after a refused reload: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := testenvCmd(t, h, h.key, "app02", "echo app02"); r.ExitCode == 0 {
		t.Fatalf("the broken config's target was applied: %q", r.Stdout)
	}
	h.stop(t)
}

// TestSIGHUPRemovedGrantEndsSession: a reload that takes bob's access away
// ends bob's open session with a notice; alice's session goes on, and
// bob's recording is sealed.
func TestSIGHUPRemovedGrantEndsSession(t *testing.T) {
	t.Parallel()
	h := startHUPServe(t, hupPolicy{targets: []string{"app01"}, principals: []string{"alice", "bob"}})
	alice := open(t, h.sshBin, h.args(h.key, "app01", liveCommand))
	bob := open(t, h.sshBin, h.args(h.bobKey, "app01", liveCommand))
	off := h.logs.End()
	h.write(t, hupPolicy{targets: []string{"app01"}, principals: []string{"alice"}})
	h.signal(t, syscall.SIGHUP)
	logs := h.waitLog(t, off, `"msg":"config reloaded"`)
	if !strings.Contains(logs, `"connections_ended":1`) || !strings.Contains(logs, `"cause":"policy_changed"`) {
		t.Fatalf("the reload log does not show bob's connection ended:\n%s", logs)
	}
	bob.ended(t, 30*time.Second)
	const notice = "postern: your access to app01 as "
	if !strings.Contains(bob.errb.String(), notice) || !strings.Contains(bob.errb.String(), "was removed by a policy change") {
		t.Fatalf("bob was not told why: %q", bob.errb.String())
	}
	if !alice.isOpen() || strings.Contains(alice.errb.String(), "policy change") {
		t.Fatalf("alice's session was touched: %q", alice.errb.String())
	}
	if r := testenvCmd(t, h, h.bobKey, "app01", "echo bob-again"); r.ExitCode == 0 {
		t.Fatalf("bob connects after losing access: %q", r.Stdout)
	}
	io.WriteString(alice.stdin, "bye\n")
	alice.stdin.Close()
	if code := alice.ended(t, 30*time.Second); code != 0 || !strings.Contains(alice.out.String(), "got-bye") {
		t.Fatalf("alice's session: exit %d %q %q", code, alice.out.String(), alice.errb.String())
	}
	h.stop(t)
	checkSealed(t, h, "")
}

// testenvCmd runs command on target through the bastion with key.
func testenvCmd(t *testing.T, h *hupServe, key, target, command string) testenv.Result {
	t.Helper()
	return testenv.Cmd(t, time.Minute, nil, h.sshBin, h.args(key, target, command)...)
}
