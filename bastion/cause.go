package bastion

import "errors"

// userError is why a connection or channel ended, and what its user is
// told. It is the cause a context is cancelled with (context.WithCancelCause):
// the message travels with the cause, so whoever ends a session names the
// reason once and every channel shows it. The zero value is not used.
type userError struct {
	msg string // shown to the client, one line
	err error  // internal detail for the log; nil: msg is the detail
}

// endCause returns a cause whose UserMessage is msg.
func endCause(msg string) error { return &userError{msg: msg} }

// endCauseErr returns a cause shown as msg that wraps err for the log.
func endCauseErr(msg string, err error) error { return &userError{msg: msg, err: err} }

func (e *userError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return e.msg
}

func (e *userError) Unwrap() error { return e.err }

// UserMessage is what the SSH client is shown.
func (e *userError) UserMessage() string { return e.msg }

// userMessage is err's message for the client, or fallback when err has
// none: internal detail never reaches the client.
func userMessage(err error, fallback string) string {
	var ue interface{ UserMessage() string }
	if errors.As(err, &ue) {
		return ue.UserMessage()
	}
	return fallback
}

// errShutdown ends the connections that a Shutdown's deadline or Close cut.
var errShutdown = endCause("postern: the bastion is shutting down")
