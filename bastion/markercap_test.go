package bastion

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

// Markers count against recording_max_size, so a marker the bastion
// writes (an approval granted, a drain's notice) can be the event that
// reaches the cap. The recording then ends (its last marker says the
// session was ended) and what the marker was to vouch for must not
// happen unrecorded: the held command must not run, the notice must not
// be shown past the recording's end.

// capHoldServer is approvalServer with recordings capped at limit bytes.
func capHoldServer(t *testing.T, h *harness, policy Policy, rules *approval.Policy, limit int64) (*harness, *approval.Broker) {
	t.Helper()
	if err := rules.Check(); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil), Audit: ApprovalAudit(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	return h.extraServer(t, Config{Policy: policy, Recording: &Recording{Store: store}, ApprovalRules: rules, Approvals: broker,
		SessionLimits: SessionLimits{RecordingMaxSize: limit}}), broker
}

// capNotice is what a session ended at the recording cap shows.
const capNotice = "postern: the recording reached its size limit"

// An exec command approved with a reason that takes the "approval
// granted" marker past the cap does not run.
func TestMarkerCapApprovedExecDoesNotRun(t *testing.T) {
	t.Parallel()
	h := env(t)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	b, broker := capHoldServer(t, h, h.policy, rules, 4096)
	file := filepath.Join(t.TempDir(), "past-cap")
	s := startSSH(t, b, b.alice, "root@t1", "touch "+file)
	req := pendingRequest(t, broker, approval.KindCommand)
	if _, err := broker.Decide(t.Context(), req.ID, bob, true, strings.Repeat("r", 5000)); err != nil {
		t.Fatal(err)
	}
	s.ended(t, "the approved command", capNotice+" (4KiB); the session was ended")
	if exists(file) {
		t.Fatal("the approved command ran although its recording ended before its approval was recorded")
	}
}

// Likewise a shell line held for approval.
func TestMarkerCapApprovedShellLineDoesNotRun(t *testing.T) {
	t.Parallel()
	ensureBashUser(t)
	h := env(t)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: "touch-needs-approval", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	b, broker := capHoldServer(t, h, shellPolicy(h), rules, 8192)
	e := &holdEnv{harness: b, broker: broker, dir: t.TempDir()}
	tm := e.shell(t)
	file := filepath.Join(e.dir, "past-cap")
	tm.enter("touch "+file+"\r", file)
	r := e.heldLine(t, tm, "touch "+file)
	if _, err := broker.Decide(t.Context(), r.ID, bob, true, strings.Repeat("r", 9000)); err != nil {
		t.Fatal(err)
	}
	tm.expect(capNotice)
	done := make(chan error, 1)
	go func() { done <- tm.wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the shell still runs after its recording ended; terminal shows:\n%q", tm.out.String())
	}
	if exists(file) {
		t.Fatal("the approved line ran although its recording ended before its approval was recorded")
	}
}

// A notice (a drain's) whose marker does not fit ends the session with
// the cap's notice, at once: not shown unrecorded while the session goes
// on under a recording that says it was ended.
func TestMarkerCapAnnounceEndsSession(t *testing.T) {
	t.Parallel()
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, SessionLimits: SessionLimits{RecordingMaxSize: 4096}})
	client := b.dialGo(t, b.alice, "root@t1")
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb testenv.Buffer
	s.Stdout, s.Stderr = &out, &errb
	stdin, err := s.StdinPipe() // open: cat waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := s.Start("echo started; exec cat"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(out.String(), "started") })
	notice := "postern: notice " + strings.Repeat("n", 5000)
	if n := b.srv.Announce(notice); n != 1 {
		t.Fatalf("Announce told %d channels, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the session still runs after its recording ended; stderr %q", errb.String())
	}
	if strings.Contains(errb.String(), notice) || !strings.Contains(errb.String(), capNotice) {
		t.Fatalf("stderr %q: want the cap's notice, not the one the recording does not hold", errb.String())
	}
	verifyStore(t, store)
}

// Likewise a SQL statement held for approval on a postgres forward: the
// forward ends with the cap's notice, the statement unsent.
func TestMarkerCapApprovedSQLDoesNotRun(t *testing.T) {
	t.Parallel()
	r := newSQLHoldRigLimited(t, SessionLimits{RecordingMaxSize: 8192})
	wait := r.psqlStart(t, "", "-c", "DROP TABLE gone")
	req := r.pending(t)
	if _, err := r.broker.Decide(t.Context(), req.ID, bob, true, strings.Repeat("r", 9000)); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := wait()
	if code == 0 || !strings.Contains(stderr, capNotice) {
		t.Fatalf("psql exit %d stderr %q: want a failure with %q", code, stderr, capNotice)
	}
	if got := strings.TrimSpace(r.pg.SQL(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'gone'")); got != "1" {
		t.Fatalf("the approved DROP ran (%s tables named gone) although its recording ended before its approval was recorded", got)
	}
}
