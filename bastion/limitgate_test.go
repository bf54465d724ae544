package bastion

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

func testGate(t *testing.T, lim Limits) *limitGate {
	t.Helper()
	g, err := newGate(&lim)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var src1 = sourceOf(&net.TCPAddr{IP: net.ParseIP("192.0.2.1")})

// Below start every connection is admitted, at full none is, and in
// between the drop rate follows MaxStartups' line.
func TestGateStartups(t *testing.T) {
	t.Parallel()
	g := testGate(t, Limits{Startups: Startups{Start: 10, Rate: 50, Full: 20}, StartupsPerSource: 1000})
	now := time.Now()
	for i := range 10 {
		if r := g.try(src1, now); r != nil {
			t.Fatalf("connection %d below start refused: %s", i, r.limit)
		}
	}
	// At start the drop rate is 50%: over 2000 tries, far from 0 and 2000.
	dropped := 0
	for range 2000 {
		g.mu.Lock()
		if g.dropStartup() {
			dropped++
		}
		g.mu.Unlock()
	}
	if dropped < 800 || dropped > 1200 {
		t.Fatalf("%d of 2000 dropped at start with rate 50, want about 1000", dropped)
	}
	for g.unauth < 20 {
		g.mu.Lock()
		g.unauth++
		g.mu.Unlock()
	}
	for range 100 {
		if r := g.try(src1, now); r == nil || r.limit != LimitStartups {
			t.Fatalf("admitted at full: %v", r)
		}
	}
}

func TestGatePerSource(t *testing.T) {
	t.Parallel()
	g := testGate(t, Limits{StartupsPerSource: 2})
	src2 := sourceOf(&net.TCPAddr{IP: net.ParseIP("192.0.2.2")})
	now := time.Now()
	g.try(src1, now)
	g.try(src1, now)
	if r := g.try(src1, now); r == nil || r.limit != LimitStartupsPerSource {
		t.Fatalf("third from one source: %v", r)
	}
	if r := g.try(src2, now); r != nil {
		t.Fatalf("another source refused: %s", r.limit)
	}
	g.leave(g.perSource[src1][0])
	if r := g.try(src1, now); r != nil {
		t.Fatalf("after one left: %s", r.limit)
	}
	// An IPv6 /64 is one source.
	a := sourceOf(&net.TCPAddr{IP: net.ParseIP("2001:db8::1")})
	b := sourceOf(&net.TCPAddr{IP: net.ParseIP("2001:db8::ffff:1")})
	if a != b {
		t.Fatalf("%v and %v are one /64", a, b)
	}
}

// Failures block at the limit for AuthBlock, then the source starts anew.
func TestGateFailures(t *testing.T) {
	t.Parallel()
	g := testGate(t, Limits{AuthFailures: 3, AuthFailureWindow: time.Minute, AuthBlock: 5 * time.Minute})
	t0 := time.Now()
	// Failures in different windows do not add up.
	g.fail(src1, t0)
	g.fail(src1, t0.Add(30*time.Second))
	if g.fail(src1, t0.Add(61*time.Second)) {
		t.Fatal("blocked by failures in two windows")
	}
	t1 := t0.Add(3 * time.Minute)
	g.fail(src1, t1)
	g.fail(src1, t1)
	if !g.fail(src1, t1.Add(time.Second)) {
		t.Fatal("not blocked at the third failure in a window")
	}
	r := g.try(src1, t1.Add(time.Minute))
	if r == nil || r.limit != LimitAuthFailures || !strings.Contains(r.msg, "try again in 4m1s") {
		t.Fatalf("blocked source admitted or told %v", r)
	}
	if r := g.try(src1, t1.Add(5*time.Minute+2*time.Second)); r != nil {
		t.Fatalf("still blocked after auth_block: %s", r.limit)
	}
}

// A flood of refusals is one record and, later, one count; past the
// budget, refusals are counted per limit with source "*".
func TestLimitAuditAggregates(t *testing.T) {
	t.Parallel()
	var buf testenv.Buffer
	a := newLimitAudit(slog.New(slog.NewJSONHandler(&buf, nil)))
	t0 := time.Now()
	for range 1000 {
		a.note(t0, LimitStartups, src1, []any{"open", 5})
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), `"limit":"max_startups","source":"192.0.2.1","count":1,"open":5`) {
		t.Fatalf("after 1000 refusals in a minute, %d records:\n%s", n, buf.String())
	}
	a.note(t0.Add(time.Minute), LimitStartups, src1, nil) // a new window
	if !strings.Contains(buf.String(), `"count":999,"repeated":true`) || strings.Count(buf.String(), `"count":1`) != 2 {
		t.Fatalf("the next window does not record the count:\n%s", buf.String())
	}

	var buf2 testenv.Buffer
	b := newLimitAudit(slog.New(slog.NewJSONHandler(&buf2, nil)))
	for i := range limitAuditBudget + 50 {
		src := sourceOf(&net.TCPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))})
		b.note(t0, LimitAuthFailures, src, nil)
	}
	b.flush()
	if n := strings.Count(buf2.String(), `"count":1}`); n != limitAuditBudget {
		t.Fatalf("%d first records, want the budget %d", n, limitAuditBudget)
	}
	if !strings.Contains(buf2.String(), `"limit":"auth_failures","source":"*","count":50,"repeated":true`) {
		t.Fatalf("no overflow record:\n%s", lastLines(buf2.String(), 3))
	}
}

