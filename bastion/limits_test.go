package bastion

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// Acceptance tests of the connection limits (limits.go), each against a
// bastion of its own, with the real OpenSSH client as the legitimate user.

// raiseNoFile makes room for n more descriptors in this process: the
// flood's client ends are ours too. Raising the hard limit needs root,
// which CI has.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur = n
	lim.Max = max(lim.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		testenv.RequireRoot(t, "raising RLIMIT_NOFILE for the flood test")
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", n, err)
	}
}

// dialFrom opens a TCP connection to port from the loopback address src.
func dialFrom(src string, port int) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// sshFrom runs the OpenSSH client as key against bastion b from the
// loopback address src, and returns its result and how long it took.
func (b *harness) sshFrom(t *testing.T, src, key, user string, args ...string) (testenv.Result, time.Duration) {
	t.Helper()
	a := append(b.opts(key), "-b", src, "-p", strconv.Itoa(b.port), user+"@127.0.0.1")
	start := time.Now()
	r := testenv.Cmd(t, 30*time.Second, nil, b.sshBin, append(a, args...)...)
	return r, time.Since(start)
}

// A flood of 3000 idle connections (a version line, then nothing) from
// one address holds at most max_startups_per_source places; a user from
// another address logs in at once, and the flood leaves one audit record.
func TestLimitFloodOfIdleConnections(t *testing.T) {
	t.Parallel()
	h := env(t)
	const flood = 3000
	raiseNoFile(t, 3*flood)
	b := h.extraServer(t, Config{Policy: h.policy})
	// The same login before the flood: on a loaded machine (the suite
	// runs packages side by side) it alone can take over 2 s, and the
	// flood must not be what makes the user wait.
	if r, _ := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "true"); r.ExitCode != 0 {
		t.Fatalf("login before the flood: exit %d stderr %q", r.ExitCode, r.Stderr)
	}
	_, base := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "echo", "in")

	conns := make(chan net.Conn, flood)
	t.Cleanup(func() {
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	var wg sync.WaitGroup
	var failed sync.Map
	start := time.Now()
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < flood; i += 8 {
				c, err := dialFrom("127.0.0.3", b.port)
				if err != nil {
					failed.Store(i, err)
					continue
				}
				c.Write([]byte("SSH-2.0-flood\r\n")) // refused ones may be closed already
				conns <- c
			}
		})
	}
	wg.Wait()
	t.Logf("%d connections opened in %v", len(conns), time.Since(start))
	failed.Range(func(k, v any) bool { t.Errorf("dial %v: %v", k, v); return false })

	if unauth, _ := b.srv.gate.counts(); unauth > DefaultLimits.StartupsPerSource {
		t.Fatalf("%d unauthenticated connections held, want at most %d", unauth, DefaultLimits.StartupsPerSource)
	}
	// The kernel completes the 3000 handshakes before the bastion accepts
	// them; wait until it has taken every one from the listen queue (all
	// but the held ones refused and counted), so what is timed is a login
	// while the flood is held, not the queue in front of it.
	refusedLater := flood - DefaultLimits.StartupsPerSource - 1
	key := limitKey{LimitStartupsPerSource, sourceOf(&net.TCPAddr{IP: net.ParseIP("127.0.0.3")})}
	testenv.WaitFor(t, 60*time.Second, func() bool { return b.srv.limitLog.repeatedOf(key) == refusedLater })
	r, took := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "echo", "in")
	if r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "in" {
		t.Fatalf("legitimate login during the flood: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	// A login stuck behind the held flood would wait for their handshake
	// timeout (DefaultHandshakeTimeout, 30 s); the bound is far below that
	// and well above the noise of one timed login on a loaded -race run
	// (twice a single earlier login, or 2 s, is within that noise).
	if limit := max(10*time.Second, 3*base); took > limit {
		t.Fatalf("legitimate login took %v during the flood (%v before it), want under %v", took, base, limit)
	}
	t.Logf("legitimate login took %v with %d idle connections held by the client (%v before the flood)", took, flood, base)
	if n := strings.Count(b.logs.String(), `"limit":"max_startups_per_source","source":"127.0.0.3","count":1,`); n != 1 {
		t.Fatalf("%d first-refusal audit records for the flood, want 1:\n%s", n, b.logs.String())
	}
	// The others were counted; they are recorded when the server closes.
	b.srv.limitLog.flush()
	if !strings.Contains(b.logs.String(), `"limit":"max_startups_per_source","source":"127.0.0.3","count":`+strconv.Itoa(refusedLater)+`,"repeated":true`) {
		t.Fatalf("no aggregated record of the other refusals:\n%s", lastLines(b.logs.String(), 5))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// 50 rapid failed logins from one address: the first AuthFailures reach
// authentication, the rest are closed before key exchange, and a valid
// user from that address is refused while one from another address logs
// in.
func TestLimitFailedLoginsFromOneAddress(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy})
	plain := testenv.NewSigner(t) // no certificate: refused
	src := sourceOf(&net.TCPAddr{IP: net.ParseIP("127.0.0.3")})
	authFailures, closedEarly := 0, 0
	start := time.Now()
	for range 50 {
		nc, err := dialFrom("127.0.0.3", b.port)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		_, _, _, err = ssh.NewClientConn(nc, "127.0.0.1", &ssh.ClientConfig{
			User: "root@t1", Auth: []ssh.AuthMethod{ssh.PublicKeys(plain)},
			HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()),
		})
		nc.Close()
		switch {
		case err == nil:
			t.Fatal("a plain key logged in")
		case strings.Contains(err.Error(), "unable to authenticate"):
			authFailures++
			// The bastion counts the failure when the connection ends;
			// wait for that, so the count below is exact.
			testenv.WaitFor(t, 20*time.Second, func() bool { return b.srv.gate.failuresOf(src) >= authFailures })
		default:
			closedEarly++
		}
	}
	t.Logf("50 failed logins in %v: %d reached authentication, %d closed at accept", time.Since(start), authFailures, closedEarly)
	if authFailures != DefaultLimits.AuthFailures || closedEarly != 50-DefaultLimits.AuthFailures {
		t.Fatalf("%d logins reached authentication and %d were closed at accept, want %d and %d",
			authFailures, closedEarly, DefaultLimits.AuthFailures, 50-DefaultLimits.AuthFailures)
	}
	r, _ := b.sshFrom(t, "127.0.0.2", h.alice, "root@t1", "echo", "in")
	if r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "in" {
		t.Fatalf("login from another address: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	r, _ = b.sshFrom(t, "127.0.0.3", h.alice, "root@t1", "true")
	if r.ExitCode == 0 {
		t.Fatal("a blocked address logged in")
	}
	logs := b.logs.String()
	if n := strings.Count(logs, `"limit":"auth_failures","source":"127.0.0.3","count":1,`); n != 1 {
		t.Fatalf("%d first-refusal audit records, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "failed logins from this source reached the limit") {
		t.Fatalf("the block is not logged:\n%s", logs)
	}
}

// The per-identity and total connection limits refuse with one line that
// OpenSSH's client shows; a connection that ends gives its place back.
func TestLimitConnections(t *testing.T) {
	t.Parallel()
	h := env(t)
	other := h.userKey(t, "limits-other", certs.UserCertRequest{Principals: []string{"filemask"}, TTL: time.Hour})
	t.Run("per identity", func(t *testing.T) {
		t.Parallel()
		m := &limitMetrics{}
		b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{MaxConnsPerIdentity: 2}, Metrics: m})
		first := b.dialGo(t, h.alice, "root@t1")
		b.dialGo(t, h.alice, "root@t1")
		r, _ := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "true")
		want := "postern: alice already has 2 connections open, the limit; close one and try again"
		if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), want) {
			t.Fatalf("exit %d stderr %q: want 255 and %q", r.ExitCode, r.Stderr, want)
		}
		if r, _ := b.sshFrom(t, "127.0.0.1", other, "root@t1", "true"); r.ExitCode != 0 {
			t.Fatalf("another identity was refused: exit %d stderr %q", r.ExitCode, r.Stderr)
		}
		first.Close()
		testenv.WaitFor(t, 10*time.Second, func() bool { _, n := b.srv.gate.counts(); return n == 1 })
		if r, _ := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "true"); r.ExitCode != 0 {
			t.Fatalf("after one connection closed: exit %d stderr %q", r.ExitCode, r.Stderr)
		}
		if !strings.Contains(b.logs.String(), `"limit":"max_connections_per_identity"`) ||
			!strings.Contains(b.logs.String(), `"reason":"max_connections_per_identity reached`) {
			t.Fatalf("no audit record names the limit:\n%s", b.logs.String())
		}
		if got := m.String(); got != "limit max_connections_per_identity refused; conn max_connections_per_identity;" {
			t.Fatalf("metrics saw %q", got)
		}
	})
	t.Run("total", func(t *testing.T) {
		t.Parallel()
		b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{MaxConns: 1}})
		b.dialGo(t, h.alice, "root@t1")
		r, _ := b.sshFrom(t, "127.0.0.1", other, "root@t1", "true")
		want := "postern: the bastion is at its limit of 1 open connections; try again later"
		if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), want) {
			t.Fatalf("exit %d stderr %q: want 255 and %q", r.ExitCode, r.Stderr, want)
		}
	})
}

