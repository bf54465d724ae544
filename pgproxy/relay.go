package pgproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/postern/postern/mask"
)

// Defaults for Config's zero values.
const (
	// DefaultMaxMessage caps one message's size, either way: a longer
	// one ends the connection. PostgreSQL's own limit is 1 GiB.
	DefaultMaxMessage = 128 << 20
	// DefaultMaxPending caps the requests sent and not yet answered
	// (a pipeline, or a batch of statements, larger than this ends the
	// connection).
	DefaultMaxPending = 1 << 16
)

// Config configures a Relay. The zero value masks card numbers first6last4
// as DetectBrands finds them, reports nothing and lets every statement
// through.
type Config struct {
	// Mode and Detect say how card numbers are masked (package mask).
	Mode   mask.Mode
	Detect mask.Detect
	// NoMasking passes what the server sends unmasked (a target whose
	// masking is off). What the Observer receives is still masked.
	NoMasking bool
	// Observer receives the startup, statements and results; nil
	// discards them.
	Observer Observer
	// Judge decides each statement before it reaches the server: a
	// simple Query, an Execute with its prepared statement's text and
	// parameters, a FunctionCall. It may block (a statement held for
	// approval: the client waits; see judge.go); its context is
	// cancelled with ErrClientLeft if the client closes its side
	// meanwhile. A *Denied refuses the statement and the connection goes
	// on: the client gets an ERROR (SQLSTATE 42501) saying its Message,
	// as if the server had refused it. Any other error ends the
	// connection: the client gets a FATAL ErrorResponse saying
	// UserMessage() if the error has one, and the Relay returns a
	// *JudgeError. Nil lets everything through.
	Judge func(context.Context, Statement) error
	// MaxMessage caps a message's body; 0 means DefaultMaxMessage.
	MaxMessage int
	// MaxPending caps the requests awaiting replies; 0 means
	// DefaultMaxPending.
	MaxPending int
	// Memory is what the relays given it may hold at once for messages
	// over LargeMessage; nil means one Memory of DefaultMemory bytes
	// that every such Relay of the process shares.
	Memory *Memory
}

// Conn is one side of a relayed connection: the client's SSH channel, or
// the channel (or TCP connection) to the server.
type Conn interface {
	io.Reader
	io.Writer
	// CloseWrite signals EOF to the peer (the other side ended).
	CloseWrite() error
	// Close ends the connection; a Read blocked on it returns.
	Close() error
}

// Relay relays PostgreSQL connections as its Config says. It is safe for
// concurrent use: each Run is independent.
type Relay struct {
	cfg Config
}

// New returns a Relay for cfg.
func New(cfg Config) (*Relay, error) {
	if cfg.MaxMessage < 0 || cfg.MaxPending < 0 {
		return nil, errors.New("pgproxy: MaxMessage and MaxPending must not be negative")
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Memory == nil {
		cfg.Memory = defaultMemory
	}
	return &Relay{cfg: cfg}, nil
}

// Stats is what a relayed connection carried.
type Stats struct {
	// ToServer and ToClient count the bytes written each way.
	ToServer, ToClient int64
	// MaskedPANs counts the card numbers masked in what the client got.
	MaskedPANs int64
	// Statements and Errors count the statements reported and the
	// ErrorResponses the server sent.
	Statements, Errors int64
	// User and Database are from the startup message, masked.
	User, Database string
	// Ended says which side ended the connection first: "client" or
	// "server"; "" when the relay stopped it (Run's error says why).
	Ended string
}

// ProtocolError ends a connection whose traffic did not parse as the
// PostgreSQL protocol, or broke its order.
type ProtocolError struct {
	// Side is "client" or "server": whose messages failed.
	Side string
	Err  error
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("postgres protocol error from the %s: %v", e.Side, e.Err)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// UserMessage is what the client is told.
func (e *ProtocolError) UserMessage() string {
	return "postern: the " + e.Side + "'s PostgreSQL messages could not be parsed; the forwarded connection was closed"
}

// ErrReplication ends a connection whose startup message asks for a
// replication connection (replication=true or database): BASE_BACKUP
// would stream the cluster's files (compressed, if asked) as COPY data,
// beyond what masking can judge.
var ErrReplication = errors.New("pgproxy: replication connections are not relayed")

// replicationMessage is what the client is told when ErrReplication ends
// its connection.
const replicationMessage = "postern: replication connections (replication=...) are not relayed through a forward: the cluster's files would pass unmasked"

// ErrTooLong ends a connection that sent a statement (a Query, or a
// Parse's text) longer than MaxText: it cannot be recorded whole, and
// recorded cut it could hide a statement after padding.
var ErrTooLong = errors.New("pgproxy: a statement is longer than can be recorded whole")

// tooLongMessage is what the client is told when ErrTooLong ends its
// connection.
const tooLongMessage = "postern: a statement over 1 MiB cannot be recorded whole, so it was refused and the connection closed; send smaller statements (COPY ... FROM STDIN for bulk data)"

// JudgeError ends a connection whose statement Config.Judge refused.
type JudgeError struct {
	Statement Statement
	Err       error
}

func (e *JudgeError) Error() string { return "statement refused: " + e.Err.Error() }
func (e *JudgeError) Unwrap() error { return e.Err }

// Run relays between client and server until both directions end, ctx is
// done, or one side breaks the protocol; it closes neither conn unless it
// must stop the other direction (then it closes both). It returns what
// passed and why it ended: nil when the client or server ended the
// connection, a *ProtocolError, a *JudgeError, or ctx's cause.
func (r *Relay) Run(ctx context.Context, client, server Conn) (Stats, error) {
	s := &session{cfg: &r.cfg, client: client, server: server, obs: r.cfg.Observer,
		authc: make(chan uint32, 1), clientDone: make(chan struct{}), serverDone: make(chan struct{}), stopc: make(chan struct{})}
	s.q.max = r.cfg.MaxPending
	s.prep.stmts, s.prep.portals = newNamed(stmtSize), newNamed(portalSize)
	s.m = newMasker(r.cfg)
	var cr io.Reader = client
	if r.cfg.Judge != nil { // only a judged statement is watched for
		s.cpf = &prefetch{r: client}
		s.cpf.init()
		cr = s.cpf
	}
	s.cgate = newGate(cr, r.cfg.Memory, r.cfg.MaxMessage, true)
	s.sgate = newGate(server, r.cfg.Memory, r.cfg.MaxMessage, false)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { s.fail(context.Cause(ctx)) })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		err := s.fromClient(ctx, &wg)
		close(s.clientDone)
		if err != nil {
			s.fail(err)
			return
		}
		s.ended("client")
		server.CloseWrite()
	})
	wg.Wait()
	s.cgate.release()
	s.sgate.release()
	st := Stats{ToServer: s.toServer.Load(), ToClient: s.toClient.Load(), MaskedPANs: s.m.count.Load(),
		Statements: s.statements.Load(), Errors: s.errors.Load()}
	s.mu.Lock()
	st.User, st.Database, st.Ended = s.user, s.database, s.end
	err := s.err
	s.mu.Unlock()
	return st, err
}

