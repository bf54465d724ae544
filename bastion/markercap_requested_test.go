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

// The "approval requested" marker counts against recording_max_size too.
// When it is the write that reaches the cap, the request could only fail
// (its approval could not be recorded either): the user is told at once,
// with the cap's notice, instead of waiting for approvers or the expiry,
// and the request is withdrawn (cancelled), so that no approver is asked
// about it and approving it does nothing. A long rule name puts the
// marker past the cap here, for any recording that is near it.

// longRuleName makes an "approval requested" marker larger than n bytes.
func longRuleName(n int) string { return "rule-" + strings.Repeat("x", n) }

// withdrawnRequest checks that broker holds one request, of kind, and
// that it is cancelled and cannot be approved.
func withdrawnRequest(t *testing.T, broker *approval.Broker, kind string) {
	t.Helper()
	if pending := broker.List(t.Context(), false); len(pending) != 0 {
		t.Fatalf("%d pending requests: the request the recording could not hold is left for approvers", len(pending))
	}
	all := broker.List(t.Context(), true)
	if len(all) != 1 || all[0].Kind != kind || all[0].State != approval.StateCancelled {
		states := make([]string, len(all))
		for i, r := range all {
			states[i] = r.Kind + " " + r.State
		}
		t.Fatalf("requests %q: want one %s request, cancelled", states, kind)
	}
	if r, err := broker.Decide(t.Context(), all[0].ID, bob, true, "late"); err == nil || r.State != approval.StateCancelled {
		t.Fatalf("approving the withdrawn request: state %s, %v; want it refused, still cancelled", r.State, err)
	}
}

func TestMarkerCapRequestedExecEndsAtOnce(t *testing.T) {
	t.Parallel()
	h := env(t)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: longRuleName(5000), Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	b, broker := capHoldServer(t, h, h.policy, rules, 4096)
	file := filepath.Join(t.TempDir(), "past-cap")
	s := startSSH(t, b, b.alice, "root@t1", "touch "+file)
	// ended bounds the wait well below the request's 15 minutes.
	s.ended(t, "the held command", capNotice+" (4KiB); the session was ended")
	if strings.Contains(s.stderr.String(), "held for approval") {
		t.Fatalf("stderr %q: the user was told the command waits", s.stderr.String())
	}
	withdrawnRequest(t, broker, approval.KindCommand)
	if exists(file) {
		t.Fatal("the command ran")
	}
}

// capShellEnv is a shell's bastion whose rule holding touch has a name
// whose marker does not fit in its recording's cap.
func capShellEnv(t *testing.T) *holdEnv {
	t.Helper()
	ensureBashUser(t)
	h := env(t)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: longRuleName(9000), Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	b, broker := capHoldServer(t, h, shellPolicy(h), rules, 8192)
	dir, err := os.MkdirTemp("", "postern-capheld-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil { // the shell's user may create the file
		t.Fatal(err)
	}
	return &holdEnv{harness: b, broker: broker, dir: dir}
}

func TestMarkerCapRequestedShellLineEndsAtOnce(t *testing.T) {
	t.Parallel()
	e := capShellEnv(t)
	broker := e.broker
	tm := e.shell(t)
	file := filepath.Join(e.dir, "past-cap")
	tm.enter("touch "+file+"\r", file)
	tm.expect(capNotice)
	done := make(chan error, 1)
	go func() { done <- tm.wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the shell still runs after its recording ended; terminal shows:\n%q", tm.out.String())
	}
	if strings.Contains(tm.out.String(), "held for approval") {
		t.Fatalf("terminal %q: the user was told the line waits", tm.out.String())
	}
	withdrawnRequest(t, broker, approval.KindCommand)
	if exists(file) {
		t.Fatal("the held line ran")
	}
}

// Likewise a line of a shell without a terminal: the lines after it do
// not run either.
func TestMarkerCapRequestedNoPTYLineEndsAtOnce(t *testing.T) {
	t.Parallel()
	e := capShellEnv(t)
	file, after := filepath.Join(e.dir, "past-cap"), filepath.Join(e.dir, "after")
	// startStdin's ssh is killed after a minute: far past the bound.
	_, wait := e.startStdin(t, "touch "+file+"\ntouch "+after+"\n")
	ended := make(chan struct{})
	var stderr string
	var code int
	go func() { _, stderr, code = wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(45 * time.Second):
		t.Fatal("the shell still waits for a request the recording could not hold")
	}
	if code != 255 || !strings.Contains(stderr, capNotice) || strings.Contains(stderr, "held for approval") {
		t.Fatalf("ssh exit %d stderr %q: want 255 with %q, not a wait", code, stderr, capNotice)
	}
	withdrawnRequest(t, e.broker, approval.KindCommand)
	if exists(file) || exists(after) {
		t.Fatalf("lines ran: held %v, after it %v", exists(file), exists(after))
	}
}

func TestMarkerCapRequestedSQLEndsAtOnce(t *testing.T) {
	t.Parallel()
	r := newSQLHoldRigLimited(t, SessionLimits{RecordingMaxSize: 8192})
	rules := *r.srv.current()
	rules.ApprovalRules = checkedRules(t, approval.Rule{Name: longRuleName(9000), Match: approval.Match{SQL: []string{"DROP"}},
		Action: approval.Approve, Approvers: []string{"approvers"}})
	if _, err := r.srv.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	wait := r.psqlStart(t, "", "-c", "DROP TABLE gone")
	ended := make(chan struct{})
	var stderr string
	var code int
	go func() { _, stderr, code = wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(45 * time.Second):
		t.Fatalf("psql still waits for a request the recording could not hold (%d pending)", len(r.broker.List(t.Context(), false)))
	}
	if code == 0 || !strings.Contains(stderr, capNotice) || strings.Contains(stderr, "held for approval") {
		t.Fatalf("psql exit %d stderr %q: want a failure with %q, not a wait", code, stderr, capNotice)
	}
	withdrawnRequest(t, r.broker, approval.KindSQL)
	if got := strings.TrimSpace(r.pg.SQL(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'gone'")); got != "1" {
		t.Fatalf("the DROP ran (%s tables named gone)", got)
	}
}

// With stop_recording the operator chose to go on unrecorded at the cap:
// the request is then made and waits as any other.
func TestMarkerCapRequestedStopRecordingStillHolds(t *testing.T) {
	t.Parallel()
	h := env(t)
	rules := checkedRules(t, approval.Rule{Name: longRuleName(5000), Match: approval.Match{Commands: []string{"touch"}},
		Action: approval.Approve, Approvers: []string{"approvers"}})
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil)})
	if err != nil {
		t.Fatal(err)
	}
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, ApprovalRules: rules, Approvals: broker,
		SessionLimits: SessionLimits{RecordingMaxSize: 4096, StopRecordingAtLimit: true}})
	file := filepath.Join(t.TempDir(), "approved")
	s := startSSH(t, b, b.alice, "root@t1", "touch "+file)
	req := pendingRequest(t, broker, approval.KindCommand)
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(s.stderr.String(), "held for approval") })
	if _, err := broker.Decide(t.Context(), req.ID, bob, true, "ok"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil || !exists(file) {
			t.Fatalf("ssh ended with %v, file made %v; stderr %q", err, exists(file), s.stderr.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("the approved command still runs; stderr %q", s.stderr.String())
	}
}
