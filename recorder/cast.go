package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Header is the first line of an asciicast v2 file. Fields other than
// version, width and height are optional in the format; asciinema ignores
// keys it does not know, which is where Postern's metadata lives.
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Env       map[string]string `json:"env,omitempty"`
	Title     string            `json:"title,omitempty"`
	// Postern holds the session's metadata, for humans reading the file
	// and for tools; the index is the authoritative copy.
	Postern *Meta `json:"postern,omitempty"`
}

// Meta is Postern's metadata in a recording header.
type Meta struct {
	ID       string `json:"id"`      // recording ID: the session ID and channel number
	Session  string `json:"session"` // connection's session ID
	Identity string `json:"identity"`
	Login    string `json:"login"`
	Target   string `json:"target"`
	Client   string `json:"client"`
	// Kind is the index entry's kind (shell, exec, sftp, forward, …),
	// so that an index rebuilt from recordings keeps it. Recordings
	// written before it was added have none.
	Kind    string `json:"kind,omitempty"`
	Command string `json:"command,omitempty"`
}

// FlushInterval bounds how long an event may sit in the buffer before it
// reaches the file, so a killed bastion loses at most this much.
const FlushInterval = time.Second

// queueLen bounds the buffers a Writer holds between the caller and the
// file: a caller that outpaces the disk waits, and at most this many
// chunks of about chunkSize bytes are in flight.
const queueLen = 4

// chunkSize is how many bytes of events a Writer gathers before it hands
// them to its writing goroutine (or sooner, FlushInterval after the first).
const chunkSize = 128 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*chunkSize); return &b }}

// Writer streams asciicast v2 events to a Sink. It is safe for concurrent
// use (output, resize and marker events come from different goroutines).
// The caller must Close it; Close flushes, closes the sink and returns the
// digest.
//
// A call encodes its event at once, stamped with the time; a goroutine of
// the Writer's own hashes the encoded chunks and writes them to the sink,
// so a session's data path does not wait for SHA-256 or the disk unless
// queueLen chunks are already waiting. A write error is returned by the
// next call, by Flush and by Close.
type Writer struct {
	now   func() time.Time
	start time.Time

	mu     sync.Mutex // guards the fields below, and sending on q (which keeps chunks in order)
	closed bool
	cur    *[]byte // encoded events not yet handed to run; nil when none (an idle session holds no chunk)
	timer  *time.Timer
	carry  [2][utf8.UTFMax]byte // incomplete UTF-8 held for the next event: [0] output, [1] input
	ncarry [2]int
	size   int64 // bytes encoded so far, header included (limit.go)
	limit  int64 // events other than final markers stop at this size; 0: none
	final  bool  // the event being encoded is a FinalMarker: past the limit

	q       chan *[]byte  // chunks for run, in order; nil asks run to signal flushed
	flushed chan struct{} // run sends on it when it reaches a nil in q
	done    chan struct{} // closed when run has returned

	errMu sync.Mutex // guards err; run takes it, never mu
	err   error

	sink    Sink      // written by run, then closed by Close
	sum     hash.Hash // likewise: the SHA-256 of exactly what reached the sink
	written int64     // likewise: the recording's size
}

// NewRecording creates recording name in b, writes the header and returns
// its Writer. On an error nothing is left behind.
func NewRecording(ctx context.Context, b Blobs, name string, h Header) (*Writer, error) {
	sink, err := b.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(sink, h)
	if err != nil {
		b.Remove(ctx, name)
		return nil, err
	}
	return w, nil
}

