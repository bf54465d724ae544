package api

import (
	"testing"
	"time"
)

// TestIssueLimit: a burst, then one per interval; a refusal says how long
// to wait and counts the refusals of its bout; a refund gives one back; an
// identity forgotten by the table starts full.
func TestIssueLimit(t *testing.T) {
	t.Parallel()
	l, err := newIssueLimit(2, 3, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_000_000, 0)
	for i := range 3 {
		if _, _, ok := l.take("alice", t0); !ok {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	wait, n, ok := l.take("alice", t0.Add(5*time.Second))
	if ok || n != 1 || wait != 15*time.Second {
		t.Fatalf("past the burst: wait %s refusal %d ok %v", wait, n, ok)
	}
	if wait, n, ok := l.take("alice", t0.Add(10*time.Second)); ok || n != 2 || wait != 10*time.Second {
		t.Fatalf("second refusal: wait %s refusal %d ok %v", wait, n, ok)
	}
	if _, _, ok := l.take("bob", t0); !ok {
		t.Fatal("bob refused for alice's certificates")
	}
	// One back after an interval, and only one.
	if _, _, ok := l.take("alice", t0.Add(20*time.Second)); !ok {
		t.Fatal("refused after an interval")
	}
	if _, n, ok := l.take("alice", t0.Add(20*time.Second)); ok || n != 1 {
		t.Fatalf("a new bout: refusal %d ok %v", n, ok)
	}
	l.refund("alice")
	if _, _, ok := l.take("alice", t0.Add(20*time.Second)); !ok {
		t.Fatal("refused after a refund")
	}
	// A full minute later, the whole burst is back.
	for i := range 3 {
		if _, _, ok := l.take("alice", t0.Add(80*time.Second)); !ok {
			t.Fatalf("take %d of the refilled burst refused", i+1)
		}
	}
	// The table holds 2: carol pushes out the least recently seen.
	l.take("carol", t0.Add(80*time.Second))
	if l.table.Len() != 2 || l.table.Contains("bob") {
		t.Fatalf("table holds %v", l.table.Keys())
	}
}

// TestIssueLimitOutOfOrder: requests that arrived within the same moment
// and take in another order all get the burst.
func TestIssueLimitOutOfOrder(t *testing.T) {
	t.Parallel()
	l, err := newIssueLimit(2, 4, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_000_000, 0)
	for i, ms := range []int{5, 3, 1, 0} {
		if wait, _, ok := l.take("alice", t0.Add(time.Duration(ms)*time.Millisecond)); !ok {
			t.Fatalf("take %d (arrived at +%dms) refused, wait %s", i+1, ms, wait)
		}
	}
	if _, _, ok := l.take("alice", t0.Add(5*time.Millisecond)); ok {
		t.Fatal("a fifth within the moment")
	}
}

// TestIssueLimitTakeAll: a certificate takes from every bucket named, or
// from none: one refused by the second bucket leaves the first as it was.
func TestIssueLimitTakeAll(t *testing.T) {
	t.Parallel()
	l, err := newIssueLimit(8, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_000_000, 0)
	if _, _, ok := l.takeAll([]string{"identity a", "subject s"}, t0); !ok {
		t.Fatal("the first certificate refused")
	}
	if _, n, ok := l.takeAll([]string{"identity b", "subject s"}, t0); ok || n != 1 {
		t.Fatalf("another identity of the same subject: refusal %d ok %v", n, ok)
	}
	if _, _, ok := l.takeAll([]string{"identity b", "subject t"}, t0); !ok {
		t.Fatal("identity b was taken from by the refused request")
	}
	l.refund("identity b", "subject t")
	for _, k := range []string{"identity b", "subject t"} {
		if _, _, ok := l.take(k, t0); !ok {
			t.Fatalf("%s not refunded", k)
		}
	}
}

// TestIssueLimitTakeAllWait: refused by two buckets, the wait is the
// longer one's: after the shorter, the request would be refused again.
func TestIssueLimitTakeAllWait(t *testing.T) {
	t.Parallel()
	l, err := newIssueLimit(8, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_000_000, 0)
	l.take("identity a", t0)
	l.takeAll([]string{"identity b", "subject s"}, t0.Add(30*time.Minute))
	if wait, _, ok := l.takeAll([]string{"identity a", "subject s"}, t0.Add(31*time.Minute)); ok || wait != 59*time.Minute {
		t.Fatalf("refused by both: wait %s ok %v, want 59m", wait, ok)
	}
}
