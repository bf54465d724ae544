package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Store keeps requests across restarts (the bastion's index, which seals
// each change in the audit chain). SaveRequest stores r as it stands after
// event (Change.Event) and must be durable when it returns: a command runs
// only after its approval is.
type Store interface {
	SaveRequest(ctx context.Context, event string, r Request) error
	Requests(ctx context.Context) ([]Request, error)
}

// Change is what happened to a request: Event is "requested" or the state
// it entered ("approved", "denied", ...), or "decision" for a yes that does
// not yet decide a two-person request; Decision is the approver's, if any.
type Change struct {
	Event    string
	Request  Request
	Decision *Decision
}

// BrokerConfig configures a Broker. Store is required.
type BrokerConfig struct {
	Store Store
	// Audit is called with every change, in order, after the change is
	// saved and before anyone waiting learns of it; an error undoes
	// nothing that was saved but is returned to the caller, and a command
	// whose approval could not be audited does not run. Nil: no audit.
	Audit func(context.Context, Change) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrNotFound is returned for a request ID the Broker does not know.
var ErrNotFound = errors.New("no such request")

// Broker holds approval requests and their decisions. It is safe for
// concurrent use. It starts no goroutine: expiry is checked whenever a
// request is read or decided, and by Wait's own timer.
type Broker struct {
	cfg BrokerConfig

	// mu guards reqs, done and subs, and is held across Store.SaveRequest
	// and Audit so that changes are saved and audited in the order they
	// happen.
	mu   sync.Mutex
	reqs map[string]*Request
	done map[string]chan struct{} // closed when the request leaves pending
	subs map[chan Change]struct{}
}

// NewBroker opens a Broker on cfg.Store. Command requests that were
// pending when the bastion last stopped belong to sessions that are gone:
// they become abandoned, never approved. Pending access requests stay
// pending until they expire. Only what is still live (pending requests,
// running grants) is loaded: decided requests stay in the Store.
func NewBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	if cfg.Store == nil {
		return nil, errors.New("approval: broker needs a store")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{cfg: cfg, reqs: map[string]*Request{}, done: map[string]chan struct{}{}, subs: map[chan Change]struct{}{}}
	list, err := cfg.Store.Requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("load approval requests: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := cfg.Now()
	for _, r := range list {
		r := r.clone()
		switch {
		case r.State == StatePending && (r.Kind == KindCommand || r.Kind == KindSQL):
			// Its session is gone: saved as abandoned, not kept.
			b.done[r.ID] = make(chan struct{})
			if err := b.finish(ctx, &r, StateAbandoned, nil); err != nil {
				return nil, err
			}
			delete(b.done, r.ID)
		case r.State == StatePending, r.GrantUntil != nil && now.Before(*r.GrantUntil):
			// Still live: an access request waiting, a grant running.
			b.reqs[r.ID] = &r
			b.done[r.ID] = make(chan struct{})
			if r.State != StatePending {
				close(b.done[r.ID])
			}
		}
	}
	return b, nil
}

// Submit adds r as a new pending request and returns it with its ID,
// state and times set. r.Expires must be set (the rule's timeout from
// now); Required defaults to 1.
func (b *Broker) Submit(ctx context.Context, r Request) (Request, error) {
	if r.Kind != KindCommand && r.Kind != KindAccess && r.Kind != KindSQL {
		return Request{}, fmt.Errorf("approval: unknown request kind %q", r.Kind)
	}
	if len(r.Approvers) == 0 {
		return Request{}, errors.New("approval: a request needs approver groups")
	}
	// A line too long to judge is too long to show an approver: refused,
	// not stored (memory, index and audit records stay bounded).
	if len(r.Line) > MaxLine {
		return Request{}, refused("the command line is %d bytes, more than the %d an approver can be asked about", len(r.Line), MaxLine)
	}
	if len(r.Reason) > maxReasonBytes {
		r.Reason = r.Reason[:maxReasonBytes]
	}
	r = r.clone()
	r.Required = max(r.Required, 1)
	r.Created = b.cfg.Now()
	if !r.Expires.After(r.Created) {
		return Request{}, errors.New("approval: a request must expire after it is made")
	}
	r.State, r.Decisions, r.Decided, r.GrantUntil = StatePending, nil, nil, nil
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.makeRoom(r.Requester); err != nil {
		return Request{}, err
	}
	for {
		r.ID = newID()
		if _, taken := b.reqs[r.ID]; !taken {
			break
		}
	}
	if err := b.save(ctx, Change{Event: "requested", Request: r}); err != nil {
		return Request{}, err
	}
	b.reqs[r.ID] = &r
	b.done[r.ID] = make(chan struct{})
	return r.clone(), nil
}

// Limits on what the Broker keeps in memory. Requests stay in the Store.
const (
	// MaxPendingPerRequester caps one requester's pending requests: each
	// is a goroutine waiting and a line in every approver's list.
	MaxPendingPerRequester = 20
	// keepMax bounds the requests the Broker keeps in memory (and
	// List shows): past it, the oldest decided ones are forgotten.
	keepMax = 4096
	// maxReasonBytes caps a requester's reason.
	maxReasonBytes = 1024
)

// makeRoom refuses a request from requester when it has too many pending,
// and forgets the oldest decided requests (not an access grant still
// running) while the Broker holds more than keepMax. The Store keeps
// them all. b.mu is held.
func (b *Broker) makeRoom(requester string) error {
	now, pending := b.cfg.Now(), 0
	var decided []*Request
	for _, r := range b.reqs {
		switch {
		case r.State == StatePending:
			if r.Requester == requester && now.Before(r.Expires) {
				pending++
			}
		case r.GrantUntil == nil || !now.Before(*r.GrantUntil):
			decided = append(decided, r)
		}
	}
	if pending >= MaxPendingPerRequester {
		return refused("you have %d requests waiting for approval; wait for them or cancel one", pending)
	}
	if extra := len(b.reqs) + 1 - keepMax; extra > 0 && len(decided) > 0 {
		slices.SortFunc(decided, func(x, y *Request) int { return x.Decided.Compare(*y.Decided) })
		for _, r := range decided[:min(extra, len(decided))] {
			delete(b.reqs, r.ID)
			delete(b.done, r.ID)
		}
	}
	return nil
}

// Wait blocks until request id is decided or expires, and returns it. When
// ctx ends first (the requester left), a request still pending is
// cancelled, and Wait returns it with ctx's cause.
func (b *Broker) Wait(ctx context.Context, id string) (Request, error) {
	b.mu.Lock()
	r, ok := b.reqs[id]
	if !ok {
		b.mu.Unlock()
		return Request{}, ErrNotFound
	}
	// r, not the map, from here on: once decided, the request may be
	// forgotten (makeRoom) before this waiter reads it.
	done, expires := b.done[id], r.Expires
	b.mu.Unlock()

	timer := time.NewTimer(expires.Sub(b.cfg.Now()))
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
		// Cancel with a context of its own: ctx is already done, and the
		// cancellation must still be saved and audited.
		cr, err := b.settle(context.WithoutCancel(ctx), r, StateCancelled)
		if err != nil {
			return cr, err
		}
		return cr, context.Cause(ctx)
	}
	return b.settle(ctx, r, StateExpired)
}

// settle returns r, first moving it from pending to state if it is still
// pending and either state is StateCancelled or its deadline has passed.
func (b *Broker) settle(ctx context.Context, r *Request, state string) (Request, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.State == StatePending && (state == StateCancelled || !b.cfg.Now().Before(r.Expires)) {
		if err := b.finish(ctx, r, state, nil); err != nil {
			return r.clone(), err
		}
	}
	return r.clone(), nil
}

// Decide records approver's yes (approve) or no on request id. One
// authorised no denies it; it is approved once Required distinct
// authorised approvers said yes. The requester, anyone outside the rule's
// approver groups, and a second yes from the same person are refused with
// a *RefusedError, as is a decision on a request no longer pending.
func (b *Broker) Decide(ctx context.Context, id string, who Approver, approve bool, reason string) (Request, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.reqs[id]
	if !ok {
		return Request{}, ErrNotFound
	}
	b.expire(ctx, r)
	if err := b.mayDecide(r, who, approve); err != nil {
		return r.clone(), err
	}
	d := Decision{By: who.Name, Principals: slices.Clone(who.Principals), Approve: approve, Reason: reason, At: b.cfg.Now()}
	if !approve || r.approvals()+1 >= r.Required {
		state := StateApproved
		if !approve {
			state = StateDenied
		}
		err := b.finish(ctx, r, state, &d)
		return r.clone(), err
	}
	next := r.clone()
	next.Decisions = append(next.Decisions, d)
	if err := b.save(ctx, Change{Event: "decision", Request: next, Decision: &d}); err != nil {
		return r.clone(), err
	}
	*r = next
	return r.clone(), nil
}

// mayDecide says why who may not decide r, or nil.
func (b *Broker) mayDecide(r *Request, who Approver, approve bool) error {
	if r.State != StatePending {
		return refused("request %s is already %s", r.ID, r.State)
	}
	if !b.cfg.Now().Before(r.Expires) {
		return refused("request %s has expired", r.ID)
	}
	if who.Name == "" {
		return refused("a decision needs a named approver")
	}
	if who.Name == r.Requester || hasAny(who.Principals, r.RequesterPrincipals) {
		return refused("you cannot approve or deny your own request %s", r.ID)
	}
	if !hasAny(who.Groups, r.Approvers) {
		return refused("request %s needs an approver in group %s (rule %s)", r.ID, strings.Join(r.Approvers, " or "), r.Rule)
	}
	if approve {
		for _, d := range r.Decisions {
			if d.By == who.Name || hasAny(d.Principals, who.Principals) {
				return refused("you already approved request %s; rule %s needs %d different approvers", r.ID, r.Rule, r.Required)
			}
		}
	}
	return nil
}

// expire moves r to StateExpired if it is pending past its deadline. A
// failure to save leaves r pending for the next look; a request pending
// past its deadline is never approved all the same (mayDecide).
func (b *Broker) expire(ctx context.Context, r *Request) {
	if r.State == StatePending && !b.cfg.Now().Before(r.Expires) {
		_ = b.finish(ctx, r, StateExpired, nil)
	}
}

// finish moves r out of pending into state, with d as the deciding
// decision if any, saves and audits that, and wakes its waiters. b.mu is
// held.
func (b *Broker) finish(ctx context.Context, r *Request, state string, d *Decision) error {
	next := r.clone()
	now := b.cfg.Now()
	next.State, next.Decided = state, &now
	if d != nil {
		next.Decisions = append(next.Decisions, *d)
	}
	if state == StateApproved && next.Kind == KindAccess {
		until := now.Add(next.For)
		next.GrantUntil = &until
	}
	if err := b.save(ctx, Change{Event: state, Request: next, Decision: d}); err != nil {
		return err
	}
	*r = next
	close(b.done[r.ID])
	return nil
}

// save makes c durable, audits it and tells the subscribers. b.mu is held.
func (b *Broker) save(ctx context.Context, c Change) error {
	if err := b.cfg.Store.SaveRequest(ctx, c.Event, c.Request); err != nil {
		return fmt.Errorf("save approval request %s: %w", c.Request.ID, err)
	}
	if b.cfg.Audit != nil {
		if err := b.cfg.Audit(ctx, c); err != nil {
			return fmt.Errorf("audit approval request %s: %w", c.Request.ID, err)
		}
	}
	for ch := range b.subs {
		select {
		case ch <- Change{Event: c.Event, Request: c.Request.clone(), Decision: c.Decision}:
		default:
			// A subscriber that does not keep up is dropped rather than
			// slowing every decision: its channel closes, and a watcher
			// says so and can list again.
			delete(b.subs, ch)
			close(ch)
		}
	}
	return nil
}

// Get returns request id.
func (b *Broker) Get(ctx context.Context, id string) (Request, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.reqs[id]
	if !ok {
		return Request{}, ErrNotFound
	}
	b.expire(ctx, r)
	return r.clone(), nil
}

// List returns the requests, oldest first: only pending ones unless all.
func (b *Broker) List(ctx context.Context, all bool) []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Request
	for _, r := range b.reqs {
		b.expire(ctx, r)
		if all || r.State == StatePending {
			out = append(out, r.clone())
		}
	}
	Sort(out)
	return out
}

// Sort orders requests oldest first (by creation, then ID).
func Sort(list []Request) {
	slices.SortFunc(list, func(x, y Request) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
}

// Subscribe returns a channel that receives every change from now on, and
// a function that ends the subscription. The channel holds up to 64
// changes; a subscriber further behind is dropped and its channel closed.
func (b *Broker) Subscribe() (<-chan Change, func()) {
	ch := make(chan Change, 64)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Granted returns the approved access request that lets principals reach
// target as login at now, if there is one.
func (b *Broker) Granted(principals []string, target, login string) (Request, bool) {
	return b.GrantedFor(principals, target, login, nil)
}

// GrantedFor is Granted counting only the grants that accept (if not nil)
// accepts: those approved under the access rule in force, say. accept is
// called with the broker's lock held and must not call it.
func (b *Broker) GrantedFor(principals []string, target, login string, accept func(Request) bool) (Request, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()
	for _, r := range b.reqs {
		if r.Kind == KindAccess && r.State == StateApproved && r.GrantUntil != nil && now.Before(*r.GrantUntil) &&
			r.Target == target && r.Login == login && hasAny(principals, r.RequesterPrincipals) && (accept == nil || accept(*r)) {
			return r.clone(), true
		}
	}
	return Request{}, false
}

// hasAny reports whether a and b share an element.
func hasAny(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
