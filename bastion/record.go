package bastion

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/mask"
	"github.com/postern/postern/recorder"
)

// Recording configures session recording. A nil Config.Recording disables
// it (tests and tools only: serve always records).
type Recording struct {
	// Store is the session index and audit chain, and where recordings
	// go (named by recorder.RecordingName).
	Store recorder.Store
	// Input also records what the user types. Off by default: passwords
	// typed at no-echo prompts would be stored.
	Input bool
	// ContinueOnFailure keeps a session going, unrecorded, when its
	// recording cannot be written. Off by default: fail closed.
	ContinueOnFailure bool
}

// chanState is one session channel: its terminal, its recording and its
// byte counts. The output pumps, the request loop and the teardown use it
// from different goroutines.
type chanState struct {
	c   *conn
	n   uint32
	uch ssh.Channel // the target's channel
	ch  ssh.Channel // the client's channel

	noticeSent atomic.Bool // the user was already told why the session ended
	started    atomic.Bool // a shell, exec or subsystem request was accepted

	// xfer is the channel's transfer mode (sftp, scp, rsync), nil for a
	// terminal. It is set before outReady and ready close, and only read
	// after: those channels order the accesses.
	xfer transfer

	// ready is closed once the request that starts the session (shell,
	// exec or subsystem) has been handled, and done when the target's
	// side of the channel has closed. Input waits for ready: x/crypto queues data apart from
	// requests, so without the wait the first keystrokes could pass
	// before the recording exists.
	ready     chan struct{}
	readyOnce sync.Once
	done      chan struct{}
	// outReady is closed just before the start request goes to the
	// target, which cannot send output before it: output waits for it.
	outReady     chan struct{}
	outReadyOnce sync.Once

	bytesIn, bytesOut atomic.Int64

	mu        sync.Mutex // guards the fields below
	term      string
	cols      int
	rows      int
	rec       *recorder.Writer
	meta      recorder.Session
	failed    string // why recording failed; the session is being ended
	begun     bool   // the index has the session (Begin succeeded): it must be sealed
	recFailed bool   // recording stopped early (on_failure: continue)
}

// id is the recording ID: the connection's session ID and channel number.
func (st *chanState) id() string { return st.c.id + "-" + strconv.Itoa(int(st.n)) }

// start opens the recording for a shell or exec request. It is called
// before the request reaches the target, so no output can precede it. A
// failure refuses the request unless the operator chose to continue.
func (st *chanState) start(kind, command string) error {
	cfg := st.c.s.cfg.Recording
	if cfg == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rec != nil {
		return errors.New("session channel already started")
	}
	now := time.Now().UTC()
	id := st.id()
	rel := recorder.RecordingName(id, now)
	c := st.c
	// Names come from certificates and the client: masked like logs,
	// so that not even a PAN-shaped login or key ID is stored whole.
	identity, login, term := logSafe(c.identity.Name()), logSafe(c.grant.Login), logSafe(st.term)
	st.meta = recorder.Session{
		ID: id, Session: c.id, Identity: identity, Principals: c.identity.Principals,
		KeyID: logSafe(c.identity.KeyID), Serial: c.identity.Serial, Client: c.remote.String(),
		Target: c.grant.Target.Name, Login: login, Kind: kind, Command: command,
		Start: now, Path: rel,
	}
	st.meta.Principals = logSafeAll(st.meta.Principals)
	ctx := context.Background() // until channels have contexts
	err := cfg.Store.Begin(ctx, st.meta)
	if err == nil {
		st.begun = true
		env := map[string]string{}
		if term != "" {
			env["TERM"] = term
		}
		st.rec, err = recorder.NewRecording(ctx, cfg.Store, rel, recorder.Header{
			Width: st.cols, Height: st.rows, Timestamp: now.Unix(), Env: env,
			Title: fmt.Sprintf("%s → %s@%s", identity, login, c.grant.Target.Name),
			Postern: &recorder.Meta{
				ID: id, Session: c.id, Identity: identity, Login: login,
				Target: c.grant.Target.Name, Client: c.remote.String(), Command: command,
			},
		})
		if err == nil && command != "" {
			err = st.rec.Marker("exec: " + command)
		}
	}
	if err != nil {
		audit.Record(c.log, audit.RecordingFailed, "channel", st.n, "reason", err.Error(), "continue", cfg.ContinueOnFailure)
		if st.rec != nil {
			st.rec.Close()
			st.rec = nil
		}
		if cfg.ContinueOnFailure {
			return nil
		}
		st.failed = "postern: the session cannot be recorded, so it was refused"
		return err
	}
	audit.Record(c.log, audit.RecordingStart, "channel", st.n, "recording", id, "path", rel, "kind", kind)
	return nil
}

// recordOutput records p (already masked) before it goes to the client: a
// byte the recording could not take is never shown (fail closed).
func (st *chanState) recordOutput(p []byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failed != "" {
		return errors.New(st.failed)
	}
	if st.rec == nil {
		return nil
	}
	if err := st.rec.Output(p); err != nil {
		return st.failLocked(err)
	}
	return nil
}

