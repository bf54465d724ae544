package approval

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A requester who opens a channel, sends a flagged exec and closes the
// channel at once makes one cancelled request per round trip, each with a
// command line of up to the SSH packet size (256 KiB: nothing caps Line).
// The Broker keeps every decided request in memory for an hour once it
// holds keepMax, and NewBroker loads the whole history: memory grows with
// the rate an authorised user can cycle requests (tens per second over one
// connection), not with anything bounded. Here keepMax+500 cancelled
// requests within a minute all stay in memory, and a restart loads them
// all again.
func TestAttack5BrokerMemoryBoundedUnderRequestCycling(t *testing.T) {
	f := newFixture(t)
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	line := strings.Repeat("x", 1024)
	for range keepMax + 500 {
		r, err := f.b.Submit(t.Context(), Request{Kind: KindCommand, Requester: "mallory", RequesterPrincipals: []string{"mallory"},
			Target: "t1", Login: "root", Line: line, Rule: "r", Approvers: []string{"approvers"}, Expires: f.clock.now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if w, _ := f.b.Wait(cancelled, r.ID); w.State != StateCancelled {
			t.Fatalf("state %s", w.State)
		}
		f.clock.add(10 * time.Millisecond)
	}
	if n := len(f.b.List(t.Context(), true)); n > keepMax {
		t.Errorf("the broker holds %d decided requests of one requester in memory (keepMax %d)", n, keepMax)
	}
	f.open(t) // restart
	if n := len(f.b.List(t.Context(), true)); n > keepMax {
		t.Errorf("after a restart the broker loaded %d requests into memory (keepMax %d)", n, keepMax)
	}
}

// Submit stores a command line of any length: a line longer than MaxLine
// cannot be judged (it is held by the first approve rule), so the request
// a requester makes of it carries up to 256 KiB into memory, the index,
// two audit records (requested, cancelled) and every approver's --json.
func TestAttack5SubmitBoundsLine(t *testing.T) {
	f := newFixture(t)
	_, err := f.b.Submit(t.Context(), Request{Kind: KindCommand, Requester: "mallory", RequesterPrincipals: []string{"mallory"},
		Target: "t1", Login: "root", Line: strings.Repeat("x", 250<<10), Rule: "r", Approvers: []string{"approvers"}, Expires: f.clock.now().Add(time.Hour)})
	if err == nil {
		t.Errorf("a request with a %d-byte line was accepted (MaxLine is %d)", 250<<10, MaxLine)
	}
}
