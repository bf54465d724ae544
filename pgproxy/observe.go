package pgproxy

import "time"

// Observer receives what a relayed connection does. Its methods are called
// from the relay's two goroutines (Startup and Statement from the one
// reading the client, Result from the one reading the server), so an
// implementation must be safe for concurrent use; a Statement is reported
// before any Result that refers to it. The relay waits for each call.
// Every string in what it receives has its card numbers masked as the
// relay's Config says.
type Observer interface {
	// Startup reports the startup message: the database user and
	// database, and the client's application_name.
	Startup(Startup)
	// Statement reports a statement sent to the server: a simple Query,
	// or an Execute (or a Parse or Bind that failed before one).
	Statement(Statement)
	// Result reports how a statement, or one statement of a simple
	// Query's text, ended; or an error outside any statement (a failed
	// login, a server shutting down), with Seq 0.
	Result(Result)
}

// Startup is the client's startup message.
type Startup struct {
	User, Database, Application string
	// Cancel is set, and the others empty, for a CancelRequest: the
	// connection asks the server to cancel another one's query.
	Cancel bool
}

// Statement is one statement the client asked the server to run.
type Statement struct {
	// Seq numbers the connection's statements from 1.
	Seq int
	// Protocol is "simple" (Query), "extended" (Execute), or "parse" or
	// "bind" for an extended statement that failed at that step.
	Protocol string
	// Name is the prepared statement's name; "" for the unnamed one.
	Name string
	// Text is the SQL, masked: all of it (a longer statement than
	// MaxText is refused, ErrTooLong, never recorded cut).
	Text string
	// SQL is the text as the client sent it, given to Config.Judge only
	// (an Observer gets ""): what the rules judge, never to be stored or
	// shown (it may hold a card number). "" when the relay knows no text.
	SQL string
	// Params are the parameters of an Execute's Bind, or a function
	// call's arguments, masked: text format as text, at most MaxParam
	// bytes each; binary format as text marked "binary " when its bytes
	// are UTF-8 text without controls, else as "<binary, N bytes>"; NULL
	// as "NULL". At most MaxParams of them.
	Params []string
	// At is when the relay received it.
	At time.Time
}

// Result is how a statement ended.
type Result struct {
	// Seq is the Statement's; 0 for an error outside any statement.
	Seq int
	// Tag is the command tag (CommandComplete): "SELECT 5", "INSERT 0 1";
	// "" when the statement failed or was empty.
	Tag string
	// Rows counts the DataRow messages (or COPY data messages) the
	// server sent for it.
	Rows int64
	// Suspended is set when an Execute's row limit was reached
	// (PortalSuspended): the portal may be executed again.
	Suspended bool
	// Empty is set for an empty query.
	Empty bool
	// Err is the server's error, nil on success.
	Err *Error
	// Duration runs from the statement's arrival to its end.
	Duration time.Duration
}

// Error is the part of an ErrorResponse a record keeps, masked.
type Error struct {
	Severity, Code, Message, Detail string
}

// Limits on what a Statement carries.
const (
	MaxText   = 1 << 20
	MaxParam  = 256
	MaxParams = 32
)

// nopObserver discards everything.
type nopObserver struct{}

func (nopObserver) Startup(Startup)     {}
func (nopObserver) Statement(Statement) {}
func (nopObserver) Result(Result)       {}
