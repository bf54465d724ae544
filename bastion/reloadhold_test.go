package bastion

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// checkedRules returns rules, checked.
func checkedRules(t *testing.T, rules ...approval.Rule) *approval.Policy {
	t.Helper()
	p := &approval.Policy{Rules: rules}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	return p
}

// pendingRequest waits (bounded) for the one pending request of kind.
func pendingRequest(t *testing.T, b *approval.Broker, kind string) approval.Request {
	t.Helper()
	var got approval.Request
	testenv.WaitFor(t, 30*time.Second, func() bool {
		for _, r := range b.List(t.Context(), false) {
			if r.Kind == kind && r.State == approval.StatePending {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

var oldApprover = approval.Approver{Name: "bob", Principals: []string{"bob"}, Groups: []string{"approvers"}}

// A command held under approval rules a reload then changes does not run
// when an approver of the old rule approves it: the approval was asked
// under rules no longer in force. The requester is told to run it again.
func TestReloadVoidsApprovalAskedUnderOldRules(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	broker := b.srv.cfg.Approvals
	file := filepath.Join(t.TempDir(), "held")
	s := startSSH(t, b, b.alice, "root@t1", "touch "+file)
	req := pendingRequest(t, broker, approval.KindCommand)
	// The same rule, now for another group of approvers.
	narrowed := checkedRules(t, approval.Rule{Name: "touch", Match: approval.Match{Commands: []string{"touch"}},
		Action: approval.Approve, Approvers: []string{"security"}})
	if _, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: narrowed}); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.Decide(t.Context(), req.ID, oldApprover, true, "ok"); err != nil {
		t.Fatal(err)
	}
	s.ended(t, "the held command", "postern: request "+req.ID+" was approved under approval rules a policy change replaced; the command did not run: run it again to ask under the rules in force")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("the command ran: %v", err)
	}
}

// A shell's lines are judged under the rules in force when each is typed,
// not those of the shell's start; and a reload that makes the rules judge
// the lines of a connection they did not judge ends it (its shells have
// no line tracker to read what is typed).
func TestReloadJudgesShellLinesUnderNewRules(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	client := b.dialGo(t, b.alice, "root@t1")
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testenv.Buffer
	sess.Stderr = &stderr
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	readLine := func(want string) {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			lines.Scan()
			got <- lines.Text()
		}()
		select {
		case l := <-got:
			if l != want {
				t.Fatalf("shell printed %q, want %q (stderr %q)", l, want, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("shell printed nothing; want %q (stderr %q)", want, stderr.String())
		}
	}
	stdin.Write([]byte("echo before\n"))
	readLine("before")
	deny := checkedRules(t, approval.Rule{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
		approval.Rule{Name: "no-echo", Match: approval.Match{Commands: []string{"echo"}}, Action: approval.Deny})
	if _, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: deny}); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("echo after\n"))
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "postern: refused by rule no-echo") {
			t.Fatalf("shell after the reload: %v, stderr %q", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the line denied by the new rules did not end the shell; stderr %q", stderr.String())
	}

	// No rule judges fwd's lines; a reload adds one that does.
	fwd := b.userKey(t, "fwd-lines", certs.UserCertRequest{Principals: []string{"fwd"}, TTL: time.Hour})
	scoped := checkedRules(t, approval.Rule{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve,
		Approvers: []string{"approvers"}, Scope: approval.Scope{Requesters: []string{"alice"}}})
	if _, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: scoped}); err != nil {
		t.Fatal(err)
	}
	s := startSSH(t, b, fwd, "root@t1", "echo started; sleep 120")
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(s.stdout.String(), "started") })
	judged := checkedRules(t, approval.Rule{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve,
		Approvers: []string{"approvers"}})
	if n, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: judged}); err != nil || n != 1 {
		t.Fatalf("SetRules with rules that now judge fwd's lines ended %d (%v), want 1", n, err)
	}
	s.ended(t, "the session whose lines were not judged", "postern: what you may do on t1 as root was narrowed by a policy change (approval rules now judge what is typed); reconnect")
}

