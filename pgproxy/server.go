package pgproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// serverSide is the state of the server's reader.
type serverSide struct {
	s       *session
	src     *eofReader
	fe      *pgproto3.Frontend
	out     []byte
	authing bool        // before AuthenticationOk
	ready   bool        // the first ReadyForQuery came: startup is over
	rows    int64       // rows of the statement at the head, so far
	lastEnd time.Time   // when the last result was reported
	copyOut bool        // between CopyOutResponse and CopyDone
	copyBin *copyBinary // a binary COPY's parser, nil for text and CSV
	skip    bool        // an extended-protocol error: the server skips to Sync
	head    op          // the queue's head, when hasHead
	hasHead bool
}

// fromServer reads the server's messages, masks them, keeps them in step
// with the client's requests, and passes them to the client. A nil error
// means the server ended the connection.
func (s *session) fromServer() error {
	v := &serverSide{s: s, src: &eofReader{r: s.sgate}, authing: true}
	v.fe = pgproto3.NewFrontend(bufio.NewReaderSize(&flusher{r: v.src, flush: v.flush}, readSize), io.Discard)
	v.fe.SetMaxBodyLen(s.cfg.MaxMessage)
	for {
		msg, err := v.fe.Receive()
		if err != nil {
			v.flush()
			if errors.Is(v.src.err, ErrMemory) {
				s.fatal("53200", memoryMessage)
				return ErrMemory
			}
			if v.src.err != nil || s.stopped() {
				return nil
			}
			return v.protocolError(err)
		}
		if err := v.message(msg); err != nil {
			v.flush()
			if errors.Is(err, ErrTooMany) {
				s.fatal("54000", tooManyMessage)
				return err
			}
			return v.protocolError(err)
		}
		if v.out, err = msg.Encode(v.out); err != nil {
			return v.protocolError(err)
		}
		if len(v.out) >= flushSize {
			if err := v.flush(); err != nil {
				return nil
			}
		}
		s.sgate.handled()
	}
}

// protocolError tells the client, between two messages, why the
// connection ends, and returns the error.
func (v *serverSide) protocolError(err error) error {
	perr := &ProtocolError{Side: "server", Err: err}
	v.s.fatal("08P01", perr.UserMessage())
	return perr
}

// flush writes what was re-encoded to the client.
func (v *serverSide) flush() error {
	if len(v.out) == 0 {
		return nil
	}
	err := v.s.writeClient(v.out)
	v.out = v.out[:0]
	if cap(v.out) > LargeMessage {
		v.out = nil // a large message's copy is not kept
	}
	return err
}

// auth tells the client's reader what authentication answer comes next.
func (v *serverSide) auth(t uint32) error {
	if !v.authing {
		return errors.New("authentication request after authentication")
	}
	if t == authDone {
		v.authing = false
	}
	select {
	case v.s.authc <- t:
	case <-v.s.clientDone: // nobody reads the answers any more
	case <-v.s.stopc:
	}
	return nil
}

