package bastion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

// With a terminal, what the line gate tells the user of a held line (that
// it is held, that it was approved) is a marker in the recording too. When
// that marker is the write that reaches the recording's cap, the notice is
// not shown and the channel ends, as for the "approval requested" and
// "approval granted" markers: a notice shown but not recorded would be a
// gap in the evidence, after a final marker saying the session was ended,
// and the line would wait for approvers (or run) all the same.

// capShellEnvRule is capShellEnv with a rule holding touch named name.
func capShellEnvRule(t *testing.T, name string) *holdEnv {
	t.Helper()
	ensureBashUser(t)
	h := env(t)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: name, Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	b, broker := capHoldServer(t, h, shellPolicy(h), rules, 8192)
	dir, err := os.MkdirTemp("", "postern-capnotice-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil { // the shell's user may create the file
		t.Fatal(err)
	}
	return &holdEnv{harness: b, broker: broker, dir: dir}
}

// endsAtCap waits (bounded) for the shell to end with the cap's notice,
// and checks that the terminal never showed not.
func (tm *term) endsAtCap(t *testing.T, not string) {
	t.Helper()
	if !tm.within(capNotice, 30*time.Second) {
		t.Fatalf("the shell did not end at the cap; terminal shows:\n%q", tm.out.String())
	}
	done := make(chan error, 1)
	go func() { done <- tm.wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the shell still runs after its recording ended; terminal shows:\n%q", tm.out.String())
	}
	if strings.Contains(tm.out.String(), not) {
		t.Fatalf("terminal %q: shown %q, which its recording could not take", tm.out.String(), not)
	}
}

// A rule name of 4000 bytes: the "approval requested" marker fits in the
// 8KiB cap after the shell's start, the held notice (which names the rule
// too) after it does not.
func TestMarkerCapHeldNoticeShellLineEndsAtOnce(t *testing.T) {
	t.Parallel()
	e := capShellEnvRule(t, longRuleName(4000))
	tm := e.shell(t)
	file := filepath.Join(e.dir, "past-cap")
	tm.enter("touch "+file+"\r", file)
	tm.endsAtCap(t, "held for approval")
	withdrawnRequest(t, e.broker, approval.KindCommand)
	if exists(file) {
		t.Fatal("the held line ran")
	}
}

// An approver's reason of 4000 bytes: the "approval granted" marker fits,
// the notice "approved …; running" (which quotes the reason too) does not;
// the line does not run after the recording's end.
func TestMarkerCapApprovedNoticeShellLineDoesNotRun(t *testing.T) {
	t.Parallel()
	e := capShellEnvRule(t, "touch")
	tm := e.shell(t)
	file := filepath.Join(e.dir, "past-cap")
	tm.enter("touch "+file+"\r", file)
	req := pendingRequest(t, e.broker, approval.KindCommand)
	tm.expect("held for approval (request " + req.ID)
	if _, err := e.broker.Decide(t.Context(), req.ID, bob, true, strings.Repeat("r", 4000)); err != nil {
		t.Fatal(err)
	}
	tm.endsAtCap(t, "approved by bob")
	if exists(file) {
		t.Fatal("the approved line ran after its recording ended")
	}
	// Nothing more of it comes later either.
	testenv.WaitFor(t, 10*time.Second, func() bool { return len(e.srv.Live()) == 0 })
	if exists(file) {
		t.Fatal("the approved line ran after its recording ended")
	}
}

// A line of a shell without a terminal whose request the recording could
// not hold ends the channel; the gate judges nothing after that end: the
// same line judged again (its input ended meanwhile) was submitted anew,
// failed (the channel's context had ended), and the user was told its
// request "could not be recorded", the log an error.
func TestMarkerCapRequestedNoPTYJudgedOnce(t *testing.T) {
	t.Parallel()
	e := capShellEnv(t)
	file := filepath.Join(e.dir, "past-cap")
	_, wait := e.startStdin(t, "touch "+file+"\n")
	_, stderr, code := wait()
	if code != 255 || !strings.Contains(stderr, capNotice) || strings.Contains(stderr, "not run") {
		t.Fatalf("ssh exit %d stderr %q: want 255 with only %q", code, stderr, capNotice)
	}
	if strings.Contains(e.logs.String(), "approval request not recorded") {
		t.Fatal("the line was judged again after the channel ended: an approval request not recorded is logged")
	}
	withdrawnRequest(t, e.broker, approval.KindCommand)
}
