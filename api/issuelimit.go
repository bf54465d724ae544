package api

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Defaults of Config's issuance limit: a user who logs in on a few
// machines in a row is not held up; one who mints ID tokens with a
// refresh token gets a certificate every 20 seconds, not as many as the
// provider signs.
const (
	DefaultIssueBurst    = 5
	DefaultIssueInterval = 20 * time.Second
	DefaultIdentities    = 10000
)

// issueLimit bounds the certificates issued to one identity (or account,
// as the caller names them): a bucket of burst certificates, refilled
// with one every interval (GCRA, a token bucket kept as one time per
// identity). The table holds at most size identities, the least recently
// seen forgotten first (a forgotten one starts with a full bucket
// again). It is safe for concurrent use.
type issueLimit struct {
	burst    int
	interval time.Duration

	mu    sync.Mutex // guards table and its entries
	table *simplelru.LRU[string, *issueState]
}

// issueState is one identity's bucket: tat is when it would be full again
// (the theoretical arrival time of GCRA); refused counts the refusals
// since its last take, so that only the first is sealed and the later
// ones are logged with their count, not each (a refused token is not
// used up: it can be sent again as fast as the client likes).
type issueState struct {
	tat     time.Time
	seen    time.Time // the latest now taken at
	refused int
}

func newIssueLimit(size, burst int, interval time.Duration) (*issueLimit, error) {
	t, err := simplelru.NewLRU[string, *issueState](size, nil)
	if err != nil {
		return nil, err
	}
	return &issueLimit{burst: burst, interval: interval, table: t}, nil
}

// take takes a certificate from id's bucket at now. When the bucket is
// empty it takes nothing and reports how long until one is back, and
// which refusal since id's last issue this is (1, the first, is sealed).
func (l *issueLimit) take(id string, now time.Time) (wait time.Duration, n int, ok bool) {
	return l.takeAll([]string{id}, now)
}

// takeAll takes a certificate from the bucket of each of ids, or, if one
// is empty, from none, and reports as take does: the longest wait of the
// empty ones (after a shorter one it would be refused again), and the
// highest refusal count.
func (l *issueLimit) takeAll(ids []string, now time.Time) (wait time.Duration, n int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	type before struct {
		st      *issueState
		tat     time.Time
		refused int
	}
	taken := make([]before, 0, len(ids))
	for _, id := range ids {
		st, found := l.table.Get(id)
		if !found {
			st = &issueState{}
			l.table.Add(id, st)
		}
		b := before{st, st.tat, st.refused}
		if w, k, took := l.takeOne(st, now); !took {
			wait, n = max(wait, w), max(n, k)
			continue
		}
		taken = append(taken, b)
	}
	if n == 0 {
		return 0, 0, true
	}
	for _, t := range taken {
		t.st.tat, t.st.refused = t.tat, t.refused
	}
	return wait, n, false
}

// takeOne takes from st at now; l.mu is held.
func (l *issueLimit) takeOne(st *issueState, now time.Time) (wait time.Duration, n int, ok bool) {
	// Concurrent requests take in any order, each at the time it
	// arrived: one that arrived a little earlier but takes later must
	// not find the bucket fuller or emptier for it.
	if now.Before(st.seen) {
		now = st.seen
	}
	st.seen = now
	tat := st.tat
	if tat.Before(now) {
		tat = now
	}
	tat = tat.Add(l.interval)
	if over := tat.Sub(now) - time.Duration(l.burst)*l.interval; over > 0 {
		st.refused++
		return over, st.refused, false
	}
	st.tat, st.refused = tat, 0
	return 0, 0, true
}

// refund gives back a certificate taken from the buckets of ids for a
// request that was then refused: only certificates issued count.
func (l *issueLimit) refund(ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if st, found := l.table.Peek(id); found {
			st.tat = st.tat.Add(-l.interval)
		}
	}
}
