package bastion

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

// SetRules judges open connections again: invalid Rules change nothing;
// Rules that grant the same keep sessions; a changed masking mode, or a
// new access rule the connection has no grant for, ends the session with
// a notice and a connection_ended record; later connections follow the
// new Rules.
func TestSetRulesRevalidates(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	base := b.policy
	withTargets := func(f func(*Target)) Policy {
		p := Policy{Targets: slices.Clone(base.Targets), Rules: base.Rules}
		for i := range p.Targets {
			f(&p.Targets[i])
		}
		return p
	}
	s1 := startSSH(t, b, b.alice, "root@t1", "echo started; sleep 120")
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(s1.stdout.String(), "started") })

	noKey := withTargets(func(t *Target) { t.HostKey, t.KnownHostsFile, t.HostCA = nil, "", nil })
	if n, err := b.srv.SetRules(Rules{Policy: noKey}); err == nil || n != 0 {
		t.Fatalf("SetRules with a target without a host key: %d %v", n, err)
	}
	if n, err := b.srv.SetRules(Rules{Policy: withTargets(func(*Target) {})}); err != nil || n != 0 {
		t.Fatalf("SetRules with the same grants ended %d (%v)", n, err)
	}
	last4 := withTargets(func(t *Target) { t.Masking = "last4" })
	if n, err := b.srv.SetRules(Rules{Policy: last4}); err != nil || n != 1 {
		t.Fatalf("SetRules with t1's masking changed ended %d (%v), want 1", n, err)
	}
	s1.ended(t, "the session under the old masking", "postern: the masking of t1 changed; reconnect to go on under it")

	s2 := startSSH(t, b, b.alice, "root@t1", "echo started; sleep 120")
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(s2.stdout.String(), "started") })
	access := &approval.Policy{Rules: []approval.Rule{{Name: "t1-by-request", Scope: approval.Scope{Targets: []string{"t1"}},
		Access: approval.AccessRequest, Action: approval.Approve, Approvers: []string{"approvers"}}}}
	if err := access.Check(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.srv.SetRules(Rules{Policy: last4, ApprovalRules: access}); err != nil || n != 1 {
		t.Fatalf("SetRules with an access rule ended %d (%v), want 1", n, err)
	}
	s2.ended(t, "the session without a grant", "postern: access to t1 as root now needs an approved request (rule t1-by-request); ask with: ssh postern@bastion request t1 --login root --for 1h --reason WHY")
	r := b.ssh(t, b.alice, "root@t1", nil, "echo in")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "needs an approved request (rule t1-by-request)") {
		t.Fatalf("a new connection under the access rule: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	ended := eventRecords(b.logs.String(), "connection_ended")
	if len(ended) != 2 || ended[0]["cause"] != "policy_changed" || ended[1]["cause"] != "policy_changed" {
		t.Fatalf("connection_ended records %v", ended)
	}
}