// Create makes the file at path (and its directory, 0700) exclusively, writes
// the header, and returns a Writer. An existing file is never overwritten.
// It is for files outside a Store (tests, exports); the bastion records
// through NewRecording.
func Create(path string, h Header) (*Writer, error) {
	sink, err := createFile(path)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(sink, h)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

// NewWriter writes the header to sink and returns a Writer that owns it.
// On an error the sink is closed.
func NewWriter(sink Sink, h Header) (*Writer, error) {
	w := &Writer{sink: sink, sum: sha256.New(), start: time.Now(), now: time.Now,
		q: make(chan *[]byte, queueLen), flushed: make(chan struct{}), done: make(chan struct{})}
	h.Version = 2
	if h.Timestamp == 0 {
		h.Timestamp = w.start.Unix()
	}
	if h.Width <= 0 {
		h.Width = 80
	}
	if h.Height <= 0 {
		h.Height = 24
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		sink.Close()
		return nil, err
	}
	// The header reaches the sink at once: even a session killed in its
	// first second leaves a file that players accept.
	hdr = append(hdr, '\n')
	if _, err := sink.Write(hdr); err != nil {
		sink.Close()
		return nil, fmt.Errorf("write recording: %w", err)
	}
	w.sum.Write(hdr)
	w.written = int64(len(hdr))
	w.size = w.written
	go w.run()
	return w, nil
}

// Output records terminal output. Incomplete UTF-8 at the end of p is held
// for the next call: asciicast stores text, and a character split across
// two reads must not become two replacement characters.
func (w *Writer) Output(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.textEvent('o', p)
}

// Input records terminal input.
func (w *Writer) Input(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.textEvent('i', p)
}

// Resize records a terminal size change.
func (w *Writer) Resize(cols, rows int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event('r', strconv.Itoa(cols)+"x"+strconv.Itoa(rows))
}

// Marker records a labelled marker (exec command, approvals, transfers).
// Like other events, it counts against the limit SetLimit set.
func (w *Writer) Marker(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event('m', label)
}

// FinalMarker records a marker even past the limit: for what ends a
// recording (why it stops, the exit status), so a recording at its limit
// can still say so. Its callers write a few, not one per client request.
func (w *Writer) FinalMarker(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.errLocked(); err != nil {
		return err
	}
	w.final = true
	defer func() { w.final = false }()
	return w.encode('m', []byte(label))
}

func (w *Writer) textEvent(kind byte, p []byte) error {
	if err := w.errLocked(); err != nil {
		return err
	}
	k := 0
	if kind == 'i' {
		k = 1
	}
	buf := p
	if w.ncarry[k] > 0 {
		buf = append(w.carry[k][:w.ncarry[k]:w.ncarry[k]], p...)
		w.ncarry[k] = 0
	}
	// Hold back a trailing incomplete (but so far valid) UTF-8 sequence.
	if cut := incompleteTail(buf); cut > 0 {
		w.ncarry[k] = copy(w.carry[k][:], buf[len(buf)-cut:])
		buf = buf[:len(buf)-cut]
	}
	if len(buf) == 0 {
		return nil
	}
	return w.encode(kind, buf)
}

func (w *Writer) event(kind byte, s string) error {
	if err := w.errLocked(); err != nil {
		return err
	}
	return w.encode(kind, []byte(s))
}

// encode appends one event line to the current chunk and hands the chunk
// over once it is full. An event that would take the recording past its
// limit is taken back, and ErrLimit returned, unless it is a FinalMarker.
func (w *Writer) encode(kind byte, data []byte) error {
	if w.cur == nil {
		w.cur = bufPool.Get().(*[]byte)
		*w.cur = (*w.cur)[:0]
	}
	b := *w.cur
	n := len(b)
	b = append(b, '[')
	b = strconv.AppendFloat(b, w.now().Sub(w.start).Seconds(), 'f', 6, 64)
	b = append(b, ", \""...)
	b = append(b, kind)
	b = append(b, "\", "...)
	b = appendJSONString(b, data)
	b = append(b, "]\n"...)
	if w.limit > 0 && !w.final && w.size+int64(len(b)-n) > w.limit {
		*w.cur = b[:n]
		return ErrLimit
	}
	w.size += int64(len(b) - n)
	*w.cur = b
	switch {
	case len(b) >= chunkSize:
		w.handOff()
	case n == 0:
		// The first event of a chunk: it reaches the file within
		// FlushInterval even if no more come.
		if w.timer == nil {
			w.timer = time.AfterFunc(FlushInterval, w.timedFlush)
		} else {
			w.timer.Reset(FlushInterval)
		}
	}
	return nil
}

// handOff queues the current chunk for run; it waits while queueLen
// chunks are queued.
func (w *Writer) handOff() {
	if w.cur == nil {
		return
	}
	w.q <- w.cur
	w.cur = nil
}

// Flush hands the buffered events to the sink, waits until they are
// written and returns the first write error: once it returns nil, every
// event recorded before the call is in the sink (written, not synced).
// Bytes held back as incomplete UTF-8 stay held. Calls wait meanwhile.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.errLocked(); err != nil {
		return err
	}
	w.handOff()
	w.q <- nil
	<-w.flushed
	return w.Err()
}

func (w *Writer) timedFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.handOff()
	}
}

// run hashes and writes chunks in order until Close closes the queue.
// After a write error it only drains the queue.
func (w *Writer) run() {
	defer close(w.done)
	for bp := range w.q {
		if bp == nil { // Flush waits for this
			w.flushed <- struct{}{}
			continue
		}
		if w.Err() == nil {
			n, err := w.sink.Write(*bp)
			// Digest and size describe the file as it is, also
			// after a short write: an interrupted recording then
			// verifies as what it is, not as modified.
			w.sum.Write((*bp)[:n])
			w.written += int64(n)
			if err != nil {
				w.setErr(fmt.Errorf("write recording: %w", err))
			}
		}
		if cap(*bp) <= 4*chunkSize {
			*bp = (*bp)[:0]
			bufPool.Put(bp)
		}
	}
}

func (w *Writer) errLocked() error {
	if w.closed {
		return errors.New("recording closed")
	}
	return w.Err()
}

func (w *Writer) setErr(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// Err returns the first write error, if any: events are written after the
// calls that record them return.
func (w *Writer) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// Close writes the queued events and any held bytes, flushes and syncs the
// sink, and returns the SHA-256 of the whole recording and its size.
func (w *Writer) Close() (digest [32]byte, size int64, err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return digest, w.written, errors.New("recording already closed")
	}
	for k, kind := range []byte{'o', 'i'} {
		if w.ncarry[k] > 0 {
			// A dangling partial character: store it (JSON
			// encoding makes it U+FFFD) rather than drop it.
			w.encode(kind, w.carry[k][:w.ncarry[k]])
			w.ncarry[k] = 0
		}
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.handOff()
	close(w.q)
	w.mu.Unlock()
	<-w.done
	err = w.Err()
	if cerr := w.sink.Close(); err == nil {
		err = cerr
	}
	copy(digest[:], w.sum.Sum(nil))
	return digest, w.written, err
}
