package bastion

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// dialcut_test.go cuts a dial whose target never sends its version line.
// Here the target goes further and stops later: after its version line
// (the key exchange waits for its KEXINIT), or inside user authentication
// (an SSH server whose public key callback never returns). The client
// leaving ends the dial there too, and the target sees the bastion's
// connection close.

// eofConn reports, by closing gone, the first failed read: the peer
// closed the connection.
type eofConn struct {
	net.Conn
	once sync.Once
	gone chan struct{}
}

func (c *eofConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { close(c.gone) })
	}
	return n, err
}

// stalledTarget listens for one connection from the bastion and stalls it
// at stage ("kex" or "auth"); it returns its address, host key, a channel
// closed once the connection reached the stage, and one closed once the
// bastion's connection closed.
func stalledTarget(t *testing.T, stage string) (string, ssh.PublicKey, chan struct{}, chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	signer := testenv.NewSigner(t)
	release, reached, gone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { close(release) })
	wg.Go(func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		c := &eofConn{Conn: nc, gone: gone}
		switch stage {
		case "kex":
			io.WriteString(c, "SSH-2.0-stalled\r\n")
			var b [1]byte
			if _, err := c.Read(b[:]); err == nil { // the bastion's version began
				close(reached)
			}
		case "auth":
			var once sync.Once
			cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
				once.Do(func() { close(reached) })
				<-release // never answers while the test runs
				return nil, errors.New("stalled")
			}}
			cfg.AddHostKey(signer)
			// Its transport reads on while the callback waits: it
			// sees the close.
			ssh.NewServerConn(c, cfg)
			return
		}
		io.Copy(io.Discard, c) // whatever else comes, until the close
	})
	return l.Addr().String(), signer.PublicKey(), reached, gone
}

// cut ends a connection whose dial stalls: the client leaves, or its
// certificate is revoked; reason is the disconnect record's.
type cut struct {
	name, reason string
	end          func(*testing.T, *harness, *ssh.Client)
}

var cuts = []cut{
	{"leave", "client disconnected", func(_ *testing.T, _ *harness, c *ssh.Client) { c.Close() }},
	{"revoke", "revoked", func(t *testing.T, b *harness, _ *ssh.Client) {
		if n := b.srv.Revoke(certs.Revocation{KeyID: "alice@test", Reason: "left"}); n != 1 {
			t.Fatalf("Revoke ended %d connections, want 1", n)
		}
	}},
}

func TestDialCutInKexAndAuth(t *testing.T) {
	t.Parallel()
	for _, stage := range []string{"kex", "auth"} {
		for _, speculate := range []bool{false, true} {
			for _, cut := range cuts {
				t.Run(stage+map[bool]string{false: "-late-", true: "-early-"}[speculate]+cut.name, func(t *testing.T) {
					t.Parallel()
					dialCutAt(t, stage, speculate, cut)
				})
			}
		}
	}
}

// dialCutAt stalls a dial at stage, ends its connection by cut, and
// checks that the target sees the close and the audit trail the reason.
func dialCutAt(t *testing.T, stage string, speculate bool, cut cut) {
	h := env(t)
	addr, key, reached, gone := stalledTarget(t, stage)
	policy := Policy{
		Targets: []Target{{Name: "stalled", Address: addr, HostKey: key, Logins: []string{"root"}, DefaultLogin: "root"}},
		Rules:   []Rule{{Name: "alice", Principals: []string{"alice"}, Targets: []string{"stalled"}, Logins: []string{"root"}}},
	}
	b := h.extraServer(t, Config{Policy: policy, DialTimeout: cutDialTimeout, noSpeculation: !speculate})
	client := b.dialGo(t, h.alice, "root@stalled")
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the bastion's dial never reached %s", stage)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		live := b.srv.Live()
		return len(live) == 1 && live[0].User != ""
	})
	cut.end(t, b, client)
	select {
	case <-gone:
	case <-time.After(cutBound):
		t.Fatalf("the bastion's connection to the target still open %s after %s (stalled at %s)", cutBound, cut.name, stage)
	}
	var recs []map[string]any
	testenv.WaitFor(t, cutBound, func() bool {
		recs = eventRecords(b.logs.String(), "disconnect")
		return len(recs) == 1
	})
	if got, _ := recs[0]["reason"].(string); !strings.Contains(got, cut.reason) {
		t.Fatalf("disconnect record %v: want the reason %q", recs[0], cut.reason)
	}
	if recs := eventRecords(b.logs.String(), "upstream"); len(recs) != 0 {
		t.Fatalf("upstream records %v: the cut dial audited as the target's failure", recs)
	}
	// The bastion ends the client's connection too (a revoked one
	// included), not only the target's.
	ended := make(chan error, 1)
	go func() { ended <- client.Wait() }()
	select {
	case <-ended:
	case <-time.After(cutBound):
		t.Fatalf("the client's connection still open %s after %s", cutBound, cut.name)
	}
	testenv.WaitFor(t, cutBound, func() bool { return len(b.srv.Live()) == 0 })
}
