package bastion

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// approvalEnv is a bastion with an approval broker on its index, and
// users: alice (requester), bob and dave (group approvers), carol (admin,
// not an approver), erin (neither).
type approvalEnv struct {
	*adminEnv
	broker          *approval.Broker
	bob, dave, erin string
	auditLog        *testenv.Buffer // the broker's audit records
}

func newApprovalEnv(t *testing.T) *approvalEnv {
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	auditLog := &testenv.Buffer{}
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil),
		Audit: ApprovalAudit(slog.New(slog.NewJSONHandler(auditLog, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, Admins: []string{"group:auditors"}, Approvals: broker})
	b.dir = t.TempDir()
	key := func(name string, groups ...string) string {
		return b.userKey(t, name, certs.UserCertRequest{Principals: []string{name}, Groups: groups, TTL: time.Hour, KeyID: name})
	}
	e := &approvalEnv{adminEnv: &adminEnv{harness: b, store: store, carol: key("carol", "auditors")}, broker: broker,
		bob: key("bob", "approvers"), dave: key("dave", "dev", "approvers"), erin: key("erin", "dev"), auditLog: auditLog}
	return e
}

func (e *approvalEnv) submit(t *testing.T, required int) approval.Request {
	t.Helper()
	r, err := e.broker.Submit(t.Context(), approval.Request{Kind: approval.KindCommand, Requester: "alice", RequesterPrincipals: []string{"alice"},
		Target: "t1", Login: "root", Line: "rm -rf /srv/data", Rule: "rm-needs-two", Approvers: []string{"approvers"}, Required: required,
		Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAdminApprovals(t *testing.T) {
	t.Parallel()
	e := newApprovalEnv(t)
	r := e.submit(t, 2)
	decided := make(chan approval.Request, 1)
	go func() {
		w, _ := e.broker.Wait(context.Background(), r.ID)
		decided <- w
	}()
	run := func(key string, wantExit int, want string, args ...string) string {
		t.Helper()
		res := e.admin(t, key, nil, args...)
		out := string(res.Stdout) + string(res.Stderr)
		if res.ExitCode != wantExit || !strings.Contains(out, want) {
			t.Fatalf("%v: exit %d, want %d and %q:\n%s", args, res.ExitCode, wantExit, want, out)
		}
		return out
	}
	// Who sees it: the requester, the approvers, the admins; not erin.
	run(e.alice, 0, r.ID, "approvals")
	run(e.carol, 0, r.ID, "approvals")
	if out := run(e.erin, 0, "ID", "approvals"); strings.Contains(out, r.ID) {
		t.Fatalf("erin sees the request:\n%s", out)
	}
	run(e.erin, 1, "no request "+r.ID+" that you may see", "show", r.ID)
	run(e.erin, 1, "no request "+r.ID+" that you may see", "approve", r.ID)

	// Who may not decide, each told why in one line.
	run(e.alice, 1, "your own request", "approve", r.ID)
	run(e.carol, 1, "needs an approver in group approvers", "approve", r.ID)
	run(e.bob, 2, "say why with --reason", "deny", r.ID)
	run(e.bob, 2, "is not a request ID", "approve", "x;rm")

	// Two distinct approvers.
	run(e.bob, 0, "1 of 2 approvals", "approve", r.ID, "--reason", "ticket", "CHG-42")
	run(e.bob, 1, "you already approved", "approve", r.ID)
	var list []approval.Request
	if err := json.Unmarshal([]byte(run(e.dave, 0, r.ID, "approvals", "--json")), &list); err != nil || len(list) != 1 || len(list[0].Decisions) != 1 {
		t.Fatalf("approvals --json: %+v %v", list, err)
	}
	run(e.dave, 0, "request "+r.ID+" approved", "approve", r.ID)
	if w := <-decided; w.State != approval.StateApproved || len(w.Decisions) != 2 || w.Decisions[0].Reason != "ticket CHG-42" {
		t.Fatalf("the waiter saw %+v", w)
	}
	out := run(e.bob, 0, "approved by bob", "show", r.ID)
	for _, want := range []string{"ticket CHG-42", "approved by dave", "rm -rf /srv/data", "state:", "approved"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	run(e.dave, 1, "already approved", "deny", r.ID, "--reason", "too late")
	if out := run(e.bob, 0, "ID", "approvals"); strings.Contains(out, r.ID) {
		t.Fatalf("a decided request is listed as pending:\n%s", out)
	}
	run(e.bob, 0, r.ID, "approvals", "--all")

	// A denial needs one approver, and reaches the requester's waiter.
	r2 := e.submit(t, 2)
	run(e.dave, 0, "request "+r2.ID+" denied", "deny", r2.ID, "--reason", "not during the freeze")
	if w, err := e.broker.Wait(t.Context(), r2.ID); err != nil || w.State != approval.StateDenied || w.Decisions[0].Reason != "not during the freeze" {
		t.Fatalf("denied request: %+v %v", w, err)
	}

	// Every change is an audit record, with who decided and why.
	if err := checkLogKeys(e.auditLog.String()); err != nil {
		t.Fatal(err)
	}
	var changes []string
	for line := range strings.Lines(e.auditLog.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["event"] == "approval" && m["request"] == r.ID {
			changes = append(changes, fmt.Sprint(m["change"], ":", m["by"], ":", m["reason"]))
		}
	}
	if got := strings.Join(changes, " "); got != "requested:<nil>:<nil> decision:bob:ticket CHG-42 approved:dave:" {
		t.Fatalf("audit records of %s: %s", r.ID, got)
	}

	// Every change is sealed: verify checks both requests.
	rep, err := recorder.VerifyStore(t.Context(), e.store, recorder.VerifyOptions{Key: e.store.PublicKey()})
	if err != nil || len(rep.Problems) != 0 || rep.Approvals != 2 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// approvals --watch prints each change an approver may see as it happens.
func TestAdminApprovalsWatch(t *testing.T) {
	t.Parallel()
	e := newApprovalEnv(t)
	client := e.dialGo(t, e.bob, AdminUser)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start("approvals --watch"); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ID ") {
		t.Fatalf("watch header: %q %v", lines.Text(), lines.Err())
	}
	r := e.submit(t, 1)
	if _, err := e.broker.Decide(t.Context(), r.ID, approval.Approver{Name: "dave", Groups: []string{"approvers"}}, true, "ok"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"requested " + r.ID + " alice on t1", "approved " + r.ID} {
		if !lines.Scan() || !strings.Contains(lines.Text(), want) {
			t.Fatalf("watch line %q, want %q (%v)", lines.Text(), want, lines.Err())
		}
	}
}

// A bastion with a broker but no approval rules: request says no request
// is needed (and does not fail on the missing rules).
func TestRequestWithoutRules(t *testing.T) {
	t.Parallel()
	e := newApprovalEnv(t)
	r := e.admin(t, e.alice, nil, "request", "t1", "--for", "1h", "--reason", "x")
	if r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "needs no request: connect directly") {
		t.Fatalf("exit %d stderr %s", r.ExitCode, r.Stderr)
	}
}
