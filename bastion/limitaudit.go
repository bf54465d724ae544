package bastion

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/postern/postern/internal/audit"
)

// refused is where every limitRefusal by a limit passes, once per refused
// connection or channel: src is the client's source. It writes the audit
// record, aggregated (limitAudit). A counter of refusals per limit
// belongs here.
func (s *Server) refused(r *limitRefusal, src netip.Prefix, attrs ...any) {
	s.metrics.LimitReached(r.limit, "refused")
	if r.limit != LimitChannels {
		s.metrics.ConnRefused(r.limit)
	}
	s.limitLog.note(time.Now(), r.limit, src, append(attrs, r.attrs...))
}

// Aggregation bounds: one record per limit and source per
// limitAuditWindow (loginAuditBurst for failed handshakes), for at most
// limitAuditSources pairs at once and limitAuditBudget records per window
// in all. Without them a flood of refused connections would be a flood of
// audit records.
const (
	limitAuditWindow  = time.Minute
	limitAuditSources = 4096
	limitAuditBudget  = 600
	loginAuditBurst   = 20
)

// limitAudit writes an audit record (limit_refused; connect for
// newLoginAudit) for the first refusal, or the first burst, of each
// limit and source in a window, and counts the rest; a record
// with repeated=true and the count follows when the window is over and
// the pair is refused again, when the pair is forgotten (least recently
// refused first) or when the server closes. Past the budget of records
// per window, refusals are counted per limit alone and reported with
// client "*". It is safe for concurrent use.
type limitAudit struct {
	log     *slog.Logger
	event   audit.Event
	keyAttr string // the attribute that names a key's kind: "limit", "stage"
	prefix  []any  // attributes every record starts with
	burst   int    // records in full per key and window

	mu       sync.Mutex // guards everything below
	table    *simplelru.LRU[limitKey, *limitCount]
	start    time.Time // of the budget's window
	used     int       // records written in it
	overflow map[string]int
	pending  []pendingRecord // to write once mu is released
}

type limitKey struct {
	limit string
	src   netip.Prefix
}

type limitCount struct {
	start    time.Time
	full     int // records written in full in the window
	repeated int // refusals since those, not yet recorded
}

type pendingRecord struct {
	key   limitKey
	count int
	since time.Time
	attrs []any // the first limitRefusal's, when this is one
	first bool
}

func newLimitAudit(log *slog.Logger) *limitAudit {
	return newAggregate(log, audit.LimitRefused, "limit", nil, 1)
}

// newLoginAudit aggregates the connect records of handshakes that ended
// before anyone was identified: key exchange that failed or never
// began, and logins with no key the bastion could verify. Each costs the
// client a TCP handshake (a key exchange at most): left alone, clients
// rotating addresses could grow the audit trail without bound. The
// first loginAuditBurst of a stage and source in a window are recorded
// in full; a connection whose certificate was verified is always.
func newLoginAudit(log *slog.Logger) *limitAudit {
	return newAggregate(log, audit.Connect, "stage", []any{"allowed", false}, loginAuditBurst)
}

func newAggregate(log *slog.Logger, e audit.Event, keyAttr string, prefix []any, burst int) *limitAudit {
	a := &limitAudit{log: log, event: e, keyAttr: keyAttr, prefix: prefix, burst: burst, overflow: map[string]int{}}
	a.table, _ = simplelru.NewLRU(limitAuditSources, func(k limitKey, v *limitCount) {
		a.flushCount(k, v) // mu is held: Add evicts inside it
	})
	return a
}

// flushCount queues the record of v's unrecorded refusals. Call with mu
// held.
func (a *limitAudit) flushCount(k limitKey, v *limitCount) {
	if v.repeated > 0 {
		a.pending = append(a.pending, pendingRecord{key: k, count: v.repeated, since: v.start})
		v.repeated = 0
	}
}

// note counts one limitRefusal by limit of src at now.
func (a *limitAudit) note(now time.Time, limit string, src netip.Prefix, attrs []any) {
	a.mu.Lock()
	if !now.Before(a.start.Add(limitAuditWindow)) {
		for l, n := range a.overflow {
			a.pending = append(a.pending, pendingRecord{key: limitKey{limit: l}, count: n, since: a.start})
		}
		clear(a.overflow)
		a.start, a.used = now, 0
	}
	k := limitKey{limit, src}
	v, ok := a.table.Get(k)
	inWindow := ok && now.Before(v.start.Add(limitAuditWindow))
	switch {
	case inWindow && v.full >= a.burst:
		v.repeated++
	case a.used >= limitAuditBudget:
		a.overflow[limit]++
	default:
		if inWindow {
			v.full++
		} else {
			if ok {
				a.flushCount(k, v)
			}
			a.table.Add(k, &limitCount{start: now, full: 1})
		}
		a.used++
		a.pending = append(a.pending, pendingRecord{key: k, count: 1, since: now, attrs: attrs, first: true})
	}
	out := a.take()
	a.mu.Unlock()
	a.write(out)
}

// take returns the queued records. Call with mu held.
func (a *limitAudit) take() []pendingRecord {
	out := a.pending
	a.pending = nil
	return out
}

func (a *limitAudit) write(recs []pendingRecord) {
	for _, r := range recs {
		src := "*"
		if r.key.src.IsValid() {
			src = r.key.src.Addr().String()
		}
		attrs := append(slices.Clone(a.prefix), a.keyAttr, r.key.limit, "source", src, "count", r.count)
		if r.first {
			attrs = append(attrs, r.attrs...)
		} else {
			attrs = append(attrs, "repeated", true, "since", r.since.UTC().Format(time.RFC3339))
		}
		audit.Record(a.log, a.event, attrs...)
	}
}

// flush writes the records of every limitRefusal not yet recorded.
func (a *limitAudit) flush() {
	a.mu.Lock()
	for _, k := range a.table.Keys() {
		if v, ok := a.table.Peek(k); ok {
			a.flushCount(k, v)
		}
	}
	for l, n := range a.overflow {
		a.pending = append(a.pending, pendingRecord{key: limitKey{limit: l}, count: n, since: a.start})
	}
	clear(a.overflow)
	out := a.take()
	a.mu.Unlock()
	a.write(out)
}
