package bastion

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// A connection a revocation ends while its target is being dialed is not
// the target's failure: it is neither counted as target_unreachable nor
// audited as a failed upstream connection. The target here accepts TCP
// and never answers, so the dial is in progress until the end.
func TestEndedWhileDialingNotUnreachable(t *testing.T) {
	t.Parallel()
	h := env(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	policy := Policy{
		Targets: []Target{{Name: "mute", Address: l.Addr().String(), HostKey: testenv.NewSigner(t).PublicKey(), Logins: []string{"root"}, DefaultLogin: "root"}},
		Rules:   []Rule{{Name: "alice", Principals: []string{"alice"}, Targets: []string{"mute"}, Logins: []string{"root"}}},
	}
	m := &limitMetrics{}
	b := h.extraServer(t, Config{Policy: policy, Metrics: m, DialTimeout: 2 * time.Minute})
	client := b.dialGo(t, h.alice, "root@mute")
	defer client.Close()
	select {
	case c := <-accepted:
		accepted <- c // closed at the end
	case <-time.After(30 * time.Second):
		t.Fatal("the bastion never dialed the target")
	}
	// The early connection may begin before the login ends: wait until
	// the connection is live (its certificate registered for Revoke).
	testenv.WaitFor(t, 10*time.Second, func() bool {
		live := b.srv.Live()
		return len(live) == 1 && live[0].User != ""
	})
	if n := b.srv.Revoke(certs.Revocation{KeyID: "alice@test", Reason: "left"}); n != 1 {
		t.Fatalf("Revoke ended %d connections, want 1", n)
	}
	ended := make(chan error, 1)
	go func() { ended <- client.Wait() }()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the revoked connection still runs while its target is dialed")
	}
	// Its end is audited once the dial returned: as a disconnect, or (the
	// fault) as a failed upstream connection.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return len(eventRecords(b.logs.String(), "disconnect"))+len(eventRecords(b.logs.String(), "upstream")) > 0
	})
	if got := m.String(); strings.Contains(got, RefusedTarget) {
		t.Fatalf("metrics saw %q: the revoked connection counted as an unreachable target", got)
	}
	if recs := eventRecords(b.logs.String(), "upstream"); len(recs) != 0 {
		t.Fatalf("upstream records %v: the revoked connection audited as a failed upstream", recs)
	}
}
