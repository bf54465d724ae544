package bastion

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// gate counts what clients hold against Limits: connections not yet
// authenticated (in total and per source), failed logins per source, and
// authenticated connections (in total and per identity). It is safe for
// concurrent use; none of its methods does I/O.
type limitGate struct {
	lim Limits

	mu          sync.Mutex // guards everything below
	unauth      int
	perSource   map[netip.Prefix][]*startup // oldest first; at most lim.Startups.Full in all
	failures    *simplelru.LRU[netip.Prefix, *failures]
	authed      int
	perIdentity map[string]int // at most lim.MaxConns entries
}

// startup is one connection's place among the unauthenticated ones.
type startup struct {
	src   netip.Prefix
	close func(by netip.Prefix) // ends the connection when a connection from by takes its place; nil: never taken
	left  bool                  // the place was given back; guarded by the gate's mu
}

// failures is one source's failed logins in its current window.
type failures struct {
	start   time.Time // of the window
	n       int
	blocked time.Time // until when, once n reached the limit
}

// newGate fills lim's zero fields with the defaults, checks it, and
// returns a gate that enforces it.
func newGate(lim *Limits) (*limitGate, error) {
	l, err := lim.withDefaults()
	if err != nil {
		return nil, err
	}
	*lim = l
	t, err := simplelru.NewLRU[netip.Prefix, *failures](lim.FailureSources, nil)
	if err != nil {
		return nil, err
	}
	return &limitGate{lim: l, perSource: map[netip.Prefix][]*startup{}, failures: t, perIdentity: map[string]int{}}, nil
}

// sourceOf is the source a connection from addr counts against: an IPv4
// address or an IPv6 /64.
func sourceOf(addr net.Addr) netip.Prefix {
	var a netip.Addr
	if tcp, ok := addr.(*net.TCPAddr); ok {
		a = tcp.AddrPort().Addr().Unmap()
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// limitRefusal is a limit a client ran into: the limit's name, what the
// client is told, and attributes for the audit record.
type limitRefusal struct {
	limit string
	msg   string
	attrs []any
}

// admit takes an unauthenticated place for a connection from src at now,
// or says which limit refuses it. The place is given back with leave;
// close ends the connection if another's admission takes its place.
//
// Where MaxStartups would drop the connection, it takes instead the
// oldest place of the source holding the most, if that source holds more
// than src would: so a few sources that fill Startups cannot keep a
// client from elsewhere out, which random early drop alone lets them do.
// The connection whose place was taken is returned as evicted; the caller
// calls its close.
func (g *limitGate) admit(src netip.Prefix, now time.Time, close func(by netip.Prefix)) (st, evicted *startup, r *limitRefusal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.failures.Peek(src); ok && now.Before(f.blocked) {
		wait := f.blocked.Sub(now).Round(time.Second)
		return nil, nil, &limitRefusal{limit: LimitAuthFailures,
			msg:   fmt.Sprintf("postern: too many failed logins from %s; try again in %s", src.Addr(), wait),
			attrs: []any{"failures", f.n, "blocked_for", wait.String()}}
	}
	if n := len(g.perSource[src]); n >= g.lim.StartupsPerSource {
		return nil, nil, &limitRefusal{limit: LimitStartupsPerSource,
			msg:   fmt.Sprintf("postern: too many connections from %s are still logging in; try again shortly", src.Addr()),
			attrs: []any{"open", n, "max", g.lim.StartupsPerSource}}
	}
	if g.dropStartup() {
		if evicted = g.evictFor(src); evicted == nil {
			return nil, nil, &limitRefusal{limit: LimitStartups,
				msg:   "postern: the bastion is busy with logins; try again shortly",
				attrs: []any{"open", g.unauth, "max_startups", g.lim.Startups.String()}}
		}
	}
	st = &startup{src: src, close: close}
	g.unauth++
	g.perSource[src] = append(g.perSource[src], st)
	return st, evicted, nil
}

// evictFor gives back the oldest place that can be taken of the source
// holding the most places, if it holds more than src would with one more,
// and returns it. Call with mu held.
func (g *limitGate) evictFor(src netip.Prefix) *startup {
	var top []*startup
	for _, l := range g.perSource {
		if len(l) > len(top) {
			top = l
		}
	}
	if len(top) <= len(g.perSource[src])+1 {
		return nil
	}
	for _, st := range top {
		if st.close != nil {
			g.leaveLocked(st)
			return st
		}
	}
	return nil
}

// dropStartup decides whether one more unauthenticated connection is
// dropped, as OpenSSH's MaxStartups does. Call with mu held.
func (g *limitGate) dropStartup() bool {
	s, n := g.lim.Startups, g.unauth
	switch {
	case n < s.Start:
		return false
	case n >= s.Full:
		return true
	}
	// Rate percent at Start, rising to 100 at Full.
	p := s.Rate + (100-s.Rate)*(n-s.Start)/(s.Full-s.Start)
	return rand.IntN(100) < p
}

// leave gives back the place admit gave st, once.
func (g *limitGate) leave(st *startup) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leaveLocked(st)
}

func (g *limitGate) leaveLocked(st *startup) {
	if st.left {
		return
	}
	st.left = true
	g.unauth--
	l := slices.DeleteFunc(g.perSource[st.src], func(o *startup) bool { return o == st })
	if len(l) == 0 {
		delete(g.perSource, st.src)
	} else {
		g.perSource[st.src] = l
	}
}

// fail counts a failed login from src at now and reports whether it
// blocks src from now on.
func (g *limitGate) fail(src netip.Prefix, now time.Time) (blocked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.failures.Get(src)
	if !ok || !now.Before(f.start.Add(g.lim.AuthFailureWindow)) {
		if ok && now.Before(f.blocked) {
			return false // still blocked from an earlier window
		}
		f = &failures{start: now}
		g.failures.Add(src, f)
	}
	f.n++
	if f.n >= g.lim.AuthFailures && !now.Before(f.blocked) {
		f.blocked = now.Add(g.lim.AuthBlock)
		return true
	}
	return false
}

// login takes an authenticated place for identity, or says which limit
// refuses it. The place is given back with logout.
func (g *limitGate) login(identity string) *limitRefusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.authed >= g.lim.MaxConns {
		return &limitRefusal{limit: LimitConns,
			msg:   fmt.Sprintf("postern: the bastion is at its limit of %d open connections; try again later", g.lim.MaxConns),
			attrs: []any{"open", g.authed, "max", g.lim.MaxConns}}
	}
	if n := g.perIdentity[identity]; n >= g.lim.MaxConnsPerIdentity {
		return &limitRefusal{limit: LimitConnsPerIdentity,
			msg: fmt.Sprintf("postern: %s already has %d connections open, the limit; close one and try again",
				logSafe(identity), n),
			attrs: []any{"open", n, "max", g.lim.MaxConnsPerIdentity}}
	}
	g.authed++
	g.perIdentity[identity]++
	return nil
}

// logout gives back the place login took for identity.
func (g *limitGate) logout(identity string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.authed--
	if g.perIdentity[identity]--; g.perIdentity[identity] <= 0 {
		delete(g.perIdentity, identity)
	}
}

// full reports whether login would refuse identity now: a hint (for
// speculate), not a place.
func (g *limitGate) full(identity string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.authed >= g.lim.MaxConns || g.perIdentity[identity] >= g.lim.MaxConnsPerIdentity
}
