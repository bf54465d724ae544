package mask

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("mask: write after close")

// DefaultDeadline is how long a Writer holds back a candidate when
// Config.Deadline is zero.
const DefaultDeadline = 20 * time.Millisecond

// chunkSize bounds the bytes scanned per step, and so the buffer a Writer
// keeps: a large Write is handled in pieces of this size.
const chunkSize = 32 << 10

// Config configures a Writer. The zero value masks the numbers payment
// brands issue, keeps their first six and last four digits and releases a
// held tail after DefaultDeadline.
type Config struct {
	// Mode says which digits are masked. Zero is ModeFirst6Last4.
	Mode Mode
	// Detect says which numbers are card numbers. Zero is DetectBrands.
	Detect Detect
	// Deadline is how long a held-back tail may wait for the next Write
	// before it is released as if the stream ended there. Zero means
	// DefaultDeadline; a negative value disables the timer, leaving the
	// release to Flush and Close.
	Deadline time.Duration
	// Input says the stream is typed input (keystrokes) rather than
	// terminal output: DEL erases the byte before it, as BS does,
	// instead of being ignored. The zero value judges terminal output.
	Input bool
	// Preview, if set, receives every byte the underlying writer does,
	// right after it, except that a tail held back for Deadline goes to
	// Preview at once, judged as if the stream ended there, while the
	// underlying writer keeps waiting for what follows and gets the tail
	// judged with it. Preview is not sent those bytes again. So one scan
	// serves a strict copy (a recording) and a prompt one (the terminal),
	// which differ only in tails released early.
	Preview io.Writer
	// Echo, if set, is asked when a Write ends with a held tail that the
	// early copy (Preview, or without one the underlying writer) lacks:
	// if it says those bytes are the echo of what the user just typed,
	// they are released at once, as at the deadline, instead of after
	// it. The user knows what they typed, so their typing echoes without
	// the deadline's delay. The release never starts the judgement over:
	// what comes after the tail is judged with it, and only the bytes
	// released early can differ from the strict result (a card's first
	// six digits typed with echo off, then printed by the target with
	// the ten others, show as typed followed by the mask). With Preview,
	// the underlying writer still gets the tail judged whole; without
	// one, the underlying writer is the early copy (it is written to as
	// a Preview would be, and a deadline releases as with one, without
	// starting over; Flush and Close still do), and the strict copy goes
	// nowhere. Echo is called with the Writer's lock held and must not
	// call the Writer.
	Echo func(tail []byte) bool
}

// Writer masks PANs in what is written to it and writes the result to the
// underlying writer, in order, in the same length and layout. It may hold
// back a tail of up to MaxHold bytes that could still be part of a PAN; see
// the package documentation for when it is released.
//
// A Writer is safe for concurrent use: Write, Flush, Close, Pending and
// Count are serialized by a mutex, which is also held while writing to the
// underlying writer so that a deadline release never reorders output. The
// deadline timer runs on its own goroutine (time.AfterFunc); Close stops it
// and waits for a release in progress. The caller must call Close, which
// flushes but does not close the underlying writer. The zero Writer is not
// usable: use NewWriter.
type Writer struct {
	w        io.Writer
	deadline time.Duration // <= 0: no timer
	count    atomic.Int64
	timers   sync.WaitGroup // armed or running deadline callbacks; Close waits

	preview io.Writer // nil: a deadline flushes instead
	echo    func(tail []byte) bool
	// solo: the caller's writer is preview, the early copy, and w
	// discards the strict one (Echo without Preview): so an echo release
	// is a release, which keeps judging what follows with the tail, not
	// a flush, which starts over. An error from preview is then w's.
	solo bool

	mu     sync.Mutex // guards the fields below and serializes writes to w
	sc     scanner
	buf    []byte // bytes not yet written to w: the held tail, then new input
	ahead  int    // bytes at the start of buf that preview already has
	perr   error  // first error writing to preview; preview gets nothing more, w still does
	peek   []byte // scratch for judging buf early
	err    error  // first error writing to w; sticky
	closed bool
	timer  *time.Timer
	armed  bool      // timer scheduled, callback not yet run
	last   time.Time // when the last Write left bytes held
}

// NewWriter returns a Writer that writes masked bytes to w. A Mode it does
// not know masks every digit.
func NewWriter(w io.Writer, cfg Config) *Writer {
	d := cfg.Deadline
	if d == 0 {
		d = DefaultDeadline
	}
	mw := &Writer{w: w, deadline: d, preview: cfg.Preview, echo: cfg.Echo}
	if cfg.Echo != nil && cfg.Preview == nil {
		mw.w, mw.preview, mw.solo = io.Discard, w, true
	}
	mw.sc.mode, mw.sc.detect, mw.sc.input = cfg.Mode, cfg.Detect, cfg.Input
	return mw
}

// Write masks p and writes what is final to the underlying writer before it
// returns; a tail that may still be part of a PAN is kept (copied) until the
// next Write, the deadline, Flush or Close. It returns len(p) unless writing
// to the underlying writer failed; that error is also returned by every
// later call. After writing to Preview failed, Write handles all of p as
// usual, without the preview, and returns len(p) and that error.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ErrClosed
	}
	n := 0
	for n < len(p) {
		c := p[n:min(len(p), n+chunkSize)]
		var err error
		if len(w.buf) == 0 {
			err = w.direct(c)
		} else {
			old := len(w.buf)
			w.buf = append(w.buf, c...)
			k := w.sc.scan(w.buf, old, false)
			w.sc.out = nil
			err = w.emit(k)
		}
		if err != nil {
			return n, err
		}
		n += len(c)
	}
	if w.echo != nil && len(w.buf) > w.ahead && w.echo(w.buf[w.ahead:]) {
		// Never a flush: the judgement goes on (see solo).
		if err := w.release(); err != nil && w.err != nil {
			return n, w.err
		}
	}
	if len(w.buf) > w.ahead && w.deadline > 0 {
		w.last = time.Now()
		if !w.armed {
			w.arm(w.deadline)
		}
	}
	// A failed preview stops the caller, but only after the strict copy
	// has had all of p.
	return n, w.perr
}

