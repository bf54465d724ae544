package pgproxy

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// errOutOfStep is a reply that does not answer the request it should.
func errOutOfStep(msg string, head op, ok bool) error {
	if !ok {
		return fmt.Errorf("%s with no request awaiting a reply", msg)
	}
	return fmt.Errorf("%s while a %q request awaits its reply", msg, head.kind)
}

// peek returns the request at the head of the queue. The head stays the
// head until the server's reader pops it, so it is kept here: looking at
// it for each row takes no lock.
func (v *serverSide) peek() (op, bool) {
	if !v.hasHead {
		v.head, v.hasHead = v.s.q.peek()
	}
	return v.head, v.hasHead
}

// pop removes the head.
func (v *serverSide) pop() {
	v.s.q.pop()
	v.hasHead = false
}

// skipToSync drops the requests the server skips after an error.
func (v *serverSide) skipToSync() {
	v.s.q.skipToSync()
	v.hasHead = false
}

// expect checks that the head is a kind request, and pops it if pop.
func (v *serverSide) expect(kind byte, pop bool) error {
	head, ok := v.peek()
	if !ok || head.kind != kind {
		return errOutOfStep(fmt.Sprintf("reply to %q", kind), head, ok)
	}
	if pop {
		v.pop()
	}
	return nil
}

// confirm pops the head, a kind request the server confirmed, and records
// what it did to the prepared statements and portals.
func (v *serverSide) confirm(kind byte) error {
	if err := v.expect(kind, false); err != nil {
		return err
	}
	if e := v.head.effect; e != nil {
		if err := v.s.prep.apply(e); err != nil {
			return err
		}
	}
	v.pop()
	return nil
}

// inStatement checks that a statement (a Query or Execute) is running.
func (v *serverSide) inStatement() error {
	head, ok := v.peek()
	if !ok || head.kind != 'Q' && head.kind != 'E' {
		return errOutOfStep("statement reply", head, ok)
	}
	return notRefused(head)
}

// notRefused checks that head is not a refused statement: its stand-in
// fails, and only an ErrorResponse answers it.
func notRefused(head op) error {
	if head.refused != "" {
		return fmt.Errorf("a result to the stand-in of a refused %q request", head.kind)
	}
	return nil
}

// row counts a DataRow of the running statement.
func (v *serverSide) row() error {
	if err := v.inStatement(); err != nil {
		return err
	}
	v.rows++
	return nil
}

// copyData masks a CopyData of COPY TO's output, and counts it as a row.
func (v *serverSide) copyData(p []byte) error {
	if !v.copyOut {
		return errors.New("CopyData outside COPY TO")
	}
	if v.copyBin != nil {
		if err := v.copyBin.data(p, v.s.m); err != nil {
			return err
		}
	} else {
		v.s.m.value(p)
	}
	return v.row()
}

// rowDescription follows a RowDescription: the answer to a Describe, or
// the start of a simple Query's result set.
func (v *serverSide) rowDescription() error {
	head, ok := v.peek()
	switch {
	case ok && head.kind == 'D':
		v.pop()
	case ok && head.kind == 'Q':
		return notRefused(head)
	default:
		return errOutOfStep("RowDescription", head, ok)
	}
	return nil
}

// result reports how the statement at the head ended; the head must be a
// request of kind simple or ext, and an ext one is popped (a Query's ends
// with ReadyForQuery).
func (v *serverSide) result(r Result, simple, ext byte) error {
	head, ok := v.peek()
	if !ok || head.kind != simple && head.kind != ext {
		return errOutOfStep("command result", head, ok)
	}
	if err := notRefused(head); err != nil {
		return err
	}
	v.report(r, head)
	if head.kind == ext && ext == 'E' {
		v.pop()
	}
	return nil
}

// report completes r for the head op and gives it to the observer.
func (v *serverSide) report(r Result, head op) {
	now := time.Now()
	r.Seq, r.Rows = head.seq, v.rows
	start := head.start
	if v.lastEnd.After(start) {
		start = v.lastEnd // the second statement of a Query's text
	}
	if !start.IsZero() {
		r.Duration = now.Sub(start)
	}
	v.lastEnd, v.rows = now, 0
	v.s.obs.Result(r)
}

// readyForQuery ends a Query, a FunctionCall or a Sync: or, the first
// time, the startup.
func (v *serverSide) readyForQuery() error {
	if !v.ready {
		v.ready = true
		if v.authing {
			return errors.New("ReadyForQuery before authentication")
		}
		return nil
	}
	if v.skip {
		// What the client sent after the error, until Sync, was
		// skipped too, also what it sent after the error was seen.
		v.skipToSync()
		v.skip = false
	}
	head, ok := v.peek()
	if !ok || head.kind != 'Q' && head.kind != 'S' && head.kind != 'F' {
		return errOutOfStep("ReadyForQuery", head, ok)
	}
	v.pop()
	v.copyOut, v.rows = false, 0
	return nil
}

// errorResponse masks an ErrorResponse, reports it against the request it
// answers and, in the extended protocol, drops the requests the server
// skips until Sync.
func (v *serverSide) errorResponse(e *pgproto3.ErrorResponse) error {
	s := v.s
	s.errors.Add(1)
	if head, ok := v.peek(); ok && head.refused != "" && !v.authing {
		// The stand-in's error: the client is told why its statement
		// was refused instead.
		*e = pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: refusedCode, Message: head.refused}
	}
	if !s.m.on {
		// The client gets the server's text; the record never does.
		rec := *e
		rec.UnknownFields = maps.Clone(e.UnknownFields)
		maskNotice(&rec, &masker{on: true, mode: s.cfg.Mode, detect: s.cfg.Detect, legacy: s.m.legacy})
		e = &rec
	} else {
		maskNotice(e, s.m)
	}
	r := Result{Err: &Error{Severity: e.Severity, Code: e.Code, Message: e.Message, Detail: e.Detail}}
	if v.authing {
		// A failed login ends the connection: the client's reader
		// stops waiting when the server's side ends.
		v.report(r, op{})
		return nil
	}
	head, ok := v.peek()
	v.copyOut = false
	switch {
	case !ok || head.kind == 'S':
		v.report(r, op{}) // outside any request (or at Sync's commit)
	case head.kind == 'Q' || head.kind == 'F':
		v.report(r, head) // ReadyForQuery follows
	default:
		if head.stmt != nil { // Parse or Bind failed: report what was sent
			st := *head.stmt
			st.Seq = int(s.seq.Add(1))
			s.statements.Add(1)
			s.obs.Statement(st)
			head.seq = st.Seq
		}
		v.report(r, head)
		v.skipToSync()
		v.skip = true
	}
	return nil
}
