package bastion

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	h := env(t)
	// The notice reaches the client on its session channel, so the
	// timeout must not come before that channel runs: the bastion dials
	// the target in between, which on a loaded machine can take longer
	// than the 500ms this test used.
	b := h.extraServer(t, Config{Policy: h.policy, IdleTimeout: 2 * time.Second})
	args := append(b.opts(h.alice), "-p", strconv.Itoa(b.port), "root@t1@127.0.0.1", "sleep 60")
	r := testenv.Cmd(t, 30*time.Second, nil, h.sshBin, args...)
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "idle for 2s") {
		t.Fatalf("exit %d stderr %q: want the idle timeout message", r.ExitCode, r.Stderr)
	}
}

// freezer is a loopback TCP proxy that can stop passing the client's bytes
// to the server, as a client that vanished without a FIN would.
type freezer struct {
	l      net.Listener
	frozen chan struct{}
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l, frozen: make(chan struct{})}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		go io.Copy(c, s)
		buf := make([]byte, 32*1024)
		for {
			n, err := c.Read(buf)
			select {
			case <-f.frozen:
				// Swallow everything from now on.
				if err != nil {
					return
				}
				continue
			default:
			}
			if n > 0 {
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return f
}

func TestKeepAliveEndsDeadConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	// A probe goes unanswered for KeepAliveInterval*KeepAliveMax before
	// the client is dropped: 3 s, not the 0.9 s of 300ms probes, which a
	// live client in this loaded, -race test process could take to answer.
	b := h.extraServer(t, Config{Policy: h.policy, KeepAliveInterval: time.Second, KeepAliveMax: 3})
	logs := b.logs
	f := newFreezer(t, "127.0.0.1:"+strconv.Itoa(b.port))

	_, port, _ := net.SplitHostPort(f.l.Addr().String())
	p, _ := strconv.Atoi(port)
	client := (&harness{port: p, auth: h.auth}).dialGo(t, h.alice, "root@t1")
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("sleep 60"); err != nil {
		t.Fatal(err)
	}
	// Alive while answering: several keepalive rounds pass.
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Count(logs.String(), "keepalive answered") >= 3 })
	if strings.Contains(logs.String(), "keepalive timeout") {
		t.Fatalf("a live client was dropped:\n%s", logs.String())
	}
	close(f.frozen)
	testenv.WaitFor(t, 20*time.Second, func() bool {
		return strings.Contains(logs.String(), "keepalive timeout") &&
			strings.Contains(logs.String(), `"event":"disconnect"`)
	})
}
