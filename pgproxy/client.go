package pgproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// flushSize is how much re-encoded output a direction gathers before it
// writes, even when more input is waiting; readSize is how much input it
// reads at once (pgproto3 reads 8 KiB at a time: a bulk result would be
// passed on in as many small writes).
const (
	flushSize = 128 << 10
	readSize  = 256 << 10
)

// eofReader remembers whether its reader reached the end, so that a
// decoder's "unexpected EOF" can be told apart from a parse error.
type eofReader struct {
	r   io.Reader
	err error // the reader's error, once it returned one
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// portal is what the relay keeps of a Bind, for the Execute that runs it:
// the statement's name and its recorded text (and as sent, sql) as they
// were at the Bind (a portal runs what it was bound to, even once the
// statement is closed and its name reused). closed marks a Close in the
// current batch (see prepared.go).
type portal struct {
	stmt, text, sql string
	params          []string
	closed          bool
}

// portalSize is what a portal counts against maxNamedBytes.
func portalSize(p portal) int {
	n := len(p.stmt) + len(p.text) + len(p.sql)
	for _, s := range p.params {
		n += len(s)
	}
	return n
}

// clientSide is the state of the client's reader.
type clientSide struct {
	s   *session
	src *eofReader
	be  *pgproto3.Backend
	out []byte
	// bstmts and bportals are what the current batch did to prepared
	// statements and portals (see prepared.go); changed says it did
	// something, settleAt how many requests must be answered before the
	// confirmed view holds for the batch.
	bstmts   *named[stmtText]
	bportals *named[portal]
	changed  bool
	settleAt uint64
}

// fromClient reads the client's messages, records and judges them, and
// passes them to the server. It starts the server's reader on wg once the
// startup message has gone to the server. A nil error means the client
// ended the connection.
func (s *session) fromClient(ctx context.Context, wg *sync.WaitGroup) error {
	c := &clientSide{s: s, src: &eofReader{r: s.cgate}, bstmts: newNamed(stmtSize), bportals: newNamed(portalSize)}
	c.be = pgproto3.NewBackend(bufio.NewReaderSize(&flusher{r: c.src, flush: c.flush}, readSize), io.Discard)
	c.be.SetMaxBodyLen(s.cfg.MaxMessage)
	started, err := c.startup()
	if err != nil || !started {
		return err
	}
	wg.Go(func() {
		err := s.fromServer()
		close(s.serverDone)
		if err != nil {
			s.fail(err)
			return
		}
		s.ended("server")
		s.client.CloseWrite()
	})
	if err := c.authenticate(); err != nil {
		return err
	}
	for {
		msg, err := c.be.Receive()
		if err != nil {
			return c.readError(err)
		}
		if err := c.message(ctx, msg); err != nil {
			return err
		}
		if _, ok := msg.(*pgproto3.Terminate); ok {
			return c.flush()
		}
		if len(c.out) >= flushSize {
			if err := c.flush(); err != nil {
				return nil
			}
		}
		s.cgate.handled()
	}
}

// flush writes what was re-encoded to the server.
func (c *clientSide) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	err := c.s.writeServer(c.out)
	c.out = c.out[:0]
	if cap(c.out) > LargeMessage {
		c.out = nil // a large message's copy is not kept
	}
	return err
}

// readError turns the decoder's error into Run's: ErrMemory when the
// gate refused a message, nil when the client ended the connection or
// the relay is stopping, else a *ProtocolError. The client is told why
// the relay ends it.
func (c *clientSide) readError(err error) error {
	if errors.Is(c.src.err, ErrMemory) {
		c.s.fatal("53200", memoryMessage)
		return ErrMemory
	}
	if c.src.err != nil || c.s.stopped() {
		return nil
	}
	perr := &ProtocolError{Side: "client", Err: err}
	c.s.fatal("08P01", perr.UserMessage())
	return perr
}