// recordInput records typed input (already masked), if enabled.
func (st *chanState) recordInput(p []byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rec == nil || st.failed != "" {
		return nil
	}
	if err := st.rec.Input(p); err != nil {
		return st.failLocked(err)
	}
	return nil
}

func (st *chanState) setReady() { st.readyOnce.Do(func() { close(st.ready) }) }

// waitReady blocks until the session's program started, or fails once the
// channel is ending without one: bytes that come before are dropped, not
// shown unrecorded. Ready wins when both hold.
func (st *chanState) waitReady() error { return st.wait(st.ready) }

func (st *chanState) setOutReady() { st.outReadyOnce.Do(func() { close(st.outReady) }) }

func (st *chanState) wait(ready chan struct{}) error {
	select {
	case <-ready:
		return nil
	default:
	}
	select {
	case <-ready:
		return nil
	case <-st.done:
		return errors.New("session channel ended before its program started")
	}
}

func (st *chanState) setPty(term string, cols, rows int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.term, st.cols, st.rows = term, cols, rows
}

func (st *chanState) resize(cols, rows int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cols, st.rows = cols, rows
	if st.rec != nil && st.failed == "" {
		if err := st.rec.Resize(cols, rows); err != nil {
			st.failLocked(err)
		}
	}
}

// failLocked handles a recording write error: unless the operator chose to
// continue, the session ends: the pump that got the error closes the
// target's channel, which leads to teardown with st.failed as the notice.
func (st *chanState) failLocked(err error) error {
	cfg := st.c.s.cfg.Recording
	audit.Record(st.c.log, audit.RecordingFailed, "channel", st.n, "reason", err.Error(), "continue", cfg.ContinueOnFailure)
	if cfg.ContinueOnFailure {
		st.rec.Close()
		st.rec = nil
		st.recFailed = true
		return nil
	}
	st.failed = "postern: recording failed (" + err.Error() + "); the session was ended"
	return errors.New(st.failed)
}

// failure returns the notice for a session ended because recording failed.
func (st *chanState) failure() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.failed
}

// finish closes the recording with a final marker and seals it in the
// index and audit chain.
func (st *chanState) finish(exitStatus *int, exitSignal string, maskedPANs int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rec == nil {
		if st.begun {
			// The recording failed or never opened: seal what
			// exists as interrupted so the index and chain agree.
			m := st.meta
			end := time.Now().UTC()
			m.End, m.ExitStatus, m.ExitSignal, m.Status = &end, exitStatus, exitSignal, recorder.StatusInterrupted
			m.BytesIn, m.BytesOut, m.MaskedPANs = st.bytesIn.Load(), st.bytesOut.Load(), maskedPANs
			store := st.c.s.cfg.Recording.Store
			if sum, size, err := recorder.Digest(context.Background(), store, m.Path); err == nil {
				m.SHA256, m.Size = sum, size
			}
			head, err := store.Finish(context.Background(), m)
			if err != nil {
				audit.Record(st.c.log, audit.RecordingFailed, "channel", st.n, "reason", "seal: "+err.Error())
				return
			}
			audit.Record(st.c.log, audit.RecordingSealed, "channel", st.n, "recording", m.ID, "status", m.Status, "sha256", m.SHA256, "size", m.Size, "chain_head", head.String())
		}
		return
	}
	switch {
	case exitStatus != nil:
		st.rec.Marker("exit status " + strconv.Itoa(*exitStatus))
	case exitSignal != "":
		st.rec.Marker("exit signal " + exitSignal)
	}
	digest, size, err := st.rec.Close()
	st.rec = nil
	end := time.Now().UTC()
	m := st.meta
	m.End, m.ExitStatus, m.ExitSignal = &end, exitStatus, exitSignal
	m.BytesIn, m.BytesOut = st.bytesIn.Load(), st.bytesOut.Load()
	m.SHA256, m.Size = hex.EncodeToString(digest[:]), size
	m.MaskedPANs = maskedPANs
	m.Status = recorder.StatusClosed
	if err != nil || st.recFailed {
		if err != nil {
			audit.Record(st.c.log, audit.RecordingFailed, "channel", st.n, "reason", err.Error())
		}
		m.Status = recorder.StatusInterrupted
	}
	head, err := st.c.s.cfg.Recording.Store.Finish(context.Background(), m)
	if err != nil {
		audit.Record(st.c.log, audit.RecordingFailed, "channel", st.n, "reason", "seal: "+err.Error())
		return
	}
	// The chain head in a log shipped off the bastion is what lets
	// verify --anchor detect a chain cut short or rewritten later.
	audit.Record(st.c.log, audit.RecordingEnd, "channel", st.n, "recording", m.ID, "status", m.Status, "sha256", m.SHA256, "size", size, "chain_head", head.String())
}

// maskMode is the masking of the channel's target; ok is false for
// masking: off.
func (st *chanState) maskMode() (mask.Mode, bool) {
	if st.c.grant.Target.Masking == "off" {
		return 0, false
	}
	m, err := mask.ParseMode(st.c.grant.Target.Masking)
	if err != nil {
		m = mask.ModeFull // unknown: fail closed
	}
	return m, true
}

