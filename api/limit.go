package api

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// limiter counts failed requests per client: an IPv4 address, or an IPv6
// /64 (what one host is usually given). After max failures within a
// window that starts at the first, the client is refused until the window
// ends. The table holds at most size clients, the least recently seen
// forgotten first. It is safe for concurrent use.
type limiter struct {
	max    int
	window time.Duration

	mu    sync.Mutex // guards table and its entries
	table *simplelru.LRU[netip.Prefix, *window]
}

// window is one client's failures in the current window.
type window struct {
	start    time.Time
	failures int
	// announced says the refusal of this window was recorded: later
	// requests within it are refused without a record each, so that a
	// flood cannot fill the audit chain.
	announced bool
}

func newLimiter(size, max int, win time.Duration) (*limiter, error) {
	t, err := simplelru.NewLRU[netip.Prefix, *window](size, nil)
	if err != nil {
		return nil, err
	}
	return &limiter{max: max, window: win, table: t}, nil
}

// clientKey is the table key of addr.
func clientKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// blocked reports whether the client at addr is refused at now, for how
// long still, and whether this is the window's first refusal (to be
// recorded).
func (l *limiter) blocked(addr netip.Addr, now time.Time) (wait time.Duration, first, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, found := l.table.Get(clientKey(addr))
	if !found || w.failures < l.max {
		return 0, false, false
	}
	end := w.start.Add(l.window)
	if !now.Before(end) {
		l.table.Remove(clientKey(addr))
		return 0, false, false
	}
	first = !w.announced
	w.announced = true
	return end.Sub(now), first, true
}

// fail counts a failed request of the client at addr at now.
func (l *limiter) fail(addr netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := clientKey(addr)
	w, found := l.table.Get(k)
	if !found || !now.Before(w.start.Add(l.window)) {
		l.table.Add(k, &window{start: now, failures: 1})
		return
	}
	w.failures++
}

// DefaultRecordedRefusals is Config.RecordedRefusals' default.
const DefaultRecordedRefusals = 100

// sealBudget bounds the refusals sealed in the audit chain per window,
// all clients together: the per-client limit does not bound an attacker
// with many addresses (an IPv6 prefix holds 2^64 /64s), and each sealed
// refusal is a durable record. Past the budget, refusals are still made
// and logged, not sealed, until the window ends. It is safe for
// concurrent use.
type sealBudget struct {
	max    int
	window time.Duration

	mu    sync.Mutex // guards start and n
	start time.Time
	n     int
}

// take counts a refusal at now. It reports whether to seal it, and
// whether it is the last sealed in this window (its record says that
// sealing is suspended).
func (b *sealBudget) take(now time.Time) (seal, last bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.start.IsZero() || !now.Before(b.start.Add(b.window)) {
		b.start, b.n = now, 0
	}
	b.n++
	return b.n <= b.max+1, b.n == b.max+1
}

// end is when the current window ends.
func (b *sealBudget) end() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.start.Add(b.window)
}
