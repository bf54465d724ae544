package bastion

import (
	"bytes"
	"errors"
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
	masking  bool      // human-readable text is masked (the target's masking is not off)
	mode     mask.Mode // how
	filePANs string    // the rule's FilePANs
	record   func(recorder.Transfer)
	show     func(text []byte) // text a person reads: recorded as output (already masked)
	notice   func(msg string)  // one line for the user's stderr, also recorded
}

// maskText masks PANs in protocol text in place (same length).
func (e *transferEnv) maskText(p []byte) {
	if e.masking {
		mask.MaskInPlace(p, e.mode)
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

// newScan starts the card-number scan of one downloaded file.
func (e *transferEnv) newScan() *fileScan {
	// Only masking writes what the scan masked; to block or count, every
	// digit of a number must show, whatever the target's mode.
	m := e.mode
	if !e.masking || e.filePANs != FilePANsMask {
		m = mask.ModeFull
	}
	return &fileScan{policy: e.filePANs, mode: m, next: -1}
}

// outcome is a downloaded file's record outcome under the env's policy.
func (f *fileScan) outcome() string {
	switch {
	case f == nil || f.pans == 0:
		return "ok"
	case f.blocked:
		return "blocked"
	case f.policy == FilePANsMask:
		return "masked"
	default:
		return "allowed"
	}
}

// scanBufs are chunk's scratch buffers (tail + chunk).
var scanBufs = sync.Pool{New: func() any { return new([]byte) }}

// scanOverlap is how many bytes of a file's previous chunk are judged again
// with the next one, so that a card number split between two chunks is
// found: the most a number can span, escape sequences between its digits
// included (mask.MaxHold).
const scanOverlap = mask.MaxHold

// fileScan judges one downloaded file's bytes for card numbers as they
// pass, with the detector that masks terminal output. It is not safe for
// concurrent use; a transfer holds its lock around it.
//
// chunk judges a file in chunks that must pass whole (sftp reads): a card
// number split across two chunks is found when the second arrives, and
// the first chunk's digits can be withheld or masked only if the caller
// still holds it (live). stream judges a byte stream (scp, rsync), holding
// a possible number's digits back until what follows decides.
type fileScan struct {
	policy  string
	mode    mask.Mode
	next    int64  // file offset just past the previous chunk; -1: none yet
	tail    []byte // the previous chunk's last bytes, as received
	tailN   int    // card numbers within tail alone
	pans    int64
	blocked bool
	told    bool // the user was told about this file

	w    *mask.Writer // stream's masker, holding a possible number's tail
	held bytes.Buffer // what w released during one call
}

// chunk judges p, which starts at offset off of the file. Under
// FilePANsMask it masks p in place, and live too: the previous chunk's
// data if the caller still holds it (nil if it has gone). It reports
// whether p must be withheld: under FilePANsBlock, once a card number has
// been found (the caller withholds live as well).
func (f *fileScan) chunk(off int64, p, live []byte) (withhold bool) {
	if f.blocked {
		return true
	}
	var tail []byte
	tailN := 0
	if off == f.next {
		tail, tailN = f.tail, f.tailN
	}
	// Scratch from a pool, not kept per file: a channel may scan
	// thousands of files.
	bp := scanBufs.Get().(*[]byte)
	defer scanBufs.Put(bp)
	buf := append(append((*bp)[:0], tail...), p...)
	*bp = buf
	n := mask.MaskInPlace(buf, f.mode)
	// What decides is where digits were masked, not how many numbers the
	// joint text holds: a number in the tail alone can vanish when the
	// next digits join it, while a new one appears in p.
	inP := changed(buf[len(tail):], p)
	k := min(len(live), len(tail))
	inLive := k > 0 && changed(buf[len(tail)-k:len(tail)], live[len(live)-k:])
	// The overlap for the next chunk: p's last bytes as received.
	t := p[max(0, len(p)-scanOverlap):]
	if len(t) < scanOverlap && off == f.next {
		// A short chunk: keep some of the older tail too.
		t = append(append([]byte(nil), tail...), t...)
		t = t[max(0, len(t)-scanOverlap):]
	}
	f.next = off + int64(len(p))
	if !inP && !inLive {
		f.setTail(t)
		return false
	}
	f.pans += int64(max(1, n-tailN))
	switch f.policy {
	case FilePANsMask:
		f.setTail(t) // as received, before p is masked
		copy(p, buf[len(tail):])
		// The held chunk was masked when judged alone: only add the
		// digits this judgement masks, never undo one.
		for i, c := range buf[len(tail)-k : len(tail)] {
			if c == '*' {
				live[len(live)-k+i] = '*'
			}
		}
	case FilePANsAllow:
		f.setTail(t)
	default:
		f.blocked = true
		return true
	}
	return false
}

// setTail keeps t (a copy) as the overlap judged with the next chunk.
func (f *fileScan) setTail(t []byte) {
	f.tail = append(f.tail[:0:0], t...)
	f.tailN = mask.MaskInPlace(append([]byte(nil), f.tail...), f.mode)
}

// changed reports whether masking turned a digit of orig into '*' in got.
func changed(got, orig []byte) bool {
	for i, c := range got {
		if c == '*' && orig[i] != '*' {
			return true
		}
	}
	return false
}

// stream judges the next bytes of a file read front to back (scp, rsync)
// and appends what may pass to out. Unlike chunk, it holds back a tail
// that may still be part of a card number until what follows (or flush)
// decides, so no digit of a number leaves before it is judged. It reports
// whether the file must be withheld from here on (FilePANsBlock).
func (f *fileScan) stream(out, p []byte) ([]byte, bool) {
	if f.blocked {
		return out, true
	}
	if f.policy == FilePANsAllow {
		f.chunk(max(f.next, 0), p, nil) // counts only
		return append(out, p...), false
	}
	if f.w == nil {
		f.w = mask.NewWriter(&f.held, mask.Config{Mode: f.mode, Deadline: -1})
	}
	f.held.Reset()
	before := f.w.Count()
	f.w.Write(p) // writes to a bytes.Buffer: cannot fail
	return f.judged(out, before)
}

// flush ends a stream: the held tail is judged as the file's end.
func (f *fileScan) flush(out []byte) ([]byte, bool) {
	if f.w == nil || f.blocked {
		return out, f.blocked
	}
	f.held.Reset()
	before := f.w.Count()
	f.w.Close()
	out, blocked := f.judged(out, before)
	f.w = nil
	return out, blocked
}

// judged appends what the masker released, unless a card number found
// since before blocks the file.
func (f *fileScan) judged(out []byte, before int64) ([]byte, bool) {
	if n := f.w.Count() - before; n > 0 {
		f.pans += n
		if f.policy != FilePANsMask {
			f.blocked = true
			return out, true
		}
	}
	return append(out, f.held.Bytes()...), false
}

// userNotice is what the user is told about a file the scan acted on, once
// per file; "" when there is nothing to say.
func (f *fileScan) userNotice(kind, path string) string {
	if f == nil || f.pans == 0 || f.told {
		return ""
	}
	f.told = true
	switch {
	case f.blocked:
		return "postern: " + kind + " download of " + path + " was blocked: it holds a card number"
	case f.policy == FilePANsMask:
		return "postern: card numbers in " + path + " were masked: the downloaded copy differs from the original"
	}
	return ""
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

// passTransfer hands p to a transfer's parser for one direction and writes
// what it passes on to dst. A parser error ends the channel: the bytes
// before the fault go on, nothing after.
func (st *chanState) passTransfer(dst io.Writer, p []byte, parse func([]byte) ([]byte, error)) (int, error) {
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
func (st *chanState) failTransfer(err error) {
	msg := "postern: the transfer was stopped"
	var ue interface{ UserMessage() string }
	if errors.As(err, &ue) {
		msg = ue.UserMessage()
	}
	st.mu.Lock()
	if st.failed == "" {
		st.failed = msg
		audit.Record(st.c.log, audit.TransferStopped, "channel", st.n, "kind", st.meta.Kind, "reason", logSafe(err.Error()))
		if st.rec != nil {
			st.rec.Output([]byte(msg + "\r\n"))
		}
	}
	st.mu.Unlock()
	st.uch.Close()
}

// startTransfer puts the channel in transfer mode kind, if the grant
// allows it, and opens its recording, which holds a marker per file and
// what a person reads inside the protocol.
func (st *chanState) startTransfer(kind, command string, x func(*transferEnv) (transfer, error)) error {
	c := st.c
	if !c.grant.allowsTransfer(kind) {
		return st.refuse(kind + " is not allowed for you on " + c.grant.Target.Name)
	}
	mode, masking := st.maskMode()
	env := &transferEnv{
		kind: kind, masking: masking, mode: mode, filePANs: c.grant.FilePANs,
		record: func(t recorder.Transfer) { st.addTransfer(kind, t) },
		show:   func(text []byte) { st.recordOutput(text) },
		notice: st.notify,
	}
	t, err := x(env)
	if err != nil {
		return st.refuse(err.Error())
	}
	audit.Record(c.log, audit.TransferStart, "channel", st.n, "kind", kind, "command", logSafe(command), "file_pans", env.filePANsName())
	if err := st.start(kind, command); err != nil {
		return err
	}
	st.xfer = t
	return nil
}

// filePANsName is the effective file_pans policy, for the audit trail.
func (e *transferEnv) filePANsName() string {
	if e.filePANs == "" {
		return FilePANsBlock
	}
	return e.filePANs
}

// refuse records why the channel's program was refused, for the user.
func (st *chanState) refuse(why string) error {
	msg := "postern: " + why
	st.mu.Lock()
	st.failed = msg
	st.mu.Unlock()
	audit.Record(st.c.log, audit.ProgramRefused, "channel", st.n, "reason", logSafe(why))
	return errors.New(why)
}

// addTransfer keeps a transfer record in the index entry, marks it in the
// recording and writes its audit line.
func (st *chanState) addTransfer(kind string, t recorder.Transfer) {
	st.mu.Lock()
	if len(st.meta.Transfers) < recorder.MaxTransfers {
		st.meta.Transfers = append(st.meta.Transfers, t)
	} else {
		st.meta.TransfersOmitted++
	}
	if st.rec != nil && st.failed == "" {
		if err := st.rec.Marker(transferMarker(kind, t)); err != nil {
			st.failLocked(err)
		}
	}
	st.mu.Unlock()
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

// notify tells the user one line on the channel's stderr, and records it.
func (st *chanState) notify(msg string) {
	st.recordOutput([]byte(msg + "\r\n"))
	st.ch.Stderr().Write([]byte(msg + "\r\n"))
}