// Flush releases a held tail now, judging it as if the stream ended here:
// a held candidate that is a card number is masked, anything else (fewer
// than 13 digits, a failed Luhn check, a number no brand issues, an
// unfinished escape sequence) is written unchanged. What is written after
// Flush is judged as a new stream.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}

// Pending reports whether the Writer holds back bytes that a Flush would
// release (to the underlying writer; with Echo and no Preview, bytes
// that writer has not had yet).
func (w *Writer) Pending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.solo {
		return len(w.buf) > w.ahead
	}
	return len(w.buf) > 0
}

// Count returns how many PANs have been masked so far. Overlapping
// candidates in one run of digit groups count separately.
func (w *Writer) Count() int64 { return w.count.Load() }

// Close flushes the Writer and stops its deadline timer. It does not close
// the underlying writer. Later calls to Write return ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		defer w.mu.Unlock()
		return w.err
	}
	w.closed = true
	if w.armed && w.timer.Stop() {
		w.armed = false
		w.timers.Done()
	}
	err := w.flush()
	if err == nil {
		err = w.perr
	}
	w.mu.Unlock()
	w.timers.Wait()
	return err
}

func (w *Writer) flush() error {
	if w.err != nil {
		return w.err
	}
	k := w.sc.scan(w.buf, len(w.buf), true)
	w.sc.out = nil
	return w.emit(k)
}

// direct scans c where it is, w.buf being empty. If nothing in c needs
// masking (the common case), it writes what is final straight from c;
// otherwise the scanner has copied c to w.buf on the first mask, and
// emit writes from there. Either way the tail is kept in w.buf.
func (w *Writer) direct(c []byte) error {
	w.sc.ro, w.sc.src, w.sc.spare = true, c, w.buf[:0]
	k := w.sc.scan(c, 0, false)
	out := w.sc.out
	w.sc.ro, w.sc.src, w.sc.spare, w.sc.out = false, nil, nil, nil
	if out != nil {
		w.buf = out
		return w.emit(k)
	}
	w.buf = append(w.buf[:0], c[k:]...)
	w.sc.shift(k)
	w.count.Store(w.sc.count)
	if k == 0 {
		return nil
	}
	// buf was empty, so preview has none of c.
	return w.write(c[:k], c[:k])
}

// write writes p to w and then its last len(q) bytes, q, to preview. Only
// an error from w is returned: after one from preview, w goes on getting
// everything (what the preview showed must still reach the strict copy),
// and Write reports the preview's error once it has handled its input.
func (w *Writer) write(p, q []byte) error {
	n, err := w.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("mask: write: %w", err)
		return w.err
	}
	w.toPreview(q)
	if w.solo {
		return w.err // the caller's writer is preview
	}
	return nil
}

// toPreview writes q to preview unless it has failed before.
func (w *Writer) toPreview(q []byte) {
	if w.preview == nil || w.perr != nil || len(q) == 0 {
		return
	}
	n, err := w.preview.Write(q)
	if err == nil && n < len(q) {
		err = io.ErrShortWrite
	}
	if err != nil && w.solo {
		w.perr = fmt.Errorf("mask: write: %w", err)
		w.err = w.perr
	} else if err != nil {
		w.perr = fmt.Errorf("mask: write preview: %w", err)
	}
}

// emit writes the first k bytes of buf to w and keeps the rest.
func (w *Writer) emit(k int) error {
	w.count.Store(w.sc.count)
	if k == 0 {
		return nil
	}
	skip := min(w.ahead, k)
	err := w.write(w.buf[:k], w.buf[skip:k])
	w.ahead -= skip
	w.buf = w.buf[:copy(w.buf, w.buf[k:])]
	w.sc.shift(k)
	return err
}

// release sends preview the part of the held tail it lacks, judged as if
// the stream ended here, and keeps the tail for w. The judging runs on
// copies: the scanner's state and buf are untouched.
func (w *Writer) release() error {
	if w.err != nil || len(w.buf) <= w.ahead {
		return w.err
	}
	w.peek = append(w.peek[:0], w.buf...)
	// A copy of the scanner: its groups and digits are arrays, and the
	// slices that point into buffers are cleared, so judging the copy
	// cannot touch the real one.
	sc := w.sc
	sc.out, sc.src, sc.spare, sc.ro = nil, nil, nil, false
	// PANs masked here are not counted: the strict copy counts them
	// when it judges the tail.
	sc.scan(w.peek, len(w.peek), true)
	w.toPreview(w.peek[w.ahead:])
	if w.perr != nil {
		return w.perr
	}
	w.ahead = len(w.buf)
	return nil
}

// arm schedules the deadline callback. w.mu is held.
func (w *Writer) arm(d time.Duration) {
	w.armed = true
	w.timers.Add(1)
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.onDeadline)
	} else {
		w.timer.Reset(d)
	}
}

// onDeadline releases the held tail once no Write has come for the whole
// deadline; if one came meanwhile, it waits for the rest.
func (w *Writer) onDeadline() {
	defer w.timers.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	if w.closed || len(w.buf) == 0 {
		return
	}
	if rest := w.deadline - time.Since(w.last); rest > 0 {
		w.arm(rest)
		return
	}
	// The error is sticky: the next Write, Flush or Close returns it.
	if w.preview != nil {
		_ = w.release()
	} else {
		_ = w.flush()
	}
}
