package api

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	l, err := newLimiter(2, 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_000_000, 0)
	a, a2 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2") // one /64
	b := netip.MustParseAddr("192.0.2.1")
	for i := range 3 {
		if _, _, ok := l.blocked(a, t0); ok {
			t.Fatalf("blocked after %d failures", i)
		}
		l.fail(a, t0.Add(time.Duration(i)*time.Second))
	}
	wait, first, ok := l.blocked(a2, t0.Add(10*time.Second))
	if !ok || !first || wait != 50*time.Second {
		t.Fatalf("same /64 after 3 failures: wait %s first %v blocked %v", wait, first, ok)
	}
	if _, first, ok := l.blocked(a, t0.Add(20*time.Second)); !ok || first {
		t.Fatalf("second refusal in the window: first %v blocked %v", first, ok)
	}
	if _, _, ok := l.blocked(b, t0); ok {
		t.Fatal("another address blocked")
	}
	if _, _, ok := l.blocked(a, t0.Add(time.Minute)); ok {
		t.Fatal("blocked after the window")
	}
	// A failure after the window starts a new one.
	for range 3 {
		l.fail(a, t0.Add(2*time.Minute))
	}
	if _, _, ok := l.blocked(a, t0.Add(2*time.Minute)); !ok {
		t.Fatal("not blocked in the new window")
	}
	// The table holds 2 clients: two others push a out.
	l.fail(b, t0.Add(2*time.Minute))
	l.fail(netip.MustParseAddr("192.0.2.2"), t0.Add(2*time.Minute))
	if _, _, ok := l.blocked(a, t0.Add(2*time.Minute)); ok {
		t.Fatal("a client pushed out of the table still blocked")
	}
	if n := l.table.Len(); n != 2 {
		t.Fatalf("table holds %d clients", n)
	}
}
