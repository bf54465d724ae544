package pgproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Judging statements. Config.Judge is asked about each Query, Execute and
// FunctionCall before it reaches the server; it may block (a statement held
// for approval), and the client's messages then wait in the relay: the
// server gets nothing of them until the Judge returns, but every message
// sent before is passed on first, and the server's replies to them reach
// the client meanwhile.
//
// A refusal (*Denied) must leave both sides where PostgreSQL itself would
// leave them after a statement that failed: an open transaction aborted,
// in the extended protocol every message skipped until Sync. So the relay
// does not drop the statement: it sends the server a stand-in that fails
// without doing anything (a Query that is a syntax error, an Execute of a
// portal that does not exist, a FunctionCall of function OID 0), and gives
// the client the server's ErrorResponse to it with the refusal's text and
// SQLSTATE 42501 (insufficient_privilege) instead; what the server then
// sends (ReadyForQuery, or the skipped replies until Sync) passes as it is.

// Denied is the error with which a Judge refuses one statement and lets the
// connection go on: the client gets an ErrorResponse saying Message.
type Denied struct {
	Message string
}

func (d *Denied) Error() string { return "statement denied: " + d.Message }

// UserMessage is what the client is told.
func (d *Denied) UserMessage() string { return d.Message }

// ErrClientLeft is the cause with which a Judge's context is cancelled
// when the client closed its side while the statement was being judged.
var ErrClientLeft = errors.New("pgproxy: the client closed the connection while its statement was judged")

// refusedQuery is the stand-in for a refused Query: a syntax error at its
// first word, so it fails whatever the transaction's state, and names the
// bastion in the server's log.
const refusedQuery = "postern_refused_this_statement"

// refusedCode is the SQLSTATE the client gets for a refused statement.
const refusedCode = "42501"

// refusedPortal returns a portal name that no portal has (a cursor of the
// client's could have any name; 128 random bits are not guessed).
func refusedPortal() string {
	var b [16]byte
	rand.Read(b[:])
	return "postern refused " + hex.EncodeToString(b[:])
}

// judge asks Config.Judge about st, returning what the client is told if
// it refused st ("" if it let it through); any error but *Denied ends the
// connection (the client is told why) as a *JudgeError. While the Judge
// decides, the client's side is watched (see watch): its closing cancels
// the Judge's context with ErrClientLeft.
func (c *clientSide) judge(ctx context.Context, st Statement) (string, error) {
	if c.s.cfg.Judge == nil {
		return "", nil
	}
	// What came before st goes on while st waits.
	if err := c.flush(); err != nil {
		return "", &JudgeError{Statement: st, Err: err}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx = context.WithValue(ctx, noticeKey{}, c.s)
	ctx = context.WithValue(ctx, preparedKey{}, c)
	c.s.cpf.watch(cancel)
	err := c.s.cfg.Judge(ctx, st)
	c.s.cpf.decide()
	var d *Denied
	switch {
	case err == nil:
		return "", nil
	case errors.As(err, &d):
		msg := d.Message
		if msg == "" {
			msg = "postern: the statement was refused"
		}
		return msg, nil
	}
	msg := "postern: the statement was refused"
	if um, ok := err.(interface{ UserMessage() string }); ok {
		msg = um.UserMessage()
	}
	c.s.fatal(refusedCode, msg)
	return "", &JudgeError{Statement: st, Err: err}
}

// maxPrefetch caps what the watch reads ahead of the client's reader
// (a client that sends on while its statement is held).
const maxPrefetch = 1 << 20

// noticeKey keys the session in a Judge's context, for Notice.
type noticeKey struct{}

// Notice sends the client of the statement being judged a NoticeResponse
// (severity NOTICE) saying msg: a client waiting for its statement's result
// shows it (psql prints it at once). ctx is the one the Judge was given;
// with another, Notice does nothing.
func Notice(ctx context.Context, msg string) {
	s, ok := ctx.Value(noticeKey{}).(*session)
	if !ok {
		return
	}
	b, err := (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: msg}).Encode(nil)
	if err == nil {
		s.writeClient(b) // whole messages only: between two of the server's
	}
}

// prefetch is the client's conn as the client's reader reads it, with a
// watch: while a statement is judged, a goroutine reads the client's next
// bytes ahead into side, so that the client's closing its side is seen
// (and the Judge's context cancelled) while its reader waits for the
// Judge. The reader takes what was read ahead first, and waits for a read
// in flight rather than read beside it. The watch reads until the Judge
// decided (then it ends after the read in flight: at the latest when the
// relay or its caller closes the conn), the client's side ends, or
// maxPrefetch bytes wait. The zero value is not ready: set r and call
// init.
type prefetch struct {
	r io.Reader

	mu      sync.Mutex // guards the fields below
	ready   sync.Cond  // on mu: side, err or running changed
	running bool       // the watch's goroutine runs
	decided bool       // the statement watched for is decided
	cancel  context.CancelCauseFunc
	side    []byte // read ahead
	err     error  // the read's error
}

func (p *prefetch) init() { p.ready.L = &p.mu }

func (p *prefetch) Read(b []byte) (int, error) {
	p.mu.Lock()
	for p.running && len(p.side) == 0 && p.err == nil {
		p.ready.Wait()
	}
	if len(p.side) > 0 {
		n := copy(b, p.side)
		p.side = p.side[n:]
		if len(p.side) == 0 {
			p.side = nil
		}
		p.mu.Unlock()
		return n, nil
	}
	err := p.err
	p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return p.r.Read(b) // nothing else reads now
}

// watch starts watching for a statement being judged; cancel is called
// with ErrClientLeft if the client's side ends before decide. Called by
// the client's reader only.
func (p *prefetch) watch(cancel context.CancelCauseFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.decided, p.cancel = false, cancel
	if p.running {
		return // a watch's read is in flight: it watches on
	}
	p.running = true
	go p.readAhead()
}

// decide ends the watch of the statement judged.
func (p *prefetch) decide() {
	p.mu.Lock()
	p.decided, p.cancel = true, nil
	p.mu.Unlock()
}

// readAhead is the watch's goroutine.
func (p *prefetch) readAhead() {
	var buf [4096]byte
	for {
		p.mu.Lock()
		if p.decided || len(p.side) >= maxPrefetch || p.err != nil {
			p.running = false
			p.ready.Broadcast()
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		n, err := p.r.Read(buf[:])
		p.mu.Lock()
		p.side = append(p.side, buf[:n]...)
		if err != nil {
			p.err = err
			if p.cancel != nil {
				p.cancel(ErrClientLeft)
			}
		}
		p.ready.Broadcast()
		p.mu.Unlock()
	}
}