// message masks msg in place and follows it in the queue.
func (v *serverSide) message(msg pgproto3.BackendMessage) error {
	m := v.s.m
	if t, ok := authRequest(msg); ok {
		if t == pgproto3.AuthTypeSASLFinal { // the client does not answer it
			if !v.authing {
				return errors.New("authentication message after authentication")
			}
			return nil
		}
		return v.auth(t)
	}
	switch msg := msg.(type) {
	case *pgproto3.DataRow:
		for _, val := range msg.Values {
			m.value(val)
		}
		return v.row()
	case *pgproto3.CopyData:
		return v.copyData(msg.Data)
	case *pgproto3.ErrorResponse:
		return v.errorResponse(msg)
	case *pgproto3.NoticeResponse:
		maskNotice((*pgproto3.ErrorResponse)(msg), m)
	case *pgproto3.NotificationResponse:
		msg.Channel, msg.Payload = m.str(msg.Channel), m.str(msg.Payload)
	case *pgproto3.ParameterStatus, *pgproto3.NegotiateProtocolVersion, *pgproto3.BackendKeyData:
		return v.status(msg)
	case *pgproto3.RowDescription:
		for i := range msg.Fields {
			m.value(msg.Fields[i].Name)
		}
		return v.rowDescription()
	case *pgproto3.FunctionCallResponse:
		m.value(msg.Result)
		if err := v.expect('F', false); err != nil {
			return err
		}
		return notRefused(v.head)
	case *pgproto3.ReadyForQuery:
		return v.readyForQuery()
	case *pgproto3.CommandComplete:
		m.value(msg.CommandTag)
		return v.result(Result{Tag: string(msg.CommandTag)}, 'Q', 'E')
	case *pgproto3.EmptyQueryResponse:
		return v.result(Result{Empty: true}, 'Q', 'E')
	case *pgproto3.PortalSuspended:
		return v.result(Result{Suspended: true}, 'E', 'E')
	case *pgproto3.ParseComplete:
		return v.confirm('P')
	case *pgproto3.BindComplete:
		return v.confirm('B')
	case *pgproto3.CloseComplete:
		return v.confirm('C')
	case *pgproto3.ParameterDescription:
		return v.expect('D', false)
	case *pgproto3.NoData:
		return v.expect('D', true)
	case *pgproto3.CopyOutResponse:
		v.copyOut, v.copyBin = true, nil
		if msg.OverallFormat == 1 {
			v.copyBin = newCopyBinary()
		}
		return v.inStatement()
	case *pgproto3.CopyInResponse:
		return v.inStatement()
	case *pgproto3.CopyDone:
		if !v.copyOut {
			return errors.New("CopyDone outside COPY TO")
		}
		v.copyOut = false
	case *pgproto3.CopyBothResponse:
		return errors.New("CopyBothResponse: replication connections are not relayed")
	default:
		return fmt.Errorf("unexpected %T", msg)
	}
	return nil
}

// status masks a message about the connection (not a statement's): a
// parameter's value, the options NegotiateProtocolVersion names, the
// cancel key. A change of client_encoding makes the masker judge every
// value in the encoding views too (see encoding.go).
func (v *serverSide) status(msg pgproto3.BackendMessage) error {
	m := v.s.m
	switch msg := msg.(type) {
	case *pgproto3.ParameterStatus:
		if msg.Name == "client_encoding" && msg.Value != "UTF8" && msg.Value != "SQL_ASCII" {
			m.legacy = true
		}
		msg.Name, msg.Value = m.str(msg.Name), m.str(msg.Value)
		return nil
	case *pgproto3.NegotiateProtocolVersion:
		for i, o := range msg.UnrecognizedOptions { // the client's, echoed
			msg.UnrecognizedOptions[i] = m.str(o)
		}
	}
	if v.ready {
		return fmt.Errorf("%T after startup", msg)
	}
	return nil
}

// authRequest returns the type of an authentication message (authDone
// for AuthenticationOk), ok false for other messages.
func authRequest(msg pgproto3.BackendMessage) (uint32, bool) {
	switch msg.(type) {
	case *pgproto3.AuthenticationOk:
		return authDone, true
	case *pgproto3.AuthenticationCleartextPassword:
		return pgproto3.AuthTypeCleartextPassword, true
	case *pgproto3.AuthenticationMD5Password:
		return pgproto3.AuthTypeMD5Password, true
	case *pgproto3.AuthenticationSASL:
		return pgproto3.AuthTypeSASL, true
	case *pgproto3.AuthenticationSASLContinue:
		return pgproto3.AuthTypeSASLContinue, true
	case *pgproto3.AuthenticationSASLFinal:
		return pgproto3.AuthTypeSASLFinal, true
	case *pgproto3.AuthenticationGSS:
		return pgproto3.AuthTypeGSS, true
	case *pgproto3.AuthenticationGSSContinue:
		return pgproto3.AuthTypeGSSCont, true
	}
	return 0, false
}

// maskNotice masks every text field of an ErrorResponse or NoticeResponse
// with m.
func maskNotice(e *pgproto3.ErrorResponse, m *masker) {
	for _, f := range []*string{&e.Severity, &e.SeverityUnlocalized, &e.Code, &e.Message, &e.Detail, &e.Hint, &e.InternalQuery, &e.Where,
		&e.SchemaName, &e.TableName, &e.ColumnName, &e.DataTypeName, &e.ConstraintName, &e.Routine, &e.File} {
		*f = m.str(*f)
	}
	for k, s := range e.UnknownFields {
		e.UnknownFields[k] = m.str(s)
	}
}