// startup handles the messages before the startup message: SSLRequest and
// GSSENCRequest are answered 'N' (at most one of each before the startup
// message). A CancelRequest is passed on and ends the client's side.
// started reports whether a startup message went to the server.
func (c *clientSide) startup() (started bool, err error) {
	for range 3 {
		msg, err := c.be.ReceiveStartupMessage()
		if err != nil {
			return false, c.readError(err)
		}
		c.s.cgate.handled()
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			// The SSH tunnel encrypts: the client goes on in the
			// clear (sslmode=prefer and gssencmode=prefer do).
			if err := c.s.writeClient([]byte{'N'}); err != nil {
				return false, nil
			}
			continue
		case *pgproto3.CancelRequest:
			c.s.obs.Startup(Startup{Cancel: true})
		case *pgproto3.StartupMessage:
			c.s.startupMessage(m)
			if replication(m) {
				c.s.fatal("0A000", replicationMessage)
				return false, ErrReplication
			}
		}
		if c.out, err = msg.Encode(c.out); err != nil {
			return false, &ProtocolError{Side: "client", Err: err}
		}
		if err := c.flush(); err != nil {
			return false, nil
		}
		_, cancel := msg.(*pgproto3.CancelRequest)
		return !cancel, nil
	}
	perr := &ProtocolError{Side: "client", Err: errors.New("too many encryption requests before the startup message")}
	c.s.fatal("08P01", perr.UserMessage())
	return false, perr
}

// startupMessage records a startup message's user and database.
func (s *session) startupMessage(m *pgproto3.StartupMessage) {
	d, mode := s.cfg.Detect, s.cfg.Mode
	user, _ := recordText(m.Parameters["user"], d, mode, 256)
	db, _ := recordText(m.Parameters["database"], d, mode, 256)
	if db == "" {
		db = user // PostgreSQL's default
	}
	app, _ := recordText(m.Parameters["application_name"], d, mode, 256)
	s.mu.Lock()
	s.user, s.database = user, db
	s.mu.Unlock()
	s.obs.Startup(Startup{User: user, Database: db, Application: app})
}

// replication reports whether m asks for a replication connection: a
// replication parameter that is not false (PostgreSQL reads "database"
// and the boolean spellings; anything but a plain false is refused).
func replication(m *pgproto3.StartupMessage) bool {
	v, ok := m.Parameters["replication"]
	if !ok {
		return false
	}
	switch strings.ToLower(v) {
	case "false", "off", "no", "0":
		return false
	}
	return true
}

// authenticate passes the client's answers to the server's authentication
// requests, one for each request, until the server's reader says it is
// over (or has ended). Answers are capped as PostgreSQL caps them: they
// come before the server knows who is asking.
func (c *clientSide) authenticate() error {
	c.be.SetMaxBodyLen(maxAuthMessage)
	defer c.be.SetMaxBodyLen(c.s.cfg.MaxMessage)
	for {
		var t uint32
		select {
		case t = <-c.s.authc:
		case <-c.s.serverDone:
			return nil
		}
		if t == authDone {
			return nil
		}
		if err := c.be.SetAuthType(t); err != nil {
			return &ProtocolError{Side: "server", Err: err}
		}
		msg, err := c.be.Receive()
		if err != nil {
			return c.readError(err)
		}
		c.s.cgate.handled()
		switch msg.(type) {
		case *pgproto3.PasswordMessage, *pgproto3.SASLInitialResponse, *pgproto3.SASLResponse, *pgproto3.GSSResponse:
		default:
			return &ProtocolError{Side: "client", Err: fmt.Errorf("%T while the server awaits authentication", msg)}
		}
		// Passwords and SASL exchanges pass through, never recorded.
		if c.out, err = msg.Encode(c.out); err != nil {
			return &ProtocolError{Side: "client", Err: err}
		}
		if err := c.flush(); err != nil {
			return nil
		}
	}
}

