package bastion

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/postern/postern/internal/audit"
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

// recording is one session channel's recording and its index entry. Every
// use of the recorder by the bastion is here. A nil *recording is
// recording off: its methods do nothing and return nil, so callers need no
// checks. Its methods are safe for concurrent use.
//
// A write error ends the channel (the returned cause, whose UserMessage
// says so) unless the operator chose to continue, when the recording
// stops and the session goes on unrecorded, sealed as interrupted.
type recording struct {
	c       *conn
	cfg     *Recording
	log     *slog.Logger
	n       uint32  // the channel's number, for the audit trail
	input   bool    // typed input is recorded
	metrics Metrics // the server's: counts write errors

	mu      sync.Mutex // guards the fields below
	w       *recorder.Writer
	meta    recorder.Session
	begun   bool  // the index has the session (Begin succeeded): it must be sealed
	stopped bool  // recording stopped early (on_failure: continue)
	err     error // the cause after a write failed (fail closed); writes then fail
	limited bool  // err is a session limit: the recording holds all the user saw
	counted int64 // the recording's size already counted towards the next free-disk check
}

// openRecording begins the index entry and the cast file of a channel's
// program. It runs before the program's request reaches the target, so no
// output can precede it. With recording off it returns nil, nil. On error
// the program is refused (the error is a cause with a user message); the
// returned recording, if not nil, must still be finished, so that the
// index and chain agree.
func openRecording(st *channel, kind, command string) (*recording, error) {
	c := st.c
	if c.s.cfg.Recording == nil {
		return nil, nil
	}
	now := time.Now().UTC()
	id := c.id + "-" + strconv.Itoa(int(st.n))
	pty := st.ptyState()
	// Names come from certificates and the client: masked like logs,
	// so that not even a PAN-shaped login or key ID is stored whole.
	identity, login, term := logSafe(c.identity.Name()), logSafe(c.grant.Login), logSafe(pty.term)
	meta := c.sessionMeta(id, kind, command, now)
	env := map[string]string{}
	if term != "" {
		env["TERM"] = term
	}
	h := recorder.Header{
		Width: pty.cols, Height: pty.rows, Timestamp: now.Unix(), Env: env,
		Title: fmt.Sprintf("%s → %s@%s", identity, login, c.grant.Target.Name),
		Postern: &recorder.Meta{
			ID: id, Session: c.id, Identity: identity, Login: login,
			Target: c.grant.Target.Name, Client: c.remote.String(), Kind: kind, Command: command,
		},
	}
	first := ""
	if command != "" {
		first = "exec: " + command
	}
	return c.beginRecording(st.ctx, st.n, meta, h, first)
}

// sessionMeta is the index entry of channel id of c, of kind, begun at
// now, with the identity's names masked like logs.
func (c *conn) sessionMeta(id, kind, command string, now time.Time) recorder.Session {
	return recorder.Session{
		ID: id, Session: c.id, Identity: logSafe(c.identity.Name()), Principals: logSafeAll(c.identity.Principals),
		KeyID: logSafe(c.identity.KeyID), Serial: c.identity.Serial, Client: c.remote.String(),
		Target: c.grant.Target.Name, Login: logSafe(c.grant.Login), Kind: kind, Command: command,
		Start: now, Path: recorder.RecordingName(id, now),
	}
}

// beginRecording begins meta's index entry and its cast file with header
// h and, if not empty, a first marker. Recording must be on. Errors are as
// openRecording's.
func (c *conn) beginRecording(ctx context.Context, n uint32, meta recorder.Session, h recorder.Header, first string) (*recording, error) {
	cfg := c.s.cfg.Recording
	r := &recording{c: c, cfg: cfg, log: c.log, n: n, input: cfg.Input, meta: meta, metrics: c.s.metrics}
	if err := c.refuseBelowDiskFloor(n); err != nil {
		return r, err
	}
	// The index and the file are begun and sealed on a context of their
	// own: a client that leaves mid-way must not leave an entry unsealed.
	ctx = context.WithoutCancel(ctx)
	err := cfg.Store.Begin(ctx, r.meta)
	if err == nil {
		r.begun = true
		r.w, err = recorder.NewRecording(ctx, cfg.Store, meta.Path, h)
		if err == nil {
			r.w.SetLimit(c.s.cfg.SessionLimits.RecordingMaxSize)
		}
		if err == nil && first != "" {
			err = r.w.Marker(first)
		}
	}
	if err != nil {
		r.metrics.RecordingError()
		audit.Record(c.log, audit.RecordingFailed, "channel", n, "reason", err.Error(), "continue", cfg.ContinueOnFailure)
		if r.w != nil {
			r.w.Close()
			r.w = nil
		}
		if cfg.ContinueOnFailure {
			r.stopped = true
			return r, nil
		}
		return r, endCauseErr("postern: the session cannot be recorded, so it was refused", err)
	}
	audit.Record(c.log, audit.RecordingStart, "channel", n, "recording", meta.ID, "path", meta.Path, "kind", meta.Kind)
	return r, nil
}

// recordsInput reports whether typed input goes into the recording.
func (r *recording) recordsInput() bool { return r != nil && r.input }

