package approval

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory that can be told to fail.
type memStore struct {
	mu    sync.Mutex
	reqs  map[string]Request
	order []string
	fail  error
}

func newMemStore() *memStore { return &memStore{reqs: map[string]Request{}} }

func (m *memStore) SaveRequest(_ context.Context, _ string, r Request) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if _, ok := m.reqs[r.ID]; !ok {
		m.order = append(m.order, r.ID)
	}
	m.reqs[r.ID] = r.clone()
	return nil
}

func (m *memStore) Requests(context.Context) ([]Request, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Request
	for _, id := range m.order {
		out = append(out, m.reqs[id].clone())
	}
	return out, nil
}

func (m *memStore) get(id string) Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reqs[id]
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	b      *Broker
	store  *memStore
	clock  *clock
	mu     sync.Mutex
	events []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: newMemStore(), clock: &clock{t: time.Now()}}
	f.open(t)
	return f
}

// open (re)opens the broker on f's store, as a restart does.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	b, err := NewBroker(context.Background(), BrokerConfig{Store: f.store, Now: f.clock.now, Audit: func(_ context.Context, c Change) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.events = append(f.events, c.Event+":"+c.Request.State)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
}

func (f *fixture) audited() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

func (f *fixture) submit(t *testing.T, kind string, required int, timeout time.Duration) Request {
	t.Helper()
	r, err := f.b.Submit(context.Background(), Request{Kind: kind, Requester: "alice", RequesterPrincipals: []string{"alice", "alice@corp"},
		Target: "db01", Login: "root", Line: "rm -rf /data", Rule: "rm-needs-approval", Approvers: []string{"approvers"},
		Required: required, Expires: f.clock.now().Add(timeout), For: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(r.ID) || r.State != StatePending {
		t.Fatalf("submitted %+v", r)
	}
	return r
}

var (
	bob   = Approver{Name: "bob", Principals: []string{"bob"}, Groups: []string{"dev", "approvers"}}
	carol = Approver{Name: "carol", Principals: []string{"carol"}, Groups: []string{"approvers"}}
	dave  = Approver{Name: "dave", Principals: []string{"dave"}, Groups: []string{"dev"}}
)

func TestApproveWakesTheWaiter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.submit(t, KindCommand, 1, time.Hour)
	got := make(chan Request, 1)
	go func() {
		w, err := f.b.Wait(context.Background(), r.ID)
		if err != nil {
			t.Error(err)
		}
		got <- w
	}()
	if _, err := f.b.Decide(context.Background(), r.ID, bob, true, "looks fine"); err != nil {
		t.Fatal(err)
	}
	w := <-got
	if w.State != StateApproved || len(w.Decisions) != 1 || w.Decisions[0].By != "bob" || w.Decisions[0].Reason != "looks fine" || w.Decided == nil {
		t.Fatalf("waiter got %+v", w)
	}
	if s := f.store.get(r.ID); s.State != StateApproved {
		t.Fatalf("store has %s", s.State)
	}
	if ev := f.audited(); len(ev) != 2 || ev[0] != "requested:pending" || ev[1] != "approved:approved" {
		t.Fatalf("audited %v", ev)
	}
}

func TestWhoMayDecide(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.submit(t, KindCommand, 1, time.Hour)
	ctx := context.Background()
	cases := []struct {
		who  Approver
		want string
	}{
		{Approver{Name: "alice", Groups: []string{"approvers"}}, "your own request"},
		// The same person under another name: a shared principal.
		{Approver{Name: "alice2", Principals: []string{"alice@corp"}, Groups: []string{"approvers"}}, "your own request"},
		{dave, "needs an approver in group approvers (rule rm-needs-approval)"},
		{Approver{Groups: []string{"approvers"}}, "named approver"}, // no name at all is nobody
	}
	for _, c := range cases {
		_, err := f.b.Decide(ctx, r.ID, c.who, true, "")
		var re *RefusedError
		if !errors.As(err, &re) || !strings.Contains(re.UserMessage(), c.want) {
			t.Errorf("%+v: %v, want %q", c.who, err, c.want)
		}
	}
	if _, err := f.b.Decide(ctx, "0000000000", bob, true, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown ID: %v", err)
	}
	if g, _ := f.b.Get(ctx, r.ID); g.State != StatePending || len(g.Decisions) != 0 {
		t.Fatalf("refused decisions changed the request: %+v", g)
	}
	// One authorised no denies; nothing after that changes it.
	if d, err := f.b.Decide(ctx, r.ID, carol, false, "not today"); err != nil || d.State != StateDenied {
		t.Fatalf("deny: %+v %v", d, err)
	}
	if _, err := f.b.Decide(ctx, r.ID, bob, true, ""); err == nil || !strings.Contains(err.Error(), "already denied") {
		t.Fatalf("approve after deny: %v", err)
	}
}

func TestTwoPersonRule(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.submit(t, KindCommand, 2, time.Hour)
	ctx := context.Background()
	if d, err := f.b.Decide(ctx, r.ID, bob, true, ""); err != nil || d.State != StatePending || len(d.Decisions) != 1 {
		t.Fatalf("first yes: %+v %v", d, err)
	}
	if _, err := f.b.Decide(ctx, r.ID, bob, true, ""); err == nil || !strings.Contains(err.Error(), "needs 2 different approvers") {
		t.Fatalf("same approver twice: %v", err)
	}
	if d, err := f.b.Decide(ctx, r.ID, carol, true, ""); err != nil || d.State != StateApproved || len(d.Decisions) != 2 {
		t.Fatalf("second yes: %+v %v", d, err)
	}
	if ev := f.audited(); len(ev) != 3 || ev[1] != "decision:pending" || ev[2] != "approved:approved" {
		t.Fatalf("audited %v", ev)
	}
}

// Many approvers deciding at once: exactly two yeses count, the rest are
// refused, and one change says approved.
func TestConcurrentDecisions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.submit(t, KindCommand, 2, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 20 {
		wg.Go(func() {
			who := Approver{Name: "approver" + string(rune('a'+i)), Groups: []string{"approvers"}}
			if _, err := f.b.Decide(context.Background(), r.ID, who, true, ""); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	g, _ := f.b.Get(context.Background(), r.ID)
	if ok != 2 || g.State != StateApproved || len(g.Decisions) != 2 {
		t.Fatalf("%d decisions accepted, request %+v", ok, g)
	}
}

func TestRequesterLeavingCancels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.submit(t, KindCommand, 1, time.Hour)
	ctx, cancel := context.WithCancelCause(context.Background())
	gone := errors.New("client disconnected")
	cancel(gone)
	w, err := f.b.Wait(ctx, r.ID)
	if !errors.Is(err, gone) || w.State != StateCancelled || f.store.get(r.ID).State != StateCancelled {
		t.Fatalf("wait: %+v %v", w, err)
	}
	if _, err := f.b.Decide(context.Background(), r.ID, bob, true, ""); err == nil || !strings.Contains(err.Error(), "already cancelled") {
		t.Fatalf("approve after cancel: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Wait's timer runs on the broker's clock's idea of the deadline: a
	// deadline already past returns at once.
	r := f.submit(t, KindCommand, 1, time.Minute)
	f.clock.add(time.Minute)
	if w, err := f.b.Wait(context.Background(), r.ID); err != nil || w.State != StateExpired {
		t.Fatalf("wait: %+v %v", w, err)
	}
	r2 := f.submit(t, KindCommand, 1, time.Minute)
	f.clock.add(2 * time.Minute)
	if _, err := f.b.Decide(context.Background(), r2.ID, bob, true, ""); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("approve after expiry: %v", err)
	}
	if f.store.get(r2.ID).State != StateExpired {
		t.Fatal("expiry not saved")
	}
	if len(f.b.List(context.Background(), false)) != 0 || len(f.b.List(context.Background(), true)) != 2 {
		t.Fatal("expired requests listed as pending")
	}
}

// A decision that cannot be saved does not happen: the waiter is not woken
// and the request stays pending.
func TestUnsavedDecisionDoesNotApprove(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.submit(t, KindCommand, 1, time.Hour)
	f.store.mu.Lock()
	f.store.fail = errors.New("disk full")
	f.store.mu.Unlock()
	if _, err := f.b.Decide(context.Background(), r.ID, bob, true, ""); err == nil {
		t.Fatal("decision saved on a failing store")
	}
	if g, _ := f.b.Get(context.Background(), r.ID); g.State != StatePending || len(g.Decisions) != 0 {
		t.Fatalf("request changed: %+v", g)
	}
	f.store.mu.Lock()
	f.store.fail = nil
	f.store.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if w, err := f.b.Wait(ctx, r.ID); !errors.Is(err, context.DeadlineExceeded) || w.State != StateCancelled {
		t.Fatalf("waiter woken: %+v %v", w, err)
	}
}

func TestRestartAbandonsHeldCommands(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cmd := f.submit(t, KindCommand, 1, time.Hour)
	acc := f.submit(t, KindAccess, 1, time.Hour)
	f.open(t)
	if s := f.store.get(cmd.ID).State; s != StateAbandoned {
		t.Fatalf("held command after restart: %s", s)
	}
	if _, err := f.b.Decide(context.Background(), cmd.ID, bob, true, ""); err == nil {
		t.Fatal("abandoned request approved")
	}
	// An access request has no session to lose: it can still be approved.
	if d, err := f.b.Decide(context.Background(), acc.ID, bob, true, ""); err != nil || d.State != StateApproved {
		t.Fatalf("access request after restart: %+v %v", d, err)
	}
}

func TestAccessGrantLastsItsWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.submit(t, KindAccess, 1, time.Hour)
	if _, ok := f.b.Granted([]string{"alice"}, "db01", "root"); ok {
		t.Fatal("granted before approval")
	}
	if _, err := f.b.Decide(context.Background(), r.ID, bob, true, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		principals    []string
		target, login string
		want          bool
	}{
		{[]string{"alice"}, "db01", "root", true},
		{[]string{"x", "alice@corp"}, "db01", "root", true},
		{[]string{"bob"}, "db01", "root", false},
		{[]string{"alice"}, "db02", "root", false},
		{[]string{"alice"}, "db01", "postgres", false},
	} {
		if _, ok := f.b.Granted(c.principals, c.target, c.login); ok != c.want {
			t.Errorf("%v %s %s: granted %v", c.principals, c.target, c.login, ok)
		}
	}
	f.clock.add(time.Hour)
	if _, ok := f.b.Granted([]string{"alice"}, "db01", "root"); ok {
		t.Fatal("grant outlived its window")
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ch, stop := f.b.Subscribe()
	r := f.submit(t, KindCommand, 1, time.Hour)
	if c := <-ch; c.Event != "requested" || c.Request.ID != r.ID {
		t.Fatalf("first change %+v", c)
	}
	// A subscriber that never reads is dropped, not waited for.
	for i := range 70 {
		if _, err := f.b.Submit(context.Background(), Request{Kind: KindCommand, Requester: "u" + strconv.Itoa(i), Approvers: []string{"approvers"},
			Expires: f.clock.now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range ch {
		n++
	}
	if n != 64 {
		t.Fatalf("read %d changes before the drop, want 64", n)
	}
	stop() // after the drop: must not panic
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{newID(): true, "0123456789": true, "abcdefghjk": true, "ABCDEFGHJK": false,
		"abcdefghjl": false, "abc": false, "abcdefghjk1": false, "abcdefghj\x1b": false} {
		if ValidID(s) != want {
			t.Errorf("ValidID(%q) = %v", s, !want)
		}
	}
}

// One requester cannot flood the approvers: past MaxPendingPerRequester
// pending requests, Submit refuses; others may still ask.
func TestPendingRequestsAreCapped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for range MaxPendingPerRequester {
		f.submit(t, KindCommand, 1, time.Hour)
	}
	_, err := f.b.Submit(context.Background(), Request{Kind: KindCommand, Requester: "alice", Approvers: []string{"approvers"}, Expires: f.clock.now().Add(time.Hour)})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "20 requests waiting") {
		t.Fatalf("21st request: %v", err)
	}
	if _, err := f.b.Submit(context.Background(), Request{Kind: KindCommand, Requester: "erin", Approvers: []string{"approvers"}, Expires: f.clock.now().Add(time.Hour)}); err != nil {
		t.Fatalf("another requester: %v", err)
	}
}
