package bastion

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// A connection that max_connections_per_identity refuses is counted and
// audited once, whatever it tries after: a client with two certificates
// of the same identity is refused for each. Its limit_refused record
// names the connection (its session ID), as its connect record does.
func TestLimitIdentityRefusedOncePerConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	second := h.userKey(t, "alice-second", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
	m := &limitMetrics{}
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{MaxConnsPerIdentity: 1}, Metrics: m})
	b.dialGo(t, h.alice, "root@t1")
	_, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), &ssh.ClientConfig{
		User:            "root@t1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(fileSigner(t, h.alice), fileSigner(t, second))},
		HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		t.Fatal("a second connection of alice was let in at max_connections_per_identity 1")
	}
	if got := m.String(); got != "limit max_connections_per_identity refused; conn max_connections_per_identity;" {
		t.Fatalf("metrics saw %q: want the connection refused once", got)
	}
	var refused []map[string]any
	for _, rec := range eventRecords(b.logs.String(), "limit_refused") {
		if rec["limit"] == LimitConnsPerIdentity {
			refused = append(refused, rec)
		}
	}
	var sid any // the refused connection's, from its connect record (written as the handshake ends)
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, rec := range eventRecords(b.logs.String(), "connect") {
			if reason, _ := rec["reason"].(string); rec["allowed"] == false && strings.Contains(reason, "max_connections_per_identity reached") {
				sid = rec["session"]
			}
		}
		return sid != nil
	})
	if len(refused) != 1 || sid == nil || refused[0]["session"] != sid {
		t.Fatalf("limit_refused records %v, refused connection %v: want one naming the connection", refused, sid)
	}
}

// A client the bastion refuses after its signature for what it knows
// before (an access: request rule it has no grant for, its identity at
// max_connections_per_identity) causes no connection to the target: the
// early connection is for clients that will be let in.
func TestSpeculationSkipsClientsRefusedAtLogin(t *testing.T) {
	t.Parallel()
	h := env(t)
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{h.auth.UpstreamCA.PublicKey()}})
	policy := Policy{
		Targets: []Target{
			{Name: "open", Address: sshd.Addr, HostKey: sshd.HostKey, Logins: []string{"root"}, DefaultLogin: "root"},
			{Name: "guarded", Address: sshd.Addr, HostKey: sshd.HostKey, Logins: []string{"root"}, DefaultLogin: "root"},
		},
		Rules: []Rule{{Name: "alice", Principals: []string{"alice"}, Targets: []string{"open", "guarded"}, Logins: []string{"root"}}},
	}
	rules := &approval.Policy{Rules: []approval.Rule{{Name: "guarded-by-request", Scope: approval.Scope{Targets: []string{"guarded"}},
		Access: approval.AccessRequest, Action: approval.Approve, Approvers: []string{"approvers"}}}}
	if err := rules.Check(); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil), Audit: ApprovalAudit(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	b := h.extraServer(t, Config{Policy: policy, Recording: &Recording{Store: store}, ApprovalRules: rules, Approvals: broker,
		Limits: Limits{MaxConnsPerIdentity: 1}})
	// speculate logs each early connection it begins, before the client
	// is answered.
	begun := func() int { return strings.Count(b.logs.String(), "speculative upstream connection begun") }

	r := b.ssh(t, b.alice, "root@guarded", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "needs an approved request") {
		t.Fatalf("exit %d stderr %q: want the access rule's refusal", r.ExitCode, r.Stderr)
	}
	b.dialGo(t, b.alice, "root@open") // alice's one connection
	before := begun()
	r = b.ssh(t, b.alice, "root@open", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "the limit") {
		t.Fatalf("exit %d stderr %q: want the limit's refusal", r.ExitCode, r.Stderr)
	}
	if n := begun() - before; n != 0 || before != 1 {
		t.Fatalf("%d early connections for alice's connections up to her session, %d for the refused one:\n%s", before, n, b.logs.String())
	}
}