func TestLimitsDefaultsAndChecks(t *testing.T) {
	t.Parallel()
	auth, err := certs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Authority: auth})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.HandshakeTimeout != 30*time.Second || s.cfg.Limits != DefaultLimits {
		t.Fatalf("defaults: handshake %v, limits %+v", s.cfg.HandshakeTimeout, s.cfg.Limits)
	}
	for _, lim := range []Limits{
		{Startups: Startups{Start: 10, Rate: 30, Full: 5}},
		{Startups: Startups{Start: 10, Rate: 101, Full: 20}},
		{MaxChannels: -1},
	} {
		if _, err := New(Config{Authority: auth, Limits: lim}); err == nil {
			t.Errorf("New accepted %+v", lim)
		}
	}
}

// emfileListener fails Accept with EMFILE a number of times, as a process
// out of descriptors does, then accepts.
type emfileListener struct {
	net.Listener
	fail  atomic.Int32
	calls atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if l.fail.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// Out of descriptors, the accept loop backs off and goes on serving: it
// neither returns nor spins.
func TestServeSurvivesEMFILE(t *testing.T) {
	t.Parallel()
	h := env(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &emfileListener{Listener: inner}
	l.fail.Store(6)
	srv, err := New(Config{Authority: h.auth, Policy: h.policy})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	start := time.Now()
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { srv.Close(); <-served })
	nc, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line := make([]byte, 16)
	if _, err := nc.Read(line); err != nil || !strings.HasPrefix(string(line), "SSH-2.0-Postern") {
		t.Fatalf("after EMFILE: read %q, %v", line, err)
	}
	// 6 failures back off 5+10+20+40+80+160 ms: not a spin.
	if took, calls := time.Since(start), l.calls.Load(); took < 300*time.Millisecond || calls > 9 {
		t.Fatalf("served after %v and %d Accept calls, want a backoff of about 315ms and 7 calls", took, calls)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
}

// try is admit for a connection that cannot be evicted.
func (g *limitGate) try(src netip.Prefix, now time.Time) *limitRefusal {
	_, _, r := g.admit(src, now, nil)
	return r
}

// At max_startups' full, a connection from a source holding fewer places
// takes the oldest place of the source holding the most; one from that
// source, or from a source holding as many, is dropped.
func TestGateEvictsForOtherSources(t *testing.T) {
	t.Parallel()
	g := testGate(t, Limits{Startups: Startups{Start: 4, Rate: 100, Full: 4}, StartupsPerSource: 4})
	src2 := sourceOf(&net.TCPAddr{IP: net.ParseIP("192.0.2.2")})
	src3 := sourceOf(&net.TCPAddr{IP: net.ParseIP("192.0.2.3")})
	now := time.Now()
	closed := 0
	var first *startup
	for i := range 4 {
		st, _, r := g.admit(src1, now, func(netip.Prefix) { closed++ })
		if r != nil {
			t.Fatalf("flood connection %d refused below full: %s", i, r.limit)
		}
		if i == 0 {
			first = st
		}
	}
	if r := g.try(src1, now); r == nil || r.limit != LimitStartupsPerSource {
		t.Fatalf("5th from the flooding source: %v", r)
	}
	st, evicted, r := g.admit(src2, now, func(netip.Prefix) {})
	if r != nil || evicted != first || st == nil {
		t.Fatalf("another source at full: refused %v, evicted %p want the oldest %p", r, evicted, first)
	}
	evicted.close(src2)
	if u, _ := g.counts(); u != 4 || closed != 1 || len(g.perSource[src1]) != 3 {
		t.Fatalf("after the eviction: %d places, %d closed, %d held by the flood", u, closed, len(g.perSource[src1]))
	}
	g.leave(first) // the evicted connection ends: nothing more given back
	if u, _ := g.counts(); u != 4 {
		t.Fatalf("an evicted connection gave its place back twice: %d places", u)
	}
	// src1 holds 3, src2 1: a third source takes one more of src1's, and
	// then src1 (2 places) no longer holds more than src3 would (2).
	if _, ev, r := g.admit(src3, now, func(netip.Prefix) {}); r != nil || ev == nil || ev.src != src1 {
		t.Fatalf("third source: %v, evicted %v", r, ev)
	}
	if r := g.try(src3, now); r == nil || r.limit != LimitStartups {
		t.Fatalf("a source with as many as the most: %v, want dropped", r)
	}
}