// An access request approved after a reload changed its access rule's
// approvers grants nothing; a connection made on a grant whose rule a
// reload changed is ended.
func TestReloadAccessGrantUnderOldRule(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	broker := b.srv.cfg.Approvals
	access := func(group string) *approval.Policy {
		return checkedRules(t, approval.Rule{Name: "t1-by-request", Scope: approval.Scope{Targets: []string{"t1"}},
			Access: approval.AccessRequest, Action: approval.Approve, Approvers: []string{group}})
	}
	if _, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: access("approvers")}); err != nil {
		t.Fatal(err)
	}
	ask := func() approval.Request {
		t.Helper()
		r := b.ssh(t, b.alice, AdminUser, nil, "request", "t1", "--login", "root", "--for", "1h", "--reason", "reload test")
		if r.ExitCode != 0 {
			t.Fatalf("request: %d %s", r.ExitCode, r.Stderr)
		}
		return pendingRequest(t, broker, approval.KindAccess)
	}
	// Approved under the rule in force, then the rule changes: the
	// connection made on it ends.
	req := ask()
	if _, err := broker.Decide(t.Context(), req.ID, oldApprover, true, "ok"); err != nil {
		t.Fatal(err)
	}
	s := startSSH(t, b, b.alice, "root@t1", "echo started; sleep 120")
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(s.stdout.String(), "started") })
	if n, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: access("security")}); err != nil || n != 1 {
		t.Fatalf("SetRules that changed the grant's rule ended %d (%v), want 1", n, err)
	}
	s.ended(t, "the session on a grant of the old rule", "postern: access to t1 as root now needs an approved request (rule t1-by-request); ask with: ssh postern@bastion request t1 --login root --for 1h --reason WHY")
	r := b.ssh(t, b.alice, "root@t1", nil, "echo in")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "needs an approved request") {
		t.Fatalf("a connection on a grant of the old rule: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}

	// Asked under the old rule and approved, after the reload, by one of
	// its approvers (the request names them): it grants nothing.
	if _, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: access("approvers")}); err != nil {
		t.Fatal(err)
	}
	r = b.ssh(t, b.alice, AdminUser, nil, "request", "t1", "--login", testUser, "--for", "1h", "--reason", "reload test")
	if r.ExitCode != 0 {
		t.Fatalf("request: %d %s", r.ExitCode, r.Stderr)
	}
	req = pendingRequest(t, broker, approval.KindAccess)
	if _, err := b.srv.SetRules(Rules{Policy: b.policy, ApprovalRules: access("security")}); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.Decide(t.Context(), req.ID, oldApprover, true, "ok"); err != nil {
		t.Fatal(err)
	}
	r = b.ssh(t, b.alice, testUser+"@t1", nil, "echo in")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "needs an approved request") {
		t.Fatalf("a connection on a request approved after its rule changed: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// An admin connection's `approvals --watch` shows every request only
// while its identity is an admin: once a reload removed it from admins,
// it shows what any approver of its groups may see.
func TestReloadRemovedAdminWatch(t *testing.T) {
	t.Parallel()
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil), Audit: ApprovalAudit(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	rules := checkedRules(t, approval.Rule{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}})
	b := h.extraServer(t, Config{Policy: h.policy, Admins: []string{"boss"}, ApprovalRules: rules, Approvals: broker})
	boss := h.userKey(t, "boss", certs.UserCertRequest{Principals: []string{"boss"}, Groups: []string{"security"}, TTL: time.Hour})
	sess, err := b.dialGo(t, boss, AdminUser).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("approvals --watch"); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	next := func() string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			lines.Scan()
			got <- lines.Text()
		}()
		select {
		case l := <-got:
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("approvals --watch printed nothing")
			return ""
		}
	}
	submit := func(line string, approvers ...string) {
		t.Helper()
		_, err := broker.Submit(t.Context(), approval.Request{Kind: approval.KindCommand, Requester: "carol", RequesterPrincipals: []string{"carol"},
			Target: "t1", Login: "root", Line: line, Rule: "touch", Approvers: approvers, Required: 1, Expires: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Submitted until the watch shows one: then it has subscribed.
	testenv.WaitFor(t, 30*time.Second, func() bool {
		submit("touch ready", "security")
		return strings.Contains(next(), "touch ready")
	})
	if _, err := b.srv.SetRules(Rules{Policy: h.policy, ApprovalRules: rules}); err != nil {
		t.Fatal(err)
	}
	submit("touch hidden", "approvers")
	submit("touch shown", "security")
	for range 100 { // skips what came of the ready loop
		l := next()
		if strings.Contains(l, "touch hidden") {
			t.Fatalf("after the reload removed boss from admins, the watch showed %s", l)
		}
		if strings.Contains(l, "touch shown") {
			return
		}
	}
	t.Fatal("the watch never showed the request boss approves")
}
