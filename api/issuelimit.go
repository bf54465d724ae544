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

// issueLimit bounds the certificates issued to one identity: a bucket of
// burst certificates, refilled with one every interval (GCRA, a token
// bucket kept as one time per identity). The table holds at most size
// identities, the least recently seen forgotten first (a forgotten one
// starts with a full bucket again). It is safe for concurrent use.
type issueLimit struct {
	burst    int
	interval time.Duration

	mu    sync.Mutex // guards table and its entries
	table *simplelru.LRU[string, *issueState]
}

// issueState is one identity's bucket: tat is when it would be full again
// (the theoretical arrival time of GCRA); announced says its current
// refusal was recorded, so that later ones until the next issue are
// logged without a sealed record each.
type issueState struct {
	tat       time.Time
	seen      time.Time // the latest now taken at
	announced bool
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
// whether this is the first refusal since id's last issue (to be
// recorded).
func (l *issueLimit) take(id string, now time.Time) (wait time.Duration, first, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, found := l.table.Get(id)
	if !found {
		st = &issueState{}
		l.table.Add(id, st)
	}
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
		first = !st.announced
		st.announced = true
		return over, first, false
	}
	st.tat, st.announced = tat, false
	return 0, false, true
}

// refund gives back a certificate taken from id's bucket for a request
// that was then refused: only certificates issued count.
func (l *issueLimit) refund(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, found := l.table.Peek(id); found {
		st.tat = st.tat.Add(-l.interval)
	}
}
