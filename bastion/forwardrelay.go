package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/pgproxy"
)

// counter counts what is written through it.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// relayTCP copies both ways between the client's channel ch and the
// target's side uch, opaque, counting the bytes. With guard, the target's
// output is watched for an SSH version string (sshGuard): an SSH server
// behind a declared port would carry a session the bastion cannot see.
func (f *forward) relayTCP(ch ssh.Channel, uch halfConn, guard bool) {
	c := f.c
	var wg sync.WaitGroup
	wg.Go(func() {
		if !guard {
			c.pump(counter{ch, &f.toClient}, uch)
			f.setReason("target closed")
			ch.CloseWrite()
			return
		}
		guard := newSSHGuard(counter{ch, &f.toClient})
		c.pump(guard, uch)
		if guard.match == len("SSH-") {
			f.setReason("destination speaks SSH")
			audit.Record(f.log, audit.Forward, "allowed", false, "reason", "destination speaks SSH")
			ch.Close()
			uch.Close()
			return
		}
		f.setReason("target closed")
		ch.CloseWrite()
	})
	wg.Go(func() {
		c.pump(counter{uch, &f.toTarget}, ch)
		f.setReason("client closed")
		uch.CloseWrite()
	})
	wg.Wait()
}

// active is a channel whose reads count as activity of the connection
// (the idle timeout).
type active struct {
	ssh.Channel
	c *conn
}

func (a active) Read(p []byte) (int, error) {
	n, err := a.Channel.Read(p)
	if n > 0 {
		a.c.touch()
	}
	return n, err
}

// relayPostgres relays a postgres forward through pgproxy: card numbers
// in results masked as the target's masking says, statements and results
// written to the recording, statements judged by the SQL approval rules
// (pgjudge.go).
func (f *forward) relayPostgres(ch, uch ssh.Channel) {
	c := f.c
	mode, on := c.maskMode()
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	obs := &pgRecorder{f: f, fail: cancel}
	relay, err := pgproxy.New(pgproxy.Config{Mode: mode, Detect: c.maskDetect(), NoMasking: !on, Observer: obs, Judge: f.sqlJudge()})
	if err != nil {
		f.setReason(err.Error())
		return
	}
	st, err := relay.Run(ctx, active{ch, c}, active{uch, c})
	f.toTarget.Store(st.ToServer)
	f.toClient.Store(st.ToClient)
	f.mu.Lock()
	f.pg.statements, f.pg.errors, f.pg.maskedPANs = st.Statements, st.Errors, st.MaskedPANs
	f.mu.Unlock()
	var pe *pgproxy.ProtocolError
	var je *pgproxy.JudgeError
	switch {
	case errors.As(err, &pe):
		f.setReason(logSafe(pe.Error()))
		audit.Record(f.log, audit.Forward, "allowed", false, "reason", "not the PostgreSQL protocol: "+logSafe(pe.Error()))
		f.rec.output([]byte("-- " + pe.UserMessage() + "\r\n"))
	case errors.As(err, &je):
		f.setReason("statement refused: " + logSafe(je.Err.Error()))
	case errors.Is(err, pgproxy.ErrReplication):
		f.setReason("replication connection refused")
		audit.Record(f.log, audit.Forward, "allowed", false, "reason", "replication connection")
		f.rec.output([]byte("-- postern: replication connection refused: the cluster's files would pass unmasked\r\n"))
	case errors.Is(err, pgproxy.ErrTooLong):
		f.setReason("statement too long to record")
		audit.Record(f.log, audit.Forward, "allowed", false, "reason", "statement too long to record")
	case errors.Is(err, pgproxy.ErrMemory):
		f.setReason("message larger than the memory free for it")
		f.log.Warn("postgres forward ended: a message larger than the memory the relays have free", "error", err)
	case err != nil:
		f.setReason(logSafe(err.Error()))
	case st.Ended == "server":
		f.setReason("target closed")
	default:
		f.setReason("client closed")
	}
}

// pgRecorder writes a postgres forward's startup, statements and results
// into its recording as terminal text, a line each (statements may span
// lines), and keeps the database and user for the index. A recording that
// fails ends the forward (fail closed) through fail. Safe for concurrent
// use: the recording serialises writes.
type pgRecorder struct {
	f      *forward
	fail   context.CancelCauseFunc
	prompt atomic.Value // string: "DATABASE=> "
}

// recordChunk is the most a recording event of a postgres forward holds:
// a statement of MaxText bytes, escaped, would pass the recording's line
// cap (recorder.MaxLine) in one event.
const recordChunk = 128 << 10

func (p *pgRecorder) write(s string) {
	for len(s) > 0 {
		n := min(len(s), recordChunk) // the recording carries a cut UTF-8 sequence over
		if err := p.f.rec.output([]byte(s[:n])); err != nil {
			p.fail(err)
			return
		}
		s = s[n:]
	}
}

func (p *pgRecorder) Startup(s pgproxy.Startup) {
	if s.Cancel {
		p.write("-- cancel request for a query of another connection\r\n")
		return
	}
	p.f.mu.Lock()
	p.f.pg.user, p.f.pg.database = logSafe(s.User), logSafe(s.Database)
	p.f.mu.Unlock()
	p.prompt.Store(terminalText(s.Database) + "=> ")
	line := "-- postgres: database " + terminalText(s.Database) + ", user " + terminalText(s.User)
	if s.Application != "" {
		line += ", application " + terminalText(s.Application)
	}
	p.write(line + "\r\n")
}

func (p *pgRecorder) Statement(st pgproxy.Statement) {
	prompt, _ := p.prompt.Load().(string)
	var b strings.Builder
	b.WriteString(prompt)
	switch {
	case st.Text != "":
		b.WriteString(terminalText(st.Text))
	case st.Name != "":
		b.WriteString("<prepared statement " + terminalText(st.Name) + ", text not kept>")
	default:
		b.WriteString("<unnamed statement, text not kept>")
	}
	for i, v := range st.Params {
		sep := ", "
		if i == 0 {
			sep = "  -- "
		}
		b.WriteString(sep + "$" + strconv.Itoa(i+1) + "=" + terminalText(v))
	}
	if st.Protocol == "parse" || st.Protocol == "bind" {
		b.WriteString("  -- (" + st.Protocol + ")")
	}
	p.write(b.String() + "\r\n")
}

func (p *pgRecorder) Result(r pgproxy.Result) {
	ms := strconv.FormatFloat(float64(r.Duration)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	var line string
	switch {
	case r.Err != nil:
		line = fmt.Sprintf("%s %s: %s", r.Err.Severity, r.Err.Code, r.Err.Message)
		if r.Err.Detail != "" {
			line += " (" + r.Err.Detail + ")"
		}
	case r.Empty:
		line = "empty query"
	case r.Suspended:
		line = fmt.Sprintf("suspended after %d rows", r.Rows)
	default:
		line = r.Tag
		switch {
		case r.Rows == 1:
			line += ", 1 row"
		case r.Rows > 1:
			line += fmt.Sprintf(", %d rows", r.Rows)
		}
	}
	if r.Seq > 0 {
		line += ", " + ms
	}
	p.write("   -- " + terminalText(line) + "\r\n")
}

// terminalText makes s safe and readable as one recorded line: line breaks
// continue on an indented line; other control characters are shown as
// escapes, so nothing in a statement acts on the terminal that plays it.
func terminalText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\n':
			b.WriteString("\r\n     ")
		case c == '\r' && i+1 < len(s) && s[i+1] == '\n':
		case c == '\t':
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
