package bastion

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// A connection that ends while the bastion dials its target (a
// revocation, the client leaving) ends the dial at once, whatever stage it
// reached, whether the dial began after authentication or early
// (speculate.go): here the target accepts TCP and never sends its SSH
// banner, and DialTimeout is a minute, far past the test's bound, so a
// dial that runs its course fails the test.

// cutDialTimeout is DialTimeout in these tests; cutBound how soon the end
// must come.
const (
	cutDialTimeout = time.Minute
	cutBound       = 10 * time.Second
)

// mutedDial starts a bastion (with early upstream connections if
// speculate) whose one target accepts TCP and never answers, connects
// alice to it, and returns the bastion, alice's client and the target's
// side of the bastion's connection, once the bastion has dialed and its
// connection is live.
func mutedDial(t *testing.T, speculate bool) (*harness, *ssh.Client, net.Conn) {
	t.Helper()
	h := env(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		t.Cleanup(func() { c.Close() })
		accepted <- c
	}()
	policy := Policy{
		Targets: []Target{{Name: "mute", Address: l.Addr().String(), HostKey: testenv.NewSigner(t).PublicKey(), Logins: []string{"root"}, DefaultLogin: "root"}},
		Rules:   []Rule{{Name: "alice", Principals: []string{"alice"}, Targets: []string{"mute"}, Logins: []string{"root"}}},
	}
	b := h.extraServer(t, Config{Policy: policy, DialTimeout: cutDialTimeout, noSpeculation: !speculate})
	client := b.dialGo(t, h.alice, "root@mute")
	t.Cleanup(func() { client.Close() })
	var target net.Conn
	select {
	case target = <-accepted:
		if target == nil {
			t.Fatal("the target's listener failed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the bastion never dialed the target")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		live := b.srv.Live()
		return len(live) == 1 && live[0].User != ""
	})
	return b, client, target
}

// cutPromptly checks that the bastion closed its connection to the target
// and audited the client connection's end, within cutBound.
func cutPromptly(t *testing.T, b *harness, target net.Conn, reason string) {
	t.Helper()
	target.SetReadDeadline(time.Now().Add(cutBound))
	if _, err := io.Copy(io.Discard, target); err != nil { // the bastion's version line, then EOF
		t.Fatalf("the bastion's connection to the target still open after %s (%v): the dial runs its course", cutBound, err)
	}
	var recs []map[string]any
	testenv.WaitFor(t, cutBound, func() bool {
		recs = eventRecords(b.logs.String(), "disconnect")
		return len(recs) == 1
	})
	if got, _ := recs[0]["reason"].(string); !strings.Contains(got, reason) {
		t.Fatalf("disconnect record %v: want the reason %q", recs[0], reason)
	}
	if recs := eventRecords(b.logs.String(), "upstream"); len(recs) != 0 {
		t.Fatalf("upstream records %v: the cut dial audited as the target's failure", recs)
	}
}

func TestDialCutByRevocation(t *testing.T) {
	t.Parallel()
	for _, speculate := range []bool{false, true} {
		t.Run(map[bool]string{false: "late", true: "early"}[speculate], func(t *testing.T) {
			t.Parallel()
			b, client, target := mutedDial(t, speculate)
			if n := b.srv.Revoke(certs.Revocation{KeyID: "alice@test", Reason: "left"}); n != 1 {
				t.Fatalf("Revoke ended %d connections, want 1", n)
			}
			cutPromptly(t, b, target, "revoked")
			ended := make(chan error, 1)
			go func() { ended <- client.Wait() }()
			select {
			case <-ended:
			case <-time.After(cutBound):
				t.Fatal("the revoked client's connection still open")
			}
		})
	}
}

func TestDialCutByClientLeaving(t *testing.T) {
	t.Parallel()
	for _, speculate := range []bool{false, true} {
		t.Run(map[bool]string{false: "late", true: "early"}[speculate], func(t *testing.T) {
			t.Parallel()
			b, client, target := mutedDial(t, speculate)
			client.Close()
			cutPromptly(t, b, target, "client disconnected")
		})
	}
}
