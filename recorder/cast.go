// Package recorder writes sessions as asciicast v2 typescripts, reads and
// plays them back, keeps the session index, and seals finished recordings
// in a signed, hash-chained audit log so that tampering is detectable.
//
// It receives bytes that were already masked: it never sees a raw PAN.
package recorder

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
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
	Command  string `json:"command,omitempty"`
}

// FlushInterval bounds how long an event may sit in the buffer before it
// reaches the file, so a killed bastion loses at most this much.
const FlushInterval = time.Second

// Writer streams asciicast v2 events to a file. It is safe for concurrent
// use (output, resize and marker events come from different goroutines).
// The caller must Close it; Close flushes, syncs and returns the digest.
type Writer struct {
	mu      sync.Mutex // guards everything below
	f       *os.File
	bw      *bufio.Writer
	sum     hash.Hash
	size    int64
	start   time.Time
	now     func() time.Time
	line    []byte               // scratch for one event
	carry   [2][utf8.UTFMax]byte // incomplete UTF-8 held for the next event: [0] output, [1] input
	ncarry  [2]int
	timer   *time.Timer
	pending bool // data buffered but not flushed
	err     error
	closed  bool
}

// Create makes the file at path (and its directory, 0700) exclusively, writes
// the header, and returns a Writer. An existing file is never overwritten.
func Create(path string, h Header) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create recording directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create recording: %w", err)
	}
	w := &Writer{f: f, sum: sha256.New(), start: time.Now(), now: time.Now}
	w.bw = bufio.NewWriterSize(io.MultiWriter(f, w.sum), 64*1024)
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
		f.Close()
		os.Remove(path)
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.write(append(hdr, '\n'))
	// The header reaches the disk at once: even a session killed in its
	// first second leaves a file that players accept.
	w.flushLocked()
	if w.err != nil {
		f.Close()
		os.Remove(path)
		return nil, w.err
	}
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

// Marker records a labelled marker (exec command, approvals, exit status).
func (w *Writer) Marker(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event('m', label)
}

func (w *Writer) textEvent(kind byte, p []byte) error {
	if w.err != nil || w.closed {
		return w.errLocked()
	}
	k := 0
	if kind == 'i' {
		k = 1
	}
	var buf []byte
	if w.ncarry[k] > 0 {
		buf = append(w.carry[k][:w.ncarry[k]:w.ncarry[k]], p...)
		w.ncarry[k] = 0
	} else {
		buf = p
	}
	// Hold back a trailing incomplete (but so far valid) UTF-8 sequence.
	cut := incompleteTail(buf)
	if cut > 0 {
		w.ncarry[k] = copy(w.carry[k][:], buf[len(buf)-cut:])
		buf = buf[:len(buf)-cut]
	}
	if len(buf) == 0 {
		return nil
	}
	w.line = w.appendPrefix(w.line[:0], kind)
	w.line = appendJSONString(w.line, buf)
	w.line = append(w.line, "]\n"...)
	w.write(w.line)
	return w.errLocked()
}

func (w *Writer) event(kind byte, s string) error {
	if w.err != nil || w.closed {
		return w.errLocked()
	}
	w.line = w.appendPrefix(w.line[:0], kind)
	w.line = appendJSONString(w.line, []byte(s))
	w.line = append(w.line, "]\n"...)
	w.write(w.line)
	return w.errLocked()
}

func (w *Writer) appendPrefix(b []byte, kind byte) []byte {
	t := w.now().Sub(w.start).Seconds()
	b = append(b, '[')
	b = strconv.AppendFloat(b, t, 'f', 6, 64)
	b = append(b, ", \""...)
	b = append(b, kind)
	b = append(b, "\", "...)
	return b
}

func (w *Writer) write(b []byte) {
	n, err := w.bw.Write(b)
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write recording: %w", err)
		return
	}
	if !w.pending {
		w.pending = true
		if w.timer == nil {
			w.timer = time.AfterFunc(FlushInterval, w.timedFlush)
		} else {
			w.timer.Reset(FlushInterval)
		}
	}
}

func (w *Writer) timedFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.flushLocked()
	}
}

func (w *Writer) flushLocked() {
	w.pending = false
	if w.err != nil {
		return
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("write recording: %w", err)
	}
}

func (w *Writer) errLocked() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("recording closed")
	}
	return nil
}

// Err returns the first write error, if any: a background flush may fail
// between events.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close writes any held bytes, flushes and syncs the file, and returns the
// SHA-256 of the whole file and its size.
func (w *Writer) Close() (digest [32]byte, size int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return digest, w.size, errors.New("recording already closed")
	}
	for k, kind := range []byte{'o', 'i'} {
		if w.ncarry[k] > 0 && w.err == nil {
			// A dangling partial character: store it (JSON
			// encoding makes it U+FFFD) rather than drop it.
			w.line = w.appendPrefix(w.line[:0], kind)
			w.line = appendJSONString(w.line, w.carry[k][:w.ncarry[k]])
			w.line = append(w.line, "]\n"...)
			w.write(w.line)
			w.ncarry[k] = 0
		}
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.flushLocked()
	if w.err == nil {
		if err := w.f.Sync(); err != nil {
			w.err = fmt.Errorf("sync recording: %w", err)
		}
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("close recording: %w", err)
	}
	copy(digest[:], w.sum.Sum(nil))
	return digest, w.size, w.err
}

// incompleteTail returns the length of a trailing UTF-8 sequence in b that
// is a valid prefix of a longer character, or 0.
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 { // a leading byte
			need := 2
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			if need > i {
				return i
			}
			return 0
		}
	}
	return 0
}

const hexDigits = "0123456789abcdef"

// plain8 reports whether none of the eight bytes in v needs escaping or
// UTF-8 decoding: all are in 0x20..0x7f and none is '"' or '\\'. It may
// report false for a plain word (the caller then looks byte by byte), never
// true for one that needs care.
func plain8(v uint64) bool {
	const lo = 0x0101010101010101
	const hi = 0x8080808080808080
	// A byte of x is zero where (x-lo) &^ x has its high bit set; bytes
	// below 0x20 likewise with (v - 0x20*lo).
	less20 := (v - 0x20*lo) &^ v
	q := v ^ (0x22 * lo)
	quote := (q - lo) &^ q
	b := v ^ (0x5c * lo)
	backslash := (b - lo) &^ b
	return (v|less20|quote|backslash)&hi == 0
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; it does not allocate beyond b's growth.
func appendJSONString(b []byte, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip eight plain ASCII bytes at a time: most terminal output
		// needs no escaping.
		for i+8 <= len(s) && plain8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
