package pgproxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// op is one request of the client that awaits the server's reply, in the
// order the protocol answers them (PostgreSQL protocol, "Message Flow").
type op struct {
	// kind is the request's message type: 'Q' Query, 'P' Parse, 'B'
	// Bind, 'D' Describe, 'E' Execute, 'C' Close, 'S' Sync, 'F'
	// FunctionCall.
	kind byte
	// seq is the statement number of a Q, E or F; 0 for the others.
	seq int
	// start is when the relay received the request.
	start time.Time
	// stmt is what a P or B reports if it fails before an Execute.
	stmt *Statement
	// refused, for a Q, E or F that Config.Judge refused, is what the
	// client is told: the server got a stand-in that fails (see
	// judge.go), and its ErrorResponse is replaced by this message.
	refused string
	// effect, for a P, B or C, is what it does to the server's prepared
	// statements and portals once the server confirms it (prepared.go).
	effect *effect
}

// queue holds the ops sent and not yet answered. The client's reader
// pushes, the server's reader looks at the head and pops. Safe for
// concurrent use.
type queue struct {
	mu     sync.Mutex // guards the fields below
	ops    []op       // ops[0] is the head
	max    int
	head   int           // index of the head in ops; ops before it are popped
	pushed uint64        // ops ever pushed
	popped uint64        // ops ever popped or skipped
	wake   chan struct{} // closed at the next pop, if someone waits
}

// pushedCount returns how many ops were ever pushed.
func (q *queue) pushedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pushed
}

// poppedCount returns how many ops were ever popped or skipped.
func (q *queue) poppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.popped
}

// waitPopped waits until n ops were popped, ctx is done or stop closed.
func (q *queue) waitPopped(ctx context.Context, n uint64, stop <-chan struct{}) error {
	for {
		q.mu.Lock()
		if q.popped >= n {
			q.mu.Unlock()
			return nil
		}
		if q.wake == nil {
			q.wake = make(chan struct{})
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-stop:
			return errors.New("pgproxy: the relay stopped")
		}
	}
}

// popped1 counts a pop and wakes a waiter; q.mu is held.
func (q *queue) popped1() {
	q.popped++
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
}

// push adds o, or fails when max ops are waiting.
func (q *queue) push(o op) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ops)-q.head >= q.max {
		return fmt.Errorf("more than %d requests await the server's replies", q.max)
	}
	if q.head > 0 && q.head == len(q.ops) {
		q.ops, q.head = q.ops[:0], 0 // empty: reuse the array
	}
	q.ops = append(q.ops, o)
	q.pushed++
	return nil
}

// peek returns the head, ok false when nothing waits.
func (q *queue) peek() (op, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.ops) {
		return op{}, false
	}
	return q.ops[q.head], true
}

// pop removes the head.
func (q *queue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head < len(q.ops) {
		q.ops[q.head] = op{}
		q.head++
		q.popped1()
	}
	if q.head > 1024 && q.head*2 > len(q.ops) {
		n := copy(q.ops, q.ops[q.head:])
		clear(q.ops[n:])
		q.ops, q.head = q.ops[:n], 0
	}
}

// skipToSync drops the ops before the next Sync: after an error in an
// extended-protocol request the server discards every message until Sync.
func (q *queue) skipToSync() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head < len(q.ops) && q.ops[q.head].kind != 'S' {
		q.ops[q.head] = op{}
		q.head++
		q.popped1()
	}
}