// maskText masks PANs in a string that goes into the index, a recording
// or a log (an exec command line, for instance).
func maskText(s string, mode mask.Mode) string {
	out, n := mask.MaskText(nil, []byte(s), mode)
	if n == 0 {
		return s
	}
	return string(out)
}

// logSafe masks every digit of any PAN in s: log lines never hold one,
// whatever the target's masking mode.
func logSafe(s string) string { return maskText(s, mask.ModeFull) }

// logSafeAll is logSafe for each element; it copies only if it changes one.
func logSafeAll(list []string) []string {
	var out []string
	for i, s := range list {
		if m := logSafe(s); m != s {
			if out == nil {
				out = append([]string(nil), list...)
			}
			out[i] = m
		}
	}
	if out == nil {
		return list
	}
	return out
}

// outStream is one output stream (stdout or stderr) of a session channel.
// What the target sends is masked before it reaches the recording and the
// client. One masker serves both: the recording gets its strict output,
// judged without a deadline, so that a number echoed digit by digit is
// still judged whole before it is stored; the client gets the same bytes
// right after, through the masker's preview, which also releases a held
// tail after a short deadline so the user's typing echoes at once.
type outStream struct {
	st   *chanState
	raw  io.Writer    // the client's stream, behind the gate
	m    *mask.Writer // nil when masking is off
	data bool         // stdout: a transfer's protocol stream; stderr stays text
}

func newOutStream(st *chanState, raw io.Writer, data bool) *outStream {
	raw = gate{st, raw}
	o := &outStream{st: st, raw: raw, data: data}
	if mode, ok := st.maskMode(); ok {
		if st.c.s.cfg.Recording != nil {
			o.m = mask.NewWriter(recordSink{st}, mask.Config{Mode: mode, Preview: raw})
		} else {
			o.m = mask.NewWriter(raw, mask.Config{Mode: mode})
		}
	}
	return o
}

type recordSink struct{ st *chanState }

func (r recordSink) Write(p []byte) (int, error) {
	if err := r.st.recordOutput(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (o *outStream) Write(p []byte) (int, error) {
	// Output waits, like input, until the session's program has
	// started: before that there is no recording to take it.
	if err := o.st.wait(o.st.outReady); err != nil {
		return 0, err
	}
	o.st.bytesOut.Add(int64(len(p)))
	if o.data && o.st.xfer != nil {
		return o.st.passTransfer(o.raw, p, o.st.xfer.fromServer)
	}
	if o.m != nil {
		// Recorded (if recording is on), then shown.
		return o.m.Write(p)
	}
	// Masking off: recorded as sent, then shown.
	if err := o.st.recordOutput(p); err != nil {
		return 0, err
	}
	return o.raw.Write(p)
}

// close releases the held tail: to the recording, then to the client,
// which the gate drops if the recording failed meanwhile.
func (o *outStream) close() {
	if o.m != nil {
		o.m.Close()
	}
}

// gate passes writes to the client until recording fails; after that it
// drops them, so that a tail a masker releases late is never shown
// unrecorded.
type gate struct {
	st *chanState
	w  io.Writer
}

func (g gate) Write(p []byte) (int, error) {
	if f := g.st.failure(); f != "" {
		return 0, errors.New(f)
	}
	return g.w.Write(p)
}

// masked is how many PANs this stream masked.
func (o *outStream) masked() int64 {
	if o.m == nil {
		return 0
	}
	return o.m.Count()
}

// inStream carries the client's input to the target unchanged and, when
// input recording is on, a masked copy into the recording. Input waits
// for the session to start (see chanState.ready).
type inStream struct {
	st  *chanState
	dst io.Writer
	rec io.Writer // nil unless input is recorded
	m   *mask.Writer
}

func newInStream(st *chanState, dst io.Writer) *inStream {
	in := &inStream{st: st, dst: dst}
	if cfg := st.c.s.cfg.Recording; cfg != nil && cfg.Input {
		var sink io.Writer = inputSink{st}
		if mode, ok := st.maskMode(); ok {
			// No deadline: keystrokes arrive one by one.
			in.m = mask.NewWriter(sink, mask.Config{Mode: mode, Deadline: -1})
			sink = in.m
		}
		in.rec = sink
	}
	return in
}

type inputSink struct{ st *chanState }

func (r inputSink) Write(p []byte) (int, error) {
	if err := r.st.recordInput(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (in *inStream) Write(p []byte) (int, error) {
	if err := in.st.waitReady(); err != nil {
		return 0, err
	}
	in.st.bytesIn.Add(int64(len(p)))
	if in.st.xfer != nil {
		return in.st.passTransfer(in.dst, p, in.st.xfer.fromClient)
	}
	if in.rec != nil {
		if _, err := in.rec.Write(p); err != nil {
			return 0, err
		}
	}
	return in.dst.Write(p)
}

func (in *inStream) close() {
	if in.m != nil {
		in.m.Close()
	}
}
