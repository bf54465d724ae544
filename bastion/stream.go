package bastion

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/postern/postern/mask"
)

// outStage is the terminal output stage of one stream (stdout or stderr):
// target → masker → the strict masked stream's observers, in order → the
// client. One masker serves both sides: the observers (the recording, and
// the approval line tracker of a shell) get its strict output, judged without a
// deadline, so that a number echoed digit by digit is still judged whole
// before it is stored; the client gets the same bytes right after, through
// the masker's preview, which also releases a held tail after a short
// deadline so the user's typing echoes at once. An observer's error ends
// the write, so a byte an observer could not take is never shown. One pump
// writes to it.
type outStage struct {
	client    io.Writer   // the client's stream, behind the gate
	observers []io.Writer // the strict masked stream's observers, in order
	m         *mask.Writer
	echo      *typedEcho // follows the echo of typed keys; nil: none
}

// newOutStage builds the stage for the client stream raw of st. With
// echo, a held tail that is only the echo of the user's keys is shown at
// once (typedEcho).
func newOutStage(st *channel, raw io.Writer, echo *typedEcho, observers ...io.Writer) *outStage {
	o := &outStage{client: gate{st, raw}, observers: observers}
	if mode, ok := st.c.maskMode(); ok {
		cfg := mask.Config{Mode: mode, Detect: st.c.maskDetect(), Deadline: st.c.s.cfg.maskDeadline}
		if echo != nil {
			o.echo, cfg.Echo = echo, echo.echoed
		}
		if len(observers) > 0 {
			cfg.Preview = o.client
			o.m = mask.NewWriter(observerSink{o}, cfg)
		} else {
			o.m = mask.NewWriter(o.client, cfg)
		}
	}
	return o
}

func (o *outStage) Write(p []byte) (int, error) {
	if o.echo != nil {
		o.echo.saw(p)
	}
	if o.m != nil {
		// Observed (recorded), then shown.
		return o.m.Write(p)
	}
	// Masking off: observed as sent, then shown.
	if err := o.observe(p); err != nil {
		return 0, err
	}
	return o.client.Write(p)
}

