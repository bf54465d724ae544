package bastion

import (
	"crypto/ed25519"
	"crypto/rand"
	"maps"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
)

// reloadRig is a bastion of its own whose one rule grants principal
// "reload" everything a grant can hold on t1 (both declared forwards,
// remote forwards, agent forwarding, every transfer, file_pans allow).
type reloadRig struct {
	*harness
	key  string
	base Policy
}

func newReloadRig(t *testing.T) *reloadRig {
	t.Helper()
	h := env(t)
	t1 := h.policy.Targets[0]
	t1.Forwards = slices.Clone(t1.Forwards)
	base := Policy{Targets: []Target{t1}, Rules: []Rule{{Name: "reload", Principals: []string{"reload"}, Targets: []string{"t1"},
		Logins: []string{"root"}, Forwards: []int{AnyDeclaredPort}, RemoteForwards: []int{AnyDeclaredPort}, AgentForwarding: true,
		Transfers: TransferKinds, FilePANs: FilePANsAllow}}}
	b := h.extraServer(t, Config{Policy: base})
	key := h.userKey(t, "reload", certs.UserCertRequest{Principals: []string{"reload"}, TTL: time.Hour})
	return &reloadRig{harness: b, key: key, base: base}
}

// changed returns a deep enough copy of the rig's policy with f applied.
func (r *reloadRig) changed(f func(t *Target, rule *Rule)) Policy {
	t := r.base.Targets[0]
	t.Forwards = slices.Clone(t.Forwards)
	t.Labels = maps.Clone(t.Labels)
	rule := r.base.Rules[0]
	rule.Forwards, rule.RemoteForwards, rule.Transfers = slices.Clone(rule.Forwards), slices.Clone(rule.RemoteForwards), slices.Clone(rule.Transfers)
	f(&t, &rule)
	return Policy{Targets: []Target{t}, Rules: []Rule{rule}}
}

// ended reports whether client's connection closed within a bound.
func connEnded(client *ssh.Client) bool {
	done := make(chan struct{})
	go func() { client.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(15 * time.Second):
		return false
	}
}

// A reload that narrows what a connection was granted, in any way a new
// channel on it would be judged by (ports it may forward to, how a port is
// parsed, remote forwards, agent forwarding, transfers, file_pans, the
// target's address, host key or labels), ends the connection: its new
// channels would otherwise be judged under the grant of its handshake. A
// reload that only widens keeps it.
func TestReloadNarrowedGrantEndsConnection(t *testing.T) {
	t.Parallel()
	r := newReloadRig(t)
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ssh.NewPublicKey(other.Public())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    func(t *Target, rule *Rule)
		ends bool
	}{
		{name: "forwards off", f: func(_ *Target, u *Rule) { u.Forwards = nil }, ends: true},
		{name: "one forward port", f: func(_ *Target, u *Rule) { u.Forwards = []int{r.echoPort} }, ends: true},
		{name: "port no longer declared", f: func(t *Target, _ *Rule) { t.Forwards = t.Forwards[:1] }, ends: true},
		{name: "port now parsed as postgres", f: func(t *Target, _ *Rule) { t.Forwards[0].Protocol = ForwardPostgres }, ends: true},
		{name: "remote forwards narrowed", f: func(_ *Target, u *Rule) { u.RemoteForwards = []int{40999} }, ends: true},
		{name: "agent forwarding off", f: func(_ *Target, u *Rule) { u.AgentForwarding = false }, ends: true},
		{name: "transfers off", f: func(_ *Target, u *Rule) { u.Transfers = []string{} }, ends: true},
		{name: "rsync no longer granted", f: func(_ *Target, u *Rule) { u.Transfers = nil }, ends: true},
		{name: "file_pans stricter", f: func(_ *Target, u *Rule) { u.FilePANs = FilePANsMask }, ends: true},
		{name: "address changed", f: func(t *Target, _ *Rule) { t.Address = "localhost" + t.Address[len("127.0.0.1"):] }, ends: true},
		{name: "host key changed", f: func(t *Target, _ *Rule) { t.HostKey = otherKey }, ends: true},
		{name: "labels changed", f: func(t *Target, _ *Rule) { t.Labels = map[string]string{"env": "prod"} }, ends: true},
		{name: "unchanged", f: func(*Target, *Rule) {}},
		{name: "another target added", f: func(*Target, *Rule) {}},
	}
	for _, tc := range cases {
		client := r.dialGo(t, r.key, "root@t1")
		ch, err := openForward(client, "localhost", uint32(r.echoPort))
		if err != nil {
			t.Fatalf("%s: forward before the reload: %v", tc.name, err)
		}
		echoes(t, ch)
		p := r.changed(tc.f)
		if tc.name == "another target added" {
			extra := p.Targets[0]
			extra.Name = "t2"
			p.Targets = append(p.Targets, extra)
		}
		n, err := r.srv.SetRules(Rules{Policy: p})
		if err != nil {
			t.Fatalf("%s: SetRules: %v", tc.name, err)
		}
		want := 0
		if tc.ends {
			want = 1
		}
		if n != want {
			t.Errorf("%s: SetRules ended %d connections, want %d", tc.name, n, want)
		}
		if tc.ends && !connEnded(client) {
			t.Errorf("%s: the connection still runs", tc.name)
		}
		if !tc.ends {
			if _, err := openForward(client, "localhost", uint32(r.echoPort)); err != nil {
				t.Errorf("%s: a forward after a reload that grants the same: %v", tc.name, err)
			}
		}
		client.Close()
		if _, err := r.srv.SetRules(Rules{Policy: r.base}); err != nil {
			t.Fatal(err)
		}
	}
}
