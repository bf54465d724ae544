package bastion

import (
	"crypto/ed25519"
	"crypto/rand"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
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

// dialErr connects an x/crypto client through r's bastion as user, with
// r's key, returning the error rather than failing the test.
func (r *reloadRig) dialErr(t *testing.T, user string) (*ssh.Client, error) {
	data, err := os.ReadFile(r.key)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, err
	}
	cs, err := ssh.NewCertSigner(certOf(t, r.key), signer)
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.FixedHostKey(r.auth.HostKey.PublicKey()), Timeout: 10 * time.Second,
	})
}

// Reloads in quick succession, granting and denying, while connections
// are made (some in their handshake as a reload lands): once the last
// reload denies, no connection is left open, whichever Rules its
// handshake decided under. Run with -race.
func TestReloadRapidWhileConnecting(t *testing.T) {
	t.Parallel()
	r := newReloadRig(t)
	deny := Policy{Targets: r.base.Targets}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards clients
	var clients []*ssh.Client
	for range 12 {
		wg.Go(func() {
			c, err := r.dialErr(t, "root@t1")
			if err != nil {
				return // refused under deny: fine
			}
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
			if s, err := c.NewSession(); err == nil {
				s.Run("true")
			}
		})
	}
	wg.Go(func() {
		for i := range 60 {
			p := r.base
			if i%2 == 1 {
				p = deny
			}
			if _, err := r.srv.SetRules(Rules{Policy: p}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if _, err := r.srv.SetRules(Rules{Policy: deny}); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if !connEnded(c) {
			t.Errorf("connection %d of %d still open after the reload that denies it", i, len(clients))
		}
		c.Close()
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { return len(r.srv.Live()) == 0 })
}