// output records p (already masked) before it goes to the client: a byte
// the recording could not take is never shown (fail closed).
func (r *recording) output(p []byte) error {
	return r.write(func(w *recorder.Writer) error { return w.Output(p) })
}

// inputBytes records typed input (already masked).
func (r *recording) inputBytes(p []byte) error {
	return r.write(func(w *recorder.Writer) error { return w.Input(p) })
}

func (r *recording) resize(cols, rows int) error {
	return r.write(func(w *recorder.Writer) error { return w.Resize(cols, rows) })
}

// id is the session's ID, "" with recording off.
func (r *recording) id() string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.meta.ID
}

func (r *recording) marker(text string) error {
	return r.write(func(w *recorder.Writer) error { return w.Marker(text) })
}

// flush puts what was recorded so far into the recording's sink and
// returns the cause if it could not: the cast writer buffers up to a
// second of output and reports a write error only on a later call, so
// without it a short program's output could be shown, its exit status
// sent, and the failure known only at finish, after the client left.
func (r *recording) flush() error {
	return r.write(func(w *recorder.Writer) error { return w.Flush() })
}

// write runs f on the cast writer, if recording runs.
func (r *recording) write(f func(*recorder.Writer) error) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.w == nil {
		return nil
	}
	if err := f(r.w); err != nil {
		if errors.Is(err, recorder.ErrLimit) {
			size := r.c.s.cfg.SessionLimits.RecordingMaxSize
			return r.limitLocked(limitRecording, "the recording reached its size limit ("+formatSize(size)+")", "max_bytes", size)
		}
		return r.failLocked(err)
	}
	return r.checkDiskLocked()
}

// failLocked handles a write error: unless the operator chose to continue,
// the channel ends with the returned cause.
func (r *recording) failLocked(err error) error {
	r.metrics.RecordingError()
	audit.Record(r.log, audit.RecordingFailed, "channel", r.n, "reason", err.Error(), "continue", r.cfg.ContinueOnFailure)
	if r.cfg.ContinueOnFailure {
		r.w.Close()
		r.w = nil
		r.stopped = true
		return nil
	}
	r.err = endCauseErr("postern: recording failed ("+err.Error()+"); the session was ended", err)
	return r.err
}

// addTransfer keeps a transfer record in the index entry and, if mark,
// marks it in the recording.
func (r *recording) addTransfer(kind string, t recorder.Transfer, mark bool) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	if len(r.meta.Transfers) < recorder.MaxTransfers {
		r.meta.Transfers = append(r.meta.Transfers, t)
	} else {
		r.meta.TransfersOmitted++
	}
	r.mu.Unlock()
	if !mark {
		return nil
	}
	return r.marker(transferMarker(kind, t))
}

// setForward puts a forward's description and command line into the
// index entry that finish seals.
func (r *recording) setForward(f recorder.Forward, command string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.meta.Forward, r.meta.Command = &f, command
	r.mu.Unlock()
}

// setCommand puts the command line into the index entry that finish
// seals.
func (r *recording) setCommand(command string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.meta.Command = command
	r.mu.Unlock()
}

// finish closes the recording with a final marker and seals it in the
// index and audit chain.
func (r *recording) finish(exitStatus *int, exitSignal string, bytesIn, bytesOut, maskedPANs int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.begun {
		return
	}
	end := time.Now().UTC()
	m := r.meta
	m.End, m.ExitStatus, m.ExitSignal = &end, exitStatus, exitSignal
	m.BytesIn, m.BytesOut, m.MaskedPANs = bytesIn, bytesOut, maskedPANs
	event := audit.RecordingEnd
	if r.w == nil {
		// The recording failed or never opened: seal what exists as
		// interrupted so the index and chain agree.
		event = audit.RecordingSealed
		m.Status = recorder.StatusInterrupted
		if sum, size, err := recorder.Digest(context.Background(), r.cfg.Store, m.Path); err == nil {
			m.SHA256, m.Size = sum, size
		}
	} else {
		switch {
		case exitStatus != nil:
			r.w.FinalMarker("exit status " + strconv.Itoa(*exitStatus))
		case exitSignal != "":
			r.w.FinalMarker("exit signal " + exitSignal)
		}
		digest, size, err := r.w.Close()
		r.w = nil
		m.SHA256, m.Size = hex.EncodeToString(digest[:]), size
		m.Status = recorder.StatusClosed
		if err != nil {
			r.metrics.RecordingError()
			audit.Record(r.log, audit.RecordingFailed, "channel", r.n, "reason", err.Error())
		}
		if err != nil || r.stopped || r.err != nil && !r.limited {
			m.Status = recorder.StatusInterrupted
		}
	}
	head, err := r.cfg.Store.Finish(context.Background(), m)
	if err != nil {
		r.metrics.RecordingError()
		audit.Record(r.log, audit.RecordingFailed, "channel", r.n, "reason", "seal: "+err.Error())
		return
	}
	// The chain head in a log shipped off the bastion is what lets
	// verify --anchor detect a chain cut short or rewritten later.
	audit.Record(r.log, event, "channel", r.n, "recording", m.ID, "status", m.Status, "sha256", m.SHA256, "size", m.Size, "chain_head", head.String())
}