// message records, judges and queues one message, and re-encodes it for
// the server.
func (c *clientSide) message(ctx context.Context, msg pgproto3.FrontendMessage) error {
	s := c.s
	now := time.Now()
	var o *op
	switch m := msg.(type) {
	case *pgproto3.Query:
		if len(m.String) > MaxText {
			return c.tooLong()
		}
		st := c.statement("simple", "", m.String, nil, now)
		st.SQL = m.String
		refused, err := c.judge(ctx, st)
		if err != nil {
			return err
		}
		o = &op{kind: 'Q', seq: st.Seq, start: now, refused: refused}
		if refused != "" {
			msg = &pgproto3.Query{String: refusedQuery}
		}
	case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Execute, *pgproto3.Close:
		var err error
		if o, msg, err = c.extended(ctx, msg, now); err != nil {
			return err
		}
	case *pgproto3.FunctionCall:
		st := c.statement("function", "", "function call, oid "+strconv.FormatUint(uint64(m.Function), 10),
			c.params(m.Arguments, argFormats(m.ArgFormatCodes)), now)
		refused, err := c.judge(ctx, st)
		if err != nil {
			return err
		}
		o = &op{kind: 'F', seq: st.Seq, start: now, refused: refused}
		if refused != "" {
			msg = &pgproto3.FunctionCall{Function: 0} // no function has OID 0
		}
	case *pgproto3.Describe:
		o = &op{kind: 'D', start: now}
	case *pgproto3.Sync:
		o = &op{kind: 'S', start: now}
	case *pgproto3.Flush, *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail, *pgproto3.Terminate:
	default:
		return &ProtocolError{Side: "client", Err: fmt.Errorf("unexpected %T", msg)}
	}
	if o != nil {
		if err := s.q.push(*o); err != nil {
			return &ProtocolError{Side: "client", Err: err}
		}
		if o.kind == 'S' || o.kind == 'Q' {
			c.endBatch()
		}
	}
	var err error
	if c.out, err = msg.Encode(c.out); err != nil {
		return &ProtocolError{Side: "client", Err: err}
	}
	return nil
}

// statement numbers and reports a statement about to be sent; text is
// recorded masked, or as it is for an extended one (a portal's text,
// recorded at its Parse).
func (c *clientSide) statement(protocol, name, text string, params []string, now time.Time) Statement {
	s := c.s
	st := Statement{Seq: int(s.seq.Add(1)), Protocol: protocol, Name: name, Params: params, At: now}
	if protocol == "extended" {
		st.Text = text
	} else {
		st.Text, _ = recordText(text, s.cfg.Detect, s.cfg.Mode, MaxText)
	}
	s.statements.Add(1)
	s.obs.Statement(st)
	return st
}

// tooMany refuses a prepared statement or portal past what the relay
// keeps (see named).
func (c *clientSide) tooMany() error {
	c.s.fatal("54000", tooManyMessage)
	return ErrTooMany
}

// tooLong refuses a statement longer than MaxText: recorded cut, it
// could hide what it does after padding.
func (c *clientSide) tooLong() error {
	c.s.fatal("54000", tooLongMessage)
	return ErrTooLong
}

// params formats a Bind's parameters, or a FunctionCall's arguments, for
// the record; formats are their format codes (none: all text; one: for
// all; else one each).
func (c *clientSide) params(values [][]byte, formats []int16) []string {
	n := min(len(values), MaxParams)
	out := make([]string, n)
	for i := range n {
		binary := false
		switch len(formats) {
		case 0:
		case 1:
			binary = formats[0] == 1
		default:
			binary = i < len(formats) && formats[i] == 1
		}
		out[i] = param(values[i], binary, c.s.cfg.Detect, c.s.cfg.Mode)
	}
	return out
}

// argFormats converts a FunctionCall's format codes.
func argFormats(codes []uint16) []int16 {
	out := make([]int16, len(codes))
	for i, c := range codes {
		out[i] = int16(c)
	}
	return out
}
