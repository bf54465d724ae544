package bastion

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

// holdEnv is a bastion whose rules deny `shred`, hold `touch` for one
// approver of group approvers, and hold `mkdir` with a one-second
// timeout; everything else runs.
type holdEnv struct {
	*harness
	broker *approval.Broker
	dir    string // where the commands create their marker files (the target is this machine)
}

func newHoldEnv(t *testing.T) *holdEnv {
	t.Helper()
	h := env(t)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: "no-shred", Match: approval.Match{Commands: []string{"shred"}}, Action: approval.Deny},
		{Name: "touch-needs-approval", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
		{Name: "mkdir-quick", Match: approval.Match{Commands: []string{"mkdir"}}, Action: approval.Approve, Approvers: []string{"approvers"}, Timeout: time.Second},
		{Name: "viakh-by-request", Scope: approval.Scope{Targets: []string{"viakh"}}, Access: approval.AccessRequest, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	b, broker := approvalServer(t, h, h.policy, rules)
	return &holdEnv{harness: b, broker: broker, dir: t.TempDir()}
}

// approvalServer starts a bastion for policy whose rules (checked first)
// hold commands in a broker on its own index.
func approvalServer(t testing.TB, h *harness, policy Policy, rules *approval.Policy) (*harness, *approval.Broker) {
	t.Helper()
	if err := rules.Check(); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil), Audit: ApprovalAudit(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	return h.extraServer(t, Config{Policy: policy, Recording: &Recording{Store: store}, ApprovalRules: rules, Approvals: broker}), broker
}

// start runs ssh with command in the background; wait returns its result.
func (e *holdEnv) start(t *testing.T, extra []string, command string) (cancel func(), wait func() (stdout, stderr string, code int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	args := append(append(extra, e.opts(e.alice)...), "-p", strconv.Itoa(e.port), "root@t1@127.0.0.1", command)
	cmd := exec.CommandContext(ctx, e.sshBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cancel, func() (string, string, int) {
		cmd.Wait()
		cancel()
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
}

// pending waits for the one pending request and returns it.
func (e *holdEnv) pending(t *testing.T) approval.Request {
	t.Helper()
	var list []approval.Request
	testenv.WaitFor(t, 30*time.Second, func() bool {
		list = e.broker.List(t.Context(), false)
		return len(list) == 1
	})
	return list[0]
}

var bob = approval.Approver{Name: "bob", Principals: []string{"bob"}, Groups: []string{"approvers"}}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func TestExecHeldThenApproved(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	marker := filepath.Join(e.dir, "approved")
	_, wait := e.start(t, []string{"-o", "SetEnv=" + ReasonEnv + "=\"ticket CHG-7\""}, "touch "+marker+" && echo ran")
	r := e.pending(t)
	if r.Line != "touch "+marker+" && echo ran" || r.Rule != "touch-needs-approval" || r.Requester != "alice" || r.Reason != "ticket CHG-7" || r.Session == "" {
		t.Fatalf("request %+v", r)
	}
	if exists(marker) {
		t.Fatal("the held command ran before approval")
	}
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, true, "go ahead"); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := wait()
	if code != 0 || stdout != "ran\n" || !exists(marker) {
		t.Fatalf("after approval: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	want := regexp.MustCompile(`postern: held for approval \(request ` + r.ID + `, rule touch-needs-approval, expires in 15m0s\): .*\r?\n` +
		`postern: request ` + r.ID + ` approved by bob: go ahead; running`)
	if !want.MatchString(stderr) {
		t.Fatalf("stderr %q", stderr)
	}
}

func TestExecHeldThenDenied(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	marker := filepath.Join(e.dir, "denied")
	_, wait := e.start(t, nil, "sh -c 'touch "+marker+"'") // through sh -c: still touch
	r := e.pending(t)
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, "not today"); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := wait()
	if code != ExitRefused || exists(marker) || !strings.Contains(stderr, "postern: request "+r.ID+" denied by bob: not today; the command did not run") {
		t.Fatalf("after denial: exit %d, marker %v, stderr %q", code, exists(marker), stderr)
	}
}

func TestExecHoldExpires(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	marker := filepath.Join(e.dir, "expired")
	_, wait := e.start(t, nil, "mkdir "+marker)
	_, stderr, code := wait()
	if code != ExitRefused || exists(marker) || !strings.Contains(stderr, "expired; the command did not run") {
		t.Fatalf("after the timeout: exit %d, marker %v, stderr %q", code, exists(marker), stderr)
	}
}

// The client leaving while its command is held cancels the request, and
// a later approval cannot run it.
func TestExecHoldCancelledWhenClientLeaves(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	marker := filepath.Join(e.dir, "cancelled")
	cancel, wait := e.start(t, nil, "touch "+marker)
	r := e.pending(t)
	cancel() // kills ssh
	wait()
	testenv.WaitFor(t, 30*time.Second, func() bool {
		g, _ := e.broker.Get(t.Context(), r.ID)
		return g.State == approval.StateCancelled
	})
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, true, ""); err == nil || exists(marker) {
		t.Fatalf("approved after cancellation: %v, marker %v", err, exists(marker))
	}
}

// deny rules refuse at once: nothing reaches the target; other commands
// run unhindered.
func TestExecDenyRuleAndUnflagged(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	marker := filepath.Join(e.dir, "shredded")
	os.WriteFile(marker, []byte("x"), 0o600)
	r := e.ssh(t, e.alice, "root@t1", nil, "ls / && shred -u "+marker)
	if r.ExitCode != ExitRefused || !exists(marker) || !strings.Contains(string(r.Stderr), "postern: refused by rule no-shred") {
		t.Fatalf("deny: exit %d, marker %v, stderr %s", r.ExitCode, exists(marker), r.Stderr)
	}
	if len(e.broker.List(t.Context(), true)) != 0 {
		t.Fatal("a denied command made a request")
	}
	r = e.ssh(t, e.alice, "root@t1", nil, "echo unflagged")
	if r.ExitCode != 0 || string(r.Stdout) != "unflagged\n" || strings.Contains(string(r.Stderr), "postern:") {
		t.Fatalf("unflagged: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// An access: request rule refuses the connections it covers without an
// approved grant, with one line saying how to ask; the others go on.
func TestAccessRequestRuleFailsClosed(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	r := e.ssh(t, e.alice, "root@viakh", nil, "echo in")
	if r.ExitCode != 255 || strings.Contains(string(r.Stdout), "in") ||
		!strings.Contains(string(r.Stderr), "postern: access to viakh as root needs an approved request (rule viakh-by-request); ask with: ssh postern@bastion request viakh --login root --for 1h --reason WHY") {
		t.Fatalf("exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := e.ssh(t, e.alice, "root@t1", nil, "echo in"); r.ExitCode != 0 {
		t.Fatalf("t1: exit %d stderr %s", r.ExitCode, r.Stderr)
	}
}

// Just-in-time access: asked for over the admin connection, approved by
// an approver, it lets the requester in for its window; when the window
// ends the open session is closed with a notice.
func TestJustInTimeAccess(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	admin := func(args ...string) testenv.Result { return e.ssh(t, e.alice, AdminUser, nil, args...) }
	if r := admin("request", "viakh", "--login", "root", "--for", "2s"); r.ExitCode != 2 || !strings.Contains(string(r.Stderr), "say why with --reason") {
		t.Fatalf("no reason: exit %d %s", r.ExitCode, r.Stderr)
	}
	if r := admin("request", "t1", "--for", "1h", "--reason", "x"); r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "needs no request") {
		t.Fatalf("no rule: exit %d %s", r.ExitCode, r.Stderr)
	}
	r := admin("request", "viakh", "--login", "root", "--for", "3s", "--reason", "deploy", "CHG-9")
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "access to viakh as root for 3s, waiting for approval by group approvers (rule viakh-by-request") {
		t.Fatalf("request: exit %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	req := e.pending(t)
	if req.Kind != approval.KindAccess || req.Reason != "deploy CHG-9" || req.For != 3*time.Second {
		t.Fatalf("request %+v", req)
	}
	if r := e.ssh(t, e.alice, "root@viakh", nil, "echo in"); r.ExitCode != 255 {
		t.Fatalf("connected before approval: exit %d %s", r.ExitCode, r.Stdout)
	}
	if _, err := e.broker.Decide(t.Context(), req.ID, bob, true, "ok"); err != nil {
		t.Fatal(err)
	}
	// In, for the window: a session still open when it ends is closed
	// with a notice.
	r = e.ssh(t, e.alice, "root@viakh", nil, "echo in; sleep 60")
	if !strings.HasPrefix(string(r.Stdout), "in\n") || !strings.Contains(string(r.Stderr), "postern: your access to viakh (request "+req.ID+") ended at ") {
		t.Fatalf("on the grant: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := e.ssh(t, e.alice, "root@viakh", nil, "echo in"); r.ExitCode != 255 {
		t.Fatalf("connected after the grant ended: exit %d %s", r.ExitCode, r.Stdout)
	}
}
