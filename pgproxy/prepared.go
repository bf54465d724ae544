package pgproxy

import (
	"context"
	"sync"
)

// What the relay knows of a connection's prepared statements and portals,
// for the Executes that run them. The server's own state is what counts:
// a Parse the server refuses (the name is taken) or skips (after an
// error, until Sync) does not change what a name runs, and a relay that
// believed it would judge one text and let the server run another. So the
// relay keeps two views:
//
//   - confirmed (prepared, below): what the server's replies confirmed
//     (ParseComplete, BindComplete, CloseComplete), kept by the server's
//     reader;
//   - the current batch (clientSide.bstmts, bportals): what the Parses,
//     Binds and Closes sent since the last Sync or Query did. An Execute
//     in the same batch runs only if each of them succeeded (an error
//     skips the rest of the batch), so they hold for it.
//
// A name is looked up in the current batch, then in the confirmed view,
// once the server has answered every earlier batch that changed one
// (settle): what it made of them is then known.

// stmtText is a prepared statement: its recorded (masked) text and its
// text as sent, for the Judge. closed marks a Close in the current batch.
type stmtText struct {
	text, sql string
	closed    bool
}

func stmtSize(s stmtText) int { return len(s.text) + len(s.sql) }

// effect is what a Parse, Bind or Close does to the server's state when
// the server confirms it.
type effect struct {
	portal bool // a portal's, else a statement's
	close  bool
	name   string
	stmt   stmtText
	port   portal
}

// prepared is the confirmed view. Safe for concurrent use: the server's
// reader applies, the client's reader looks up.
type prepared struct {
	mu      sync.Mutex // guards stmts and portals
	stmts   *named[stmtText]
	portals *named[portal]
}

// apply records a confirmed effect, or reports ErrTooMany.
func (p *prepared) apply(e *effect) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.portal && e.close:
		p.portals.del(e.name)
	case e.portal:
		return p.portals.put(e.name, e.port)
	case e.close:
		p.stmts.del(e.name)
	default:
		return p.stmts.put(e.name, e.stmt)
	}
	return nil
}

func (p *prepared) stmt(name string) (stmtText, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.stmts.m[name]
	return s, ok
}

func (p *prepared) portal(name string) (portal, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.portals.m[name]
	return v, ok
}

// lookupStmt returns the statement name runs if a message the client
// sends now runs: ok false if the relay knows none (SQL's PREPARE may
// have made it). watched says the caller watches the client already (a
// Judge's call).
func (c *clientSide) lookupStmt(ctx context.Context, name string, watched bool) (stmtText, bool, error) {
	if s, ok := c.bstmts.m[name]; ok {
		return s, !s.closed, nil
	}
	if err := c.settle(ctx, watched); err != nil {
		return stmtText{}, false, err
	}
	s, ok := c.s.prep.stmt(name)
	return s, ok, nil
}

// lookupPortal is lookupStmt for a portal.
func (c *clientSide) lookupPortal(ctx context.Context, name string) (portal, bool, error) {
	if p, ok := c.bportals.m[name]; ok {
		return p, !p.closed, nil
	}
	if err := c.settle(ctx, false); err != nil {
		return portal{}, false, err
	}
	p, ok := c.s.prep.portal(name)
	return p, ok, nil
}

// change records an effect of the current batch on op o.
func (c *clientSide) change(o *op, e effect) error {
	var err error
	switch {
	case e.portal:
		p := e.port
		p.closed = e.close
		err = c.bportals.put(e.name, p)
	default:
		s := e.stmt
		s.closed = e.close
		err = c.bstmts.put(e.name, s)
	}
	if err != nil {
		return err
	}
	o.effect = &e
	c.changed = true
	return nil
}

// endBatch ends the current batch after a Sync or Query was queued: its
// effects are now the server's to confirm.
func (c *clientSide) endBatch() {
	if !c.changed {
		return
	}
	c.settleAt = c.s.q.pushedCount()
	clear(c.bstmts.m)
	clear(c.bportals.m)
	c.bstmts.bytes, c.bportals.bytes, c.changed = 0, 0, false
}

// settle waits until the server answered every earlier batch that
// changed a statement or portal (it sees its Sync, which the client sent
// already). The client's leaving, or the relay's stopping, ends the wait
// with an error.
func (c *clientSide) settle(ctx context.Context, watched bool) error {
	if c.s.q.poppedCount() >= c.settleAt {
		return nil
	}
	if err := c.flush(); err != nil {
		return err
	}
	if !watched && c.s.cpf != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		c.s.cpf.watch(cancel)
		defer c.s.cpf.decide()
	}
	return c.s.q.waitPopped(ctx, c.settleAt, c.s.stopc)
}

// preparedKey keys the client's side in a Judge's context.
type preparedKey struct{}

// PreparedStatement returns, during a Judge's call with ctx, the statement
// prepared under name with the protocol's Parse as the server will have it
// when the statement judged runs: its text as recorded (masked) and as
// sent (sql, for judging only: never store it). ok is false when the
// relay knows no statement by that name (SQL's PREPARE may have made one,
// and was judged then). It may wait for the server's replies to earlier
// requests; an error (the client left, the relay stops) means it cannot
// tell, and the statement must not run.
func PreparedStatement(ctx context.Context, name string) (text, sql string, ok bool, err error) {
	c, isClient := ctx.Value(preparedKey{}).(*clientSide)
	if !isClient {
		return "", "", false, nil
	}
	s, ok, err := c.lookupStmt(ctx, name, true)
	if err != nil || !ok {
		return "", "", false, err
	}
	return s.text, s.sql, true, nil
}
