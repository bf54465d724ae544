package bastion

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// A user whose command is held for approval has no program running yet,
// but is told as others are when the bastion starts draining or the
// connection nears its maximum duration: one line on stderr, marked in
// the recording. A channel whose program has not started is told once it
// starts or is held.

// heldFor starts ssh running "touch FILE" through b, held by the rule
// "touch", and waits until the user was told; it returns the client, the
// request and FILE.
func heldFor(t *testing.T, b *harness, broker *approval.Broker) (*bgSSH, approval.Request, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "held")
	s := startSSH(t, b, b.alice, "root@t1", "touch "+file)
	req := pendingRequest(t, broker, approval.KindCommand)
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(s.stderr.String(), "held for approval (request "+req.ID) })
	return s, req, file
}

// notRunCancelled checks, once the session ended, that its command did not
// run and its request is no longer pending.
func notRunCancelled(t *testing.T, broker *approval.Broker, req approval.Request, file string) {
	t.Helper()
	if exists(file) {
		t.Fatal("the held command ran")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		r, err := broker.Get(t.Context(), req.ID)
		return err == nil && r.State == approval.StateCancelled
	})
}

func TestDrainTellsHeldCommand(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	broker := b.srv.cfg.Approvals
	s, req, file := heldFor(t, b, broker)
	const notice = "postern: drain notice for the held command"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- b.srv.Drain(ctx, notice) }()
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(s.stderr.String(), "\n"+notice+"\r\n") })
	if r, _ := broker.Get(t.Context(), req.ID); r.State != approval.StatePending {
		t.Fatalf("request %s after the notice: want it still pending", r.State)
	}
	cancel() // the drain's deadline: the session is closed
	if err := <-drained; err == nil {
		t.Fatal("Drain closed the held session at its deadline and says nothing")
	}
	s.ended(t, "the held session", "postern: request "+req.ID+" cancelled; the command did not run")
	notRunCancelled(t, broker, req, file)
}

// A notice that comes while a channel is open but has not asked to run
// anything is kept, and given once its command is held.
func TestAnnounceKeptUntilHeld(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	client := b.dialGo(t, b.alice, "root@t1")
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testenv.Buffer
	s.Stderr = &stderr
	const notice = "postern: notice before the command"
	// The client learns the channel is open before the bastion lists it:
	// announced again until it is (a channel keeps a notice once).
	testenv.WaitFor(t, 10*time.Second, func() bool { return b.srv.Announce(notice) == 1 })
	file := filepath.Join(t.TempDir(), "held")
	if err := s.Start("touch " + file); err != nil {
		t.Fatal(err)
	}
	req := pendingRequest(t, b.srv.cfg.Approvals, approval.KindCommand)
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(stderr.String(), notice) })
	got := stderr.String()
	if held := strings.Index(got, "held for approval (request "+req.ID); held < 0 || held > strings.Index(got, notice) {
		t.Fatalf("stderr %q: want the held notice, then the kept one", got)
	}
	if n := strings.Count(got, notice); n != 1 {
		t.Fatalf("stderr %q: the notice shown %d times", got, n)
	}
}

func TestDurationWarnsHeldCommand(t *testing.T) {
	t.Parallel()
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil), Audit: ApprovalAudit(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	rules := checkedRules(t, approval.Rule{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}})
	// Warned 15s in (a quarter before the end), wherever the hold is by
	// then: a channel held after the warning is warned when it is. 20s
	// leaves a loaded machine time to reach the hold before the end.
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, ApprovalRules: rules, Approvals: broker,
		SessionLimits: SessionLimits{MaxDuration: 20 * time.Second}})
	s, req, file := heldFor(t, b, broker)
	const warn = "postern: this connection reaches the bastion's maximum session duration (20s) in "
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(s.stderr.String(), "\n"+warn) })
	s.ended(t, "the held session", "postern: request "+req.ID+" cancelled; the command did not run")
	if n := strings.Count(s.stderr.String(), warn); n != 1 {
		t.Fatalf("stderr %q: warned %d times", s.stderr.String(), n)
	}
	notRunCancelled(t, broker, req, file)
	_, _, raw := h.recordingOf(t, store, func(r recorder.Session) bool { return strings.Contains(r.Command, "touch") })
	if !strings.Contains(raw, `"m", "`+warn) {
		t.Fatalf("the held command's recording has no marker with the warning:\n%s", raw)
	}
}

// A notice to a held command that its recording cannot take (its cap)
// ends the channel with the cap's notice, as at a running program; the
// request is withdrawn and the command never runs.
func TestMarkerCapNoticeToHeldCommand(t *testing.T) {
	t.Parallel()
	h := env(t)
	rules := checkedRules(t, approval.Rule{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}})
	b, broker := capHoldServer(t, h, h.policy, rules, 4096)
	s, req, file := heldFor(t, b, broker)
	notice := "postern: notice " + strings.Repeat("n", 5000)
	if n := b.srv.Announce(notice); n != 1 {
		t.Fatalf("Announce told %d channels, want 1", n)
	}
	s.ended(t, "the held session", capNotice+" (4KiB); the session was ended")
	if strings.Contains(s.stderr.String(), notice) {
		t.Fatal("the notice the recording could not take was shown")
	}
	notRunCancelled(t, broker, req, file)
	if _, err := broker.Decide(t.Context(), req.ID, bob, true, "late"); err == nil {
		t.Fatal("the request of the ended session could still be approved")
	}
}

// A session started after the connection's users were warned of its
// maximum duration is warned too, when it starts.
func TestDurationWarnsChannelStartedAfter(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, SessionLimits: SessionLimits{MaxDuration: 40 * time.Second}})
	client := b.dialGo(t, h.alice, "root@t1")
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testenv.Buffer
	s.Stderr = &stderr
	// Warned 30s in, the channel open but its program not started; the
	// program then starts within the 10s left (a loaded -race run can take
	// seconds to start one).
	testenv.WaitFor(t, 60*time.Second, func() bool {
		for _, rec := range eventRecords(b.logs.String(), "session_limit") {
			if rec["limit"] == limitDuration && rec["action"] == "warned" {
				return true
			}
		}
		return false
	})
	if err := s.Start("sleep 60"); err != nil {
		t.Fatal(err)
	}
	const warn = "postern: this connection reaches the bastion's maximum session duration (40s) in "
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(stderr.String(), "\n"+warn) })
	if n := strings.Count(stderr.String(), warn); n != 1 {
		t.Fatalf("stderr %q: warned %d times", stderr.String(), n)
	}
}