// A connection whose place another takes at max_startups (eviction) is
// counted as ended by that limit, not as a key exchange or login that
// failed.
func TestLimitEvictionCounted(t *testing.T) {
	t.Parallel()
	h := env(t)
	m := &limitMetrics{}
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{Startups: Startups{Start: 2, Rate: 100, Full: 2}}, Metrics: m})
	idle := func(src string) net.Conn {
		t.Helper()
		c, err := dialFrom(src, b.port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// The bastion's version line: it took a place.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("SSH-2.0-idle\r\n"))
		if _, err := c.Read(make([]byte, 256)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	idle("127.0.0.21")
	idle("127.0.0.21")
	idle("127.0.0.22") // takes the oldest place of 127.0.0.21
	want := "limit max_startups ended; conn max_startups;"
	testenv.WaitFor(t, 10*time.Second, func() bool { return m.String() == want })
}

// acceptMetrics is a limitMetrics that also counts accepted connections.
type acceptMetrics struct {
	limitMetrics
	accepted atomic.Int64
}

func (m *acceptMetrics) ConnAccepted() { m.accepted.Add(1) }

// Every TCP connection the listener accepts is counted as accepted, the
// ones then refused at admission (max_startups) too: refused is a part of
// accepted, as the README's metrics table says.
func TestLimitRefusedAtAdmissionCountedAccepted(t *testing.T) {
	t.Parallel()
	h := env(t)
	m := &acceptMetrics{}
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{Startups: Startups{Start: 1, Rate: 100, Full: 1}}, Metrics: m})
	dial := func() (net.Conn, string) {
		t.Helper()
		c, err := dialFrom("127.0.0.23", b.port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("SSH-2.0-idle\r\n"))
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		return c, string(buf[:n])
	}
	if _, line := dial(); !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("first connection: %q, want the bastion's version", line)
	}
	if _, line := dial(); !strings.Contains(line, "postern:") {
		t.Fatalf("second connection at max_startups 1: %q, want the refusal", line)
	}
	if got := m.String(); got != "limit max_startups refused; conn max_startups;" {
		t.Fatalf("metrics saw %q", got)
	}
	if n := m.accepted.Load(); n != 2 {
		t.Fatalf("%d connections counted accepted, want 2 (the refused one too)", n)
	}
}

// A connection evicted at max_startups for another source's place did not
// fail its login, whatever it had offered: counting it would let a
// source that fills the places get its NAT neighbours blocked.
func TestLimitEvictedIsNoFailedLogin(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{Startups: Startups{Start: 2, Rate: 100, Full: 2}, AuthFailures: 1}})
	cert := fileSigner(t, h.alice).PublicKey()
	release := make(chan struct{})
	reached := make(chan struct{}, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	for range 2 {
		wg.Go(func() {
			// Offers alice's certificate (the query passes), then never
			// signs: a login in progress, its key offered.
			stall := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
				reached <- struct{}{}
				return []ssh.Signer{&stalledSigner{cert: cert, release: release}}, nil
			})
			nc, err := dialFrom("127.0.0.26", b.port)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			sc, _, _, err := ssh.NewClientConn(nc, "127.0.0.1", &ssh.ClientConfig{
				User: "root@t1", Auth: []ssh.AuthMethod{stall},
				HostKeyCallback: ssh.FixedHostKey(b.auth.HostKey.PublicKey()), Timeout: 10 * time.Second,
			})
			if err == nil {
				sc.Close()
			}
		})
	}
	for range 2 {
		select {
		case <-reached:
		case <-time.After(30 * time.Second):
			t.Fatal("the clients did not reach authentication")
		}
	}
	src := sourceOf(&net.TCPAddr{IP: net.ParseIP("127.0.0.26")})
	// The key offered reaches the bastion after the callback: wait for
	// both connections to be logging in, then take a place from another
	// source.
	testenv.WaitFor(t, 10*time.Second, func() bool { n, _ := b.srv.gate.counts(); return n == 2 })
	c, err := dialFrom("127.0.0.27", b.port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("SSH-2.0-idle\r\n"))
	// A connection leaves the server's set after its limits were
	// settled (endLimits runs first): two left, the taker and one
	// stalled.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		b.srv.mu.Lock()
		defer b.srv.mu.Unlock()
		return len(b.srv.conns) == 2 && strings.Contains(b.logs.String(), "evicted: max_startups")
	})
	if n := b.srv.gate.failuresOf(src); n != 0 {
		t.Fatalf("the evicted connection counted as %d failed login(s) of its source", n)
	}
}
