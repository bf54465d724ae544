package bastion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// serveWith starts a bastion of its own with cfg (the harness's CA, a log
// of its own), served under ctx, with wrap (if not nil) as its session
// channel wrapper; cleanup closes it and waits for Serve to return.
func (h *harness) serveWith(t testing.TB, ctx context.Context, cfg Config, wrap func(ssh.Channel) ssh.Channel) *harness {
	t.Helper()
	b := *h
	b.logs = &testenv.Buffer{}
	cfg.Authority = h.auth
	cfg.Log = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.wrapChannel = wrap // before Serve: read by connection goroutines
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
		if t.Failed() {
			t.Logf("bastion log:\n%s", b.logs.String())
		}
	})
	b.srv = srv
	b.port = l.Addr().(*net.TCPAddr).Port
	b.knownHosts = filepath.Join(t.TempDir(), "bastion_known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", b.port, ssh.MarshalAuthorizedKey(h.auth.HostKey.PublicKey()))
	if err := os.WriteFile(b.knownHosts, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return &b
}

// A connection's context ending ends its open channels, and the client is
// told the cause's message: whether the Serve context is cancelled with a
// cause, or Shutdown's deadline cuts the connection.
func TestContextCauseShownToClient(t *testing.T) {
	t.Parallel()
	h := env(t)
	cases := []struct {
		name string
		want string
		end  func(srv *Server, cancel context.CancelCauseFunc)
	}{
		{"serve context", "postern: maintenance window, come back later", func(_ *Server, cancel context.CancelCauseFunc) {
			cancel(endCause("postern: maintenance window, come back later"))
		}},
		{"shutdown deadline", "postern: the bastion is shutting down", func(srv *Server, _ context.CancelCauseFunc) {
			ctx, stop := context.WithCancel(context.Background())
			stop() // no time to drain: connections are ended
			srv.Shutdown(ctx)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			b := h.serveWith(t, ctx, Config{Policy: h.policy}, nil)
			var stdout, stderr testenv.Buffer
			args := append(b.opts(h.alice), "-p", strconv.Itoa(b.port), "root@t1@127.0.0.1", "echo started; sleep 60")
			cmd := exec.Command(h.sshBin, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			defer func() {
				cmd.Process.Kill()
				<-waited
			}()
			testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(stdout.String(), "started") })
			tc.end(b.srv, cancel)
			select {
			case err := <-waited:
				waited <- err
				var ee *exec.ExitError
				if !errors.As(err, &ee) || !strings.Contains(stderr.String(), tc.want) {
					t.Fatalf("ssh ended with %v, stderr %q: want a failure showing %q", err, stderr.String(), tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("ssh still runs 20s after the connection's context ended; stderr %q", stderr.String())
			}
		})
	}
}

// An exec request whose payload is not one SSH string is refused with a
// clear message: it never reaches the target, and nothing runs.
func TestMalformedExecRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	client := h.dialGo(t, h.alice, "root@t1")
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	exits := make(chan string, 4)
	go func() {
		for r := range reqs {
			exits <- r.Type
		}
		close(exits)
	}()
	// A string length that runs past the payload's end.
	bad := []byte{0, 0, 1, 0, 't', 'o', 'u', 'c', 'h'}
	if _, err := ch.SendRequest("exec", true, bad); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1024)
		for {
			n, err := ch.Stderr().Read(buf)
			stderr.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("channel not closed after a malformed exec")
	}
	for typ := range exits {
		if typ == "exit-status" || typ == "exit-signal" {
			t.Fatalf("got %s: the malformed exec ran", typ)
		}
	}
	if !strings.Contains(stderr.String(), "postern: malformed exec request") {
		t.Fatalf("stderr %q: want the refusal", stderr.String())
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(h.logs.String(), `"event":"program_refused"`) && strings.Contains(h.logs.String(), "malformed exec request")
	})
}