// observe hands p to every observer in order; the first error stops it.
func (o *outStage) observe(p []byte) error {
	for _, w := range o.observers {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// observerSink is the masker's strict output: the observers.
type observerSink struct{ o *outStage }

func (s observerSink) Write(p []byte) (int, error) {
	if err := s.o.observe(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// close releases the held tail: to the observers, then to the client,
// which the gate drops if the channel failed meanwhile.
func (o *outStage) close() {
	if o.m != nil {
		o.m.Close()
	}
}

// masked is how many PANs this stage masked.
func (o *outStage) masked() int64 {
	if o == nil || o.m == nil {
		return 0
	}
	return o.m.Count()
}

// gate passes writes to the client until the channel fails; after that it
// drops them, so that a tail a masker releases late is never shown
// unrecorded, and a transfer stops at its first fault.
type gate struct {
	st *channel
	w  io.Writer
}

func (g gate) Write(p []byte) (int, error) {
	if err := g.st.failure(); err != nil {
		return 0, err
	}
	return g.w.Write(p)
}

// lockedStream is one of the client's streams, written by one writer at a
// time (channel.outMu, errMu).
type lockedStream struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedStream) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (st *channel) clientOut() io.Writer { return lockedStream{&st.outMu, st.ch} }
func (st *channel) clientErr() io.Writer { return lockedStream{&st.errMu, st.ch.Stderr()} }

// recordOutput is the recording as an observer of the masked stream; its
// failure ends the channel. After the channel failed it takes nothing: the
// recording ends where the client's view does, with the notice.
type recordOutput struct{ st *channel }

func (r recordOutput) Write(p []byte) (int, error) {
	if err := r.st.failure(); err != nil {
		return 0, err
	}
	if err := r.st.rec.output(p); err != nil {
		r.st.fail(err)
		return 0, err
	}
	return len(p), nil
}

// maxHeld caps what the input stage keeps while it holds: a client that
// types past it waits (its window fills) until the hold ends.
const maxHeld = 64 << 10

// inputStage is the terminal's input stage: client → target. It passes
// bytes on unchanged and, when input recording is on, a masked copy into
// the recording. It can hold: from the byte where holdAt says so (Enter,
// for approvals), what the client sends is kept, in order, while the stage
// goes on reading, so that the pump still sees what comes next (Ctrl-C);
// release passes the held bytes on, discard drops them. One pump writes
// to it; hold, release and discard may be called from other goroutines.
type inputStage struct {
	ctx  context.Context // the channel's: a write waiting for room ends with it
	dst  io.Writer       // the target's stdin
	rec  io.Writer       // nil unless input is recorded (masked, then recorded)
	m    *mask.Writer    // the recording's masker, nil without
	echo *typedEcho      // what was passed on, for the output stage's echo release

	// holdAt, if set, returns where in p to start holding (-1: nowhere).
	// It is called with mu held, while not holding, and must not call
	// the stage.
	holdAt func(p []byte) int
	// onHeld, if set, sees what the client sends while the stage holds,
	// before it is kept (or waits for room), and how much is held. It is
	// called with mu held and must not call the stage.
	onHeld func(p []byte, held int)

	passMu sync.Mutex // orders writes to dst: release's held bytes before what follows
	eof    bool       // the target was sent EOF: nothing more is written; guarded by passMu

	mu       sync.Mutex // guards the fields below; never held across dst writes
	holding  bool
	dropping bool // everything is dropped from now on (stop)
	held     bytes.Buffer
	room     chan struct{} // closed when a hold ends
	flight   chan struct{} // closed once the bytes before the hold were written; nil before any
}

func newInputStage(st *channel, dst io.Writer) *inputStage {
	in := &inputStage{ctx: st.ctx, dst: dst, room: make(chan struct{}), echo: &typedEcho{}}
	if st.rec.recordsInput() {
		var sink io.Writer = recordInput{st}
		if mode, ok := st.c.maskMode(); ok {
			// No deadline: keystrokes arrive one by one. Input: DEL is
			// the erase key, so a corrected number is judged as typed.
			in.m = mask.NewWriter(sink, mask.Config{Mode: mode, Detect: st.c.maskDetect(), Deadline: -1, Input: true})
			sink = in.m
		}
		in.rec = sink
	}
	return in
}

// recordInput is the recording as the sink of typed input.
type recordInput struct{ st *channel }

func (r recordInput) Write(p []byte) (int, error) {
	if err := r.st.rec.inputBytes(p); err != nil {
		r.st.fail(err)
		return 0, err
	}
	return len(p), nil
}

func (in *inputStage) Write(p []byte) (int, error) {
	if in.rec != nil {
		// Recorded as typed, held or not.
		if _, err := in.rec.Write(p); err != nil {
			return 0, err
		}
	}
	pass, flight, err := in.admit(p)
	if err != nil {
		return 0, err
	}
	if len(pass) > 0 {
		in.echo.typed(pass)
		in.passMu.Lock()
		err = in.write(pass)
		in.passMu.Unlock()
	}
	if flight != nil {
		close(flight)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// admit returns the part of p to pass on now and keeps the rest while the
// stage holds. Past maxHeld it waits for the hold to end. When a hold
// begins after bytes to pass, it returns flight too, which the caller
// closes once they were written: the held bytes must not pass before
// them (the judge may release them at once).
func (in *inputStage) admit(p []byte) ([]byte, chan struct{}, error) {
	for {
		in.mu.Lock()
		if in.dropping {
			in.mu.Unlock()
			return nil, nil, nil
		}
		if !in.holding {
			i := -1
			if in.holdAt != nil {
				i = in.holdAt(p)
			}
			if i < 0 || i >= len(p) {
				in.mu.Unlock()
				return p, nil, nil
			}
			in.holding = true
			in.held.Write(p[i:])
			if in.onHeld != nil && i+1 < len(p) {
				in.onHeld(p[i+1:], 1) // sent after the byte the hold began at
			}
			var flight chan struct{}
			if i > 0 {
				flight = make(chan struct{})
				in.flight = flight
			}
			in.mu.Unlock()
			return p[:i], flight, nil
		}
		if in.onHeld != nil {
			in.onHeld(p, in.held.Len())
		}
		if in.held.Len()+len(p) <= maxHeld {
			in.held.Write(p)
			in.mu.Unlock()
			return nil, nil, nil
		}
		room := in.room
		in.mu.Unlock()
		select {
		case <-room:
		case <-in.ctx.Done():
			return nil, nil, context.Cause(in.ctx)
		}
	}
}

// hold makes the stage keep what comes next instead of passing it on.
func (in *inputStage) hold() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.holding = true
}

// release passes the held bytes on, in order, and ends the hold: what
// the client sends after reaches the target after them. The first held
// byte (the Enter the hold began at) passes; the bytes after it are
// admitted again, so that holdAt may hold at a second Enter among them.
func (in *inputStage) release() error { return in.releaseThrough(1) }

// releaseThrough is release with the first n held bytes passed as they are.
func (in *inputStage) releaseThrough(n int) error {
	in.passed()
	in.passMu.Lock()
	defer in.passMu.Unlock()
	in.mu.Lock()
	held := bytes.Clone(in.held.Bytes())
	in.endHoldLocked()
	n = min(n, len(held))
	if in.holdAt != nil && n < len(held) {
		if i := in.holdAt(held[n:]); i >= 0 && n+i < len(held) {
			in.holding = true
			in.held.Write(held[n+i:])
			if in.onHeld != nil && n+i+1 < len(held) {
				in.onHeld(held[n+i+1:], 1)
			}
			held = held[:n+i]
		}
	}
	in.mu.Unlock()
	return in.write(held)
}

// closeWrite sends the target EOF with closeWrite, once: after the bytes
// being written, and none after it (x/crypto's Write and CloseWrite must
// not run at once; a released or replaced hold then writes nothing).
func (in *inputStage) closeWrite(closeWrite func() error) {
	in.passMu.Lock()
	defer in.passMu.Unlock()
	if !in.eof {
		in.eof = true
		closeWrite()
	}
}

// passed waits until the bytes passed before the hold began were written.
func (in *inputStage) passed() {
	in.mu.Lock()
	f := in.flight
	in.mu.Unlock()
	if f != nil {
		select {
		case <-f:
		case <-in.ctx.Done():
		}
	}
}

// discard drops the held bytes and ends the hold; it returns how many.
func (in *inputStage) discard() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := in.held.Len()
	in.endHoldLocked()
	return n
}

// peek returns a copy of the held bytes.
func (in *inputStage) peek() []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return bytes.Clone(in.held.Bytes())
}

// stop drops the held bytes and everything after: nothing more passes.
func (in *inputStage) stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.endHoldLocked()
	in.dropping = true
}

// replace drops the held bytes, ends the hold, and sends p in their place.
func (in *inputStage) replace(p []byte) error {
	in.passed()
	in.passMu.Lock()
	defer in.passMu.Unlock()
	in.discard()
	return in.write(p)
}

// write writes p to the target, with passMu held: nothing after EOF.
func (in *inputStage) write(p []byte) error {
	if len(p) == 0 || in.eof {
		return nil
	}
	_, err := in.dst.Write(p)
	return err
}

func (in *inputStage) endHoldLocked() {
	in.held.Reset()
	in.holding = false
	close(in.room)
	in.room = make(chan struct{})
}

// close releases the recording masker's held tail into the recording.
func (in *inputStage) close() {
	if in.m != nil {
		in.m.Close()
	}
}

// terminal is the mode of a shell or exec: stdout takes the masked output
// stage, stdin the input stage; lines, if not nil, judges what is typed.
type terminal struct {
	out   *outStage
	in    *inputStage
	lines *lineGate
}

func (t terminal) input(p []byte) (int, error)  { return t.in.Write(p) }
func (t terminal) output(p []byte) (int, error) { return t.out.Write(p) }
func (t terminal) outputDone()                  { t.out.close() }
func (t terminal) end()                         { t.in.close(); t.lines.close() }
func (t terminal) masked() int64                { return t.out.masked() }

// startRecording opens the channel's recording (none with recording off)
// and its stderr stage, and returns the observers of the strict masked
// output stream that every pipeline's output stage gets. On an error the
// channel has failed with it.
func (st *channel) startRecording(kind, command string) ([]io.Writer, error) {
	rec, err := openRecording(st, kind, command)
	st.rec = rec
	if err != nil {
		st.fail(err)
		return nil, err
	}
	var observers []io.Writer
	if rec != nil {
		observers = append(observers, recordOutput{st})
	}
	st.stderr = newOutStage(st, st.clientErr(), nil, observers...)
	return observers, nil
}

// startTerminal opens the recording and builds the terminal pipeline.
func (st *channel) startTerminal(kind, command string) error {
	observers, err := st.startRecording(kind, command)
	if err != nil {
		return err
	}
	st.input = newInputStage(st, st.uch)
	st.lines = st.newLineGate(st.input)
	st.mode = terminal{out: newOutStage(st, st.clientOut(), st.input.echo, st.lines.observers(observers)...), in: st.input, lines: st.lines}
	return nil
}