// Sessions and forwards count against max_channels_per_connection; the
// channel past it is refused with the reason, and a closed one frees its
// place.
func TestLimitChannelsPerConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	fwd := h.userKey(t, "limits-fwd", certs.UserCertRequest{Principals: []string{"fwd"}, TTL: time.Hour})
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{MaxChannels: 2}})
	client := b.dialGo(t, fwd, "root@t1")
	s1, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	f, err := client.Dial("tcp", net.JoinHostPort("localhost", strconv.Itoa(h.echoPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = client.NewSession()
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != ssh.ResourceShortage ||
		oe.Message != "postern: 2 channels are already open on this connection, the limit; close one, or open another connection" {
		t.Fatalf("third channel: %v, want refused for the channel limit", err)
	}
	if _, err := client.Dial("tcp", net.JoinHostPort("localhost", strconv.Itoa(h.echoPort))); err == nil ||
		!strings.Contains(err.Error(), "channels are already open") {
		t.Fatalf("third channel as a forward: %v, want refused for the channel limit", err)
	}
	s1.Close()
	// The session's handler gives its place back once the channel is
	// torn down; a new session is accepted then.
	var s3 *ssh.Session
	testenv.WaitFor(t, 10*time.Second, func() bool {
		s3, err = client.NewSession()
		return err == nil
	})
	out, err := s3.Output("echo again")
	if err != nil || strings.TrimSpace(string(out)) != "again" {
		t.Fatalf("session after one closed: %q, %v", out, err)
	}
	if !strings.Contains(b.logs.String(), `"limit":"max_channels_per_connection"`) {
		t.Fatalf("no audit record names the limit:\n%s", b.logs.String())
	}
}

// An idle connection that never starts key exchange is closed after the
// handshake timeout, and gives its place back.
func TestLimitHandshakeTimeout(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, HandshakeTimeout: 300 * time.Millisecond})
	nc, err := dialFrom("127.0.0.1", b.port)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("SSH-2.0-idle\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, nc) // the bastion's version line, then EOF
	if took := time.Since(start); err != nil || took < 250*time.Millisecond {
		t.Fatalf("idle connection ended after %v with %v: want EOF after the 300ms handshake timeout", took, err)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { n, _ := b.srv.gate.counts(); return n == 0 })
}

// counts returns the unauthenticated and authenticated connections held.
func (g *limitGate) counts() (unauth, authed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unauth, g.authed
}

// failuresOf returns the failed logins counted for src in its window.
func (g *limitGate) failuresOf(src netip.Prefix) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.failures.Peek(src); ok {
		return f.n
	}
	return 0
}

// repeatedOf returns the refusals counted for k and not yet recorded.
func (a *limitAudit) repeatedOf(k limitKey) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.table.Peek(k); ok {
		return v.repeated
	}
	return 0
}

// limitMetrics is a Metrics that notes the limits reached and connection
// refusals other than key exchange (the ssh client's own probes).
type limitMetrics struct {
	noMetrics
	mu  sync.Mutex
	got strings.Builder
}

func (m *limitMetrics) LimitReached(limit, action string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(&m.got, "limit %s %s; ", limit, action)
}

func (m *limitMetrics) ConnRefused(reason string) {
	if reason == RefusedKeyExchange {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(&m.got, "conn %s; ", reason)
}

func (m *limitMetrics) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.TrimSpace(m.got.String())
}
