package recorder

import (
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the write transactions of concurrent callers together:
// one commit, and one fsync, for every call that arrived while the
// previous commit was running. A call made when nothing is committing
// commits at once, so a lone session start waits for no timer (bbolt's
// DB.Batch waits MaxBatchDelay for company, and, once a batch has
// started, opens a new one per timer tick rather than per commit).
//
// Session starts and ends are the bastion's hot writes. Committed one by
// one, their fsyncs queue behind the index's single writer, and at a few
// hundred concurrent sessions that queue, not the CPU, limits how fast
// sessions start. The zero value is not usable: set db. It is safe for
// concurrent use.
type groupCommit struct {
	db *bolt.DB

	mu      sync.Mutex // guards queue and leading
	queue   []*commitCall
	leading bool // a caller is committing; calls queue for the next group
}

// commitCall is one caller's transaction function and its result.
type commitCall struct {
	fn   func(*bolt.Tx) error
	err  error
	wake chan struct{} // closed when err is set, or when the call is made leader
	lead bool          // the call must commit the next group (set before wake closes)
	done bool          // err is set (the leader's commit only)
}

// run runs fn in a write transaction shared with the calls queued beside
// it. fn may run more than once (a group that fails is retried without
// the failing call, which then runs alone for its own result), so it must
// only change the transaction.
func (g *groupCommit) run(fn func(*bolt.Tx) error) error {
	c := &commitCall{fn: fn, wake: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.leading {
		g.mu.Unlock()
		<-c.wake
		if !c.lead {
			return c.err
		}
		g.mu.Lock()
	}
	g.leading = true
	group := g.queue
	g.queue = nil
	g.mu.Unlock()

	defer g.handOff() // even if a transaction function panics
	g.commit(group, c)
	return c.err
}

// handOff passes leadership to the oldest waiter, so that no caller
// commits for others for longer than one group, or ends it.
func (g *groupCommit) handOff() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.lead = true
		close(next.wake)
		return
	}
	g.leading = false
}

// commit runs group's functions in one transaction and hands each call
// its result; leader (a member, which is not waiting) is not woken.
func (g *groupCommit) commit(group []*commitCall, leader *commitCall) {
	finish := func(c *commitCall, err error) {
		c.err, c.done = err, true
		if c != leader {
			close(c.wake)
		}
	}
	// A panicking transaction function must not leave the others waiting
	// for ever: they fail, and the panic goes on up the leader's stack.
	defer func() {
		if r := recover(); r != nil {
			for _, c := range group {
				if !c.done {
					finish(c, fmt.Errorf("index write: panic in a transaction: %v", r))
				}
			}
			panic(r)
		}
	}()
	for len(group) > 0 {
		failed := -1
		err := guardedUpdate(g.db, func(tx *bolt.Tx) error {
			for i, c := range group {
				if err := c.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range group {
				finish(c, err)
			}
			return
		}
		// Rolled back: the failing call runs alone, for its own
		// result; the others try again together.
		f := group[failed]
		finish(f, guardedUpdate(g.db, f.fn))
		group = slices.Delete(group, failed, failed+1)
	}
}
