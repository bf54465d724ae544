package bastion

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/mask"
	"github.com/postern/postern/recorder"
)

// transfer is the file-transfer mode of a session channel: sftp, scp or
// rsync. A channel in this mode is not recorded byte by byte (masking would
// corrupt the files), so it must prove to be the protocol it claims: the
// transfer parses the channel's data both ways, and the first byte that
// breaks the protocol ends the channel before it reaches the other side.
// What a person reads inside the protocol (messages, file names) is masked
// and recorded; downloaded file data is scanned for card numbers. The
// target's stderr is not part of the protocol: it takes the terminal path.
//
// fromClient and fromServer are called from the two pump goroutines, each
// in stream order. Each returns the bytes to pass on (possibly aliasing p,
// possibly masked in place) and, once the stream is broken or a policy
// stops it, an error: the caller passes on the bytes it got, then ends the
// channel with the error's UserMessage. end is called once, after both.
type transfer interface {
	fromClient(p []byte) ([]byte, error)
	fromServer(p []byte) ([]byte, error)
	end()
}

// transferError ends a transfer channel. Its message is shown to the user
// and recorded; reason goes to the audit record.
type transferError struct {
	msg    string
	reason string
}

func (e *transferError) Error() string       { return e.reason }
func (e *transferError) UserMessage() string { return e.msg }

// protocolError is the error for a stream that is not the protocol its
// channel claims.
func protocolError(kind, what string) *transferError {
	return &transferError{
		msg:    "postern: the " + kind + " stream broke its protocol (" + what + "), so the channel was closed",
		reason: kind + " protocol violation: " + what,
	}
}

// transferEnv is what a transfer parser reports to: the channel's audit
// trail, recording and user. Its functions may take the channel's lock and
// write to the client, so parsers call them with no lock of their own held.
// A nil function does nothing (unit tests, fuzzing).
type transferEnv struct {
	kind     string
	masking  bool        // human-readable text is masked (the target's masking is not off)
	mode     mask.Mode   // how
	detect   mask.Detect // which numbers are card numbers
	filePANs string      // the rule's FilePANs
	record   func(recorder.Transfer)
	show     func(text []byte) // text a person reads: recorded as output (already masked)
	notice   func(msg string)  // one line for the user's stderr, also recorded
}

// maskText masks PANs in protocol text in place (same length).
func (e *transferEnv) maskText(p []byte) {
	if e.masking {
		e.detect.MaskInPlace(p, e.mode)
	}
}

// reports queues what a parser reports while it holds its own lock
// (records, text a person reads, notices) for after it releases it: the
// env's functions take the channel's lock and write to the client. Records
// leave with their names and details masked like log text. The zero value
// with env set is ready.
type reports struct {
	env *transferEnv
	q   []func()
}

func (r *reports) record(t recorder.Transfer) {
	t.Path, t.To, t.Detail = logSafe(t.Path), logSafe(t.To), logSafe(t.Detail)
	if r.env.record != nil {
		r.q = append(r.q, func() { r.env.record(t) })
	}
}

// show queues text (already masked) for the recording; it is copied.
func (r *reports) show(text []byte) {
	if r.env.show != nil {
		text = bytes.Clone(text)
		r.q = append(r.q, func() { r.env.show(text) })
	}
}

func (r *reports) notice(msg string) {
	if r.env.notice != nil && msg != "" {
		r.q = append(r.q, func() { r.env.notice(msg) })
	}
}

// unlock releases mu, then makes the queued reports.
func (r *reports) unlock(mu *sync.Mutex) {
	q := r.q
	r.q = nil
	mu.Unlock()
	for _, f := range q {
		f()
	}
}

// transferMarker is the recording's marker for one transfer record.
func transferMarker(kind string, t recorder.Transfer) string {
	var b strings.Builder
	b.WriteString(kind + " " + t.Op + " " + strconv.Quote(t.Path))
	if t.To != "" {
		b.WriteString(" -> " + strconv.Quote(t.To))
	}
	b.WriteString(": " + t.Outcome)
	if t.Op == "download" || t.Op == "upload" {
		b.WriteString(", " + strconv.FormatInt(t.Bytes, 10) + " bytes")
	}
	if t.PANs > 0 {
		b.WriteString(", " + strconv.FormatInt(t.PANs, 10) + " card numbers")
	}
	if t.Detail != "" {
		b.WriteString(" (" + t.Detail + ")")
	}
	return b.String()
}

// transferMode is the mode of a channel in transfer: stdin and stdout
// pass through the protocol's parser, then on, unchanged unless the
// parser masked them.
type transferMode struct {
	st   *channel
	x    transfer
	dst  io.Writer // the target's stdin
	user io.Writer // the client's stdout, behind the gate
}

