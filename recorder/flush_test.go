package recorder

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

// flushSink is a sink that keeps what reaches it and fails every write
// after the header once fail is set.
type flushSink struct {
	mu   sync.Mutex // guards the fields below; Write runs on the Writer's goroutine
	buf  bytes.Buffer
	fail bool
}

func (s *flushSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return 0, errors.New("no space left on device")
	}
	return s.buf.Write(p)
}

func (s *flushSink) Close() error { return nil }

func (s *flushSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// TestWriterFlush: Flush puts a short session's events (less than a chunk,
// well within FlushInterval) into the sink before it returns, and a sink
// that fails makes Flush, not only a later call, return the error.
func TestWriterFlush(t *testing.T) {
	t.Parallel()
	t.Run("written", func(t *testing.T) {
		t.Parallel()
		sink := &flushSink{}
		w, err := NewWriter(sink, Header{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Output([]byte("flushed-output\n")); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		if got := sink.String(); !strings.Contains(got, "flushed-output") {
			t.Fatalf("after Flush the sink holds %q", got)
		}
		if err := w.Flush(); err != nil { // nothing pending: no-op
			t.Fatalf("second flush: %v", err)
		}
		if _, _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err == nil {
			t.Fatal("flush after close: no error")
		}
	})
	t.Run("fails", func(t *testing.T) {
		t.Parallel()
		sink := &flushSink{}
		w, err := NewWriter(sink, Header{})
		if err != nil {
			t.Fatal(err)
		}
		sink.mu.Lock()
		sink.fail = true
		sink.mu.Unlock()
		if err := w.Output([]byte("lost-output\n")); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("flush onto a failing sink: %v", err)
		}
		if err := w.Output([]byte("more")); err == nil {
			t.Fatal("output after a failed flush: no error")
		}
		if _, _, err := w.Close(); err == nil {
			t.Fatal("close after a failed flush: no error")
		}
	})
}
