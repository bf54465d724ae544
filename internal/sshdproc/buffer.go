package sshdproc

import (
	"bytes"
	"sync"
)

// Buffer collects a process's output, or anything else written by one
// goroutine and read by another (a server's log, a pty copier, a test
// polling for a line). It is safe for concurrent use. The zero value is
// ready and keeps everything; with Max > 0 it keeps about the newest Max
// bytes, dropping the oldest half when full. Offsets count every byte
// ever written, so Since works across drops.
type Buffer struct {
	Max int // 0: no limit

	mu      sync.Mutex // guards dropped and b
	dropped int64      // bytes discarded from the front
	b       []byte
}

// maxLog caps an sshd's log.
const maxLog = 8 << 20

// Write appends p; it never fails.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if l.Max > 0 && len(l.b) > l.Max {
		n := len(l.b) - l.Max/2
		l.b = append(l.b[:0:0], l.b[n:]...)
		l.dropped += int64(n)
	}
	return len(p), nil
}

// String returns what the buffer holds.
func (l *Buffer) String() string { return l.Since(0) }

// Bytes returns a copy of what the buffer holds.
func (l *Buffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b)
}

// End returns the offset just past the last byte written.
func (l *Buffer) End() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped + int64(len(l.b))
}

// Since returns the output from offset off on (or from the oldest kept
// byte).
func (l *Buffer) Since(off int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := max(off-l.dropped, 0)
	if i > int64(len(l.b)) {
		return ""
	}
	return string(l.b[i:])
}