func (t transferMode) input(p []byte) (int, error) {
	return t.st.passTransfer(t.dst, p, t.x.fromClient)
}

func (t transferMode) output(p []byte) (int, error) {
	return t.st.passTransfer(t.user, p, t.x.fromServer)
}

func (t transferMode) outputDone()   {}
func (t transferMode) end()          { t.x.end() } // files still open get their records
func (t transferMode) masked() int64 { return 0 }

// passTransfer hands p to a transfer's parser for one direction and writes
// what it passes on to dst. A parser error ends the channel: the bytes
// before the fault go on, nothing after.
func (st *channel) passTransfer(dst io.Writer, p []byte, parse func([]byte) ([]byte, error)) (int, error) {
	out, err := parse(p)
	if len(out) > 0 {
		if _, werr := dst.Write(out); werr != nil {
			return 0, werr
		}
	}
	if err != nil {
		st.failTransfer(err)
		return 0, err
	}
	return len(p), nil
}

// failTransfer ends a transfer channel: the user is told why (after all
// output, as for a failed recording), the audit trail and the recording
// say so, and the target's channel closes.
func (st *channel) failTransfer(err error) {
	msg := userMessage(err, "postern: the transfer was stopped")
	if st.fail(endCauseErr(msg, err)) {
		audit.Record(st.c.log, audit.TransferStopped, "channel", st.n, "kind", st.kind, "reason", logSafe(err.Error()))
		st.rec.output([]byte(msg + "\r\n"))
	}
}

// startTransfer puts the channel in transfer mode kind, if the grant
// allows it, and opens its recording, which holds a marker per file and
// what a person reads inside the protocol.
func (st *channel) startTransfer(kind, command string, x func(*transferEnv) (transfer, error)) error {
	c := st.c
	if !c.grant.allowsTransfer(kind) {
		return st.refuse(kind + " is not allowed for you on " + c.grant.Target.Name)
	}
	mode, masking := c.maskMode()
	env := &transferEnv{
		kind: kind, masking: masking, mode: mode, detect: c.maskDetect(), filePANs: c.grant.FilePANs,
		record: func(t recorder.Transfer) { st.addTransfer(kind, t) },
		show:   func(text []byte) { st.show(text) },
		notice: st.notify,
	}
	t, err := x(env)
	if err != nil {
		return st.refuse(err.Error())
	}
	audit.Record(c.log, audit.TransferStart, "channel", st.n, "kind", kind, "command", logSafe(command), "file_pans", env.filePANsName())
	if _, err := st.startRecording(kind, command); err != nil {
		return err
	}
	st.mode = transferMode{st: st, x: t, dst: st.uch, user: gate{st, st.ch}}
	return nil
}

// filePANsName is the effective file_pans policy, for the audit trail.
func (e *transferEnv) filePANsName() string {
	if e.filePANs == "" {
		return FilePANsBlock
	}
	return e.filePANs
}

// refuse ends the channel because its program was refused; why is shown
// to the user and audited.
func (st *channel) refuse(why string) error {
	audit.Record(st.c.log, audit.ProgramRefused, "channel", st.n, "reason", logSafe(why))
	cause := endCause("postern: " + why)
	st.fail(cause)
	return cause
}

// addTransfer keeps a transfer record in the index entry, marks it in the
// recording and writes its audit line.
func (st *channel) addTransfer(kind string, t recorder.Transfer) {
	// Kept in the index always; marked in the recording while the
	// channel runs (after a failure the recording's end is the notice).
	if err := st.rec.addTransfer(kind, t, st.failure() == nil); err != nil {
		st.fail(err)
	}
	event := audit.TransferFile(kind)
	if t.Op != "download" && t.Op != "upload" && t.Op != "list" {
		event = audit.TransferOp(kind)
	}
	attrs := []any{"op", t.Op, "path", t.Path}
	if t.To != "" {
		attrs = append(attrs, "to", t.To)
	}
	attrs = append(attrs, "bytes", t.Bytes, "pans", t.PANs, "outcome", t.Outcome)
	if t.Detail != "" {
		attrs = append(attrs, "detail", t.Detail)
	}
	audit.Record(st.c.log, event, append(attrs, "channel", st.n)...)
}

// show records text a person reads inside a transfer protocol (already
// masked).
func (st *channel) show(text []byte) {
	if st.failure() != nil {
		return // the recording ends with the notice
	}
	if err := st.rec.output(text); err != nil {
		st.fail(err)
	}
}

// notify tells the user one line on the channel's stderr, and records it.
func (st *channel) notify(msg string) {
	st.show([]byte(msg + "\r\n"))
	st.clientErr().Write([]byte(msg + "\r\n"))
}