// session is one Run's state. fromClient and fromServer each own their
// decoder and output buffer; what they share is below mu, or atomic, or
// the queue (own lock).
type session struct {
	cfg            *Config
	client, server Conn
	obs            Observer
	m              *masker
	q              queue
	prep           prepared  // the prepared statements and portals the server confirmed
	cgate, sgate   *gate     // the client's and the server's, each used by its reader
	cpf            *prefetch // below cgate with a Judge: the client's conn, watched while a statement is judged

	// authc carries, from the server's reader to the client's, each
	// authentication request the client must answer (its type), and
	// authDone when authentication ended: pgproto3 decodes the
	// client's 'p' message by the type of request it answers.
	authc      chan uint32
	clientDone chan struct{} // closed when the client's reader returns
	serverDone chan struct{} // closed when the server's reader returns
	stopc      chan struct{} // closed by the first fail

	// clientMu orders the writes to the client: the server's reader
	// writes replies, the client's reader its FATAL error. Held for one
	// write only.
	clientMu sync.Mutex

	toServer, toClient atomic.Int64
	statements, errors atomic.Int64
	seq                atomic.Int64 // statement numbers

	mu             sync.Mutex // guards the fields below
	err            error      // first failure
	failed         bool
	user, database string
	end            string // the side that ended first
}

// ended records that side ended its direction, if it was the first.
func (s *session) ended(side string) {
	s.mu.Lock()
	if s.end == "" && !s.failed {
		s.end = side
	}
	s.mu.Unlock()
}

// authDone on authc: authentication is over, the client may go on.
const authDone = ^uint32(0)

// fail records err as the reason the relay stops (the first wins) and
// closes both sides, which ends both readers.
func (s *session) fail(err error) {
	s.mu.Lock()
	first := !s.failed
	if first {
		s.failed, s.err = true, err
	}
	s.mu.Unlock()
	if first {
		close(s.stopc)
		s.client.Close()
		s.server.Close()
	}
}

// stopped reports whether the relay is stopping.
func (s *session) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// writeClient writes p to the client, counted.
func (s *session) writeClient(p []byte) error {
	s.clientMu.Lock()
	n, err := s.client.Write(p)
	s.clientMu.Unlock()
	s.toClient.Add(int64(n))
	return err
}

// writeServer writes p to the server, counted. Only the client's reader
// writes to the server.
func (s *session) writeServer(p []byte) error {
	n, err := s.server.Write(p)
	s.toServer.Add(int64(n))
	return err
}

// fatal tells the client why the connection ends, as a FATAL
// ErrorResponse (SQLSTATE code); written only where the client's stream is
// between messages.
func (s *session) fatal(code, msg string) {
	b, err := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	if err == nil {
		s.writeClient(b)
	}
}

// flusher is the reader of one direction: before it blocks on a read, it
// writes out what the direction has decoded and re-encoded so far, so
// replies are sent as soon as no more input is waiting, in as few writes
// as the input allows.
type flusher struct {
	r     io.Reader
	flush func() error
	err   error // a failed flush: reads fail with it
}

func (f *flusher) Read(p []byte) (int, error) {
	if f.err == nil {
		f.err = f.flush()
	}
	if f.err != nil {
		return 0, f.err
	}
	return f.r.Read(p)
}
