package bastion

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// lockedWriter is the target's stdin as a test sees it.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func newTestInput(ctx context.Context, dst io.Writer) *inputStage {
	in := &inputStage{ctx: ctx, dst: dst, room: make(chan struct{})}
	in.holdAt = func(p []byte) int { return bytes.IndexByte(p, '\r') }
	return in
}

// The input stage holds from Enter on while it goes on reading: a pump
// copying the client's bytes keeps going (Ctrl-C after the Enter is read,
// not stuck behind the hold), nothing from the Enter on reaches the
// target, and release passes the held bytes on in order, before what
// follows.
func TestInputStageHoldsWhileReading(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var target lockedWriter
	in := newTestInput(ctx, &target)

	client, typed := io.Pipe()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		io.Copy(in, client)
	}()
	write := func(s string) {
		t.Helper()
		done := make(chan error, 1)
		go func() { _, err := typed.Write([]byte(s)); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("writing %q blocked: the stage stopped reading", s)
		}
	}
	write("rm -rf /tmp/x\r")
	// io.Pipe's Write returns once the pump has read it all: the pump
	// reads on during the hold.
	write("\x03")
	write("more")
	if got := target.String(); got != "rm -rf /tmp/x" {
		t.Fatalf("target got %q while holding; want the line without its Enter", got)
	}
	if err := in.release(); err != nil {
		t.Fatal(err)
	}
	write("after\r") // holds again at this Enter
	want := "rm -rf /tmp/x\r\x03moreafter"
	// The pump has read it; it passes it on right after.
	testenv.WaitFor(t, 10*time.Second, func() bool { return len(target.String()) >= len(want) })
	if got := target.String(); got != want {
		t.Fatalf("target got %q, want %q", got, want)
	}
	if n := in.discard(); n != 1 {
		t.Fatalf("discard dropped %d bytes, want the 1 held Enter", n)
	}
	typed.Close()
	<-pumped
	if got := target.String(); got != want {
		t.Fatalf("after discard the target got %q, want %q", got, want)
	}
}

// Past maxHeld the stage waits for the hold to end (client input is
// capped), and a channel ending ends the wait with its cause.
func TestInputStageHoldIsCapped(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	var target lockedWriter
	in := newTestInput(ctx, &target)
	in.hold()
	if _, err := in.Write(bytes.Repeat([]byte("a"), maxHeld)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := in.Write([]byte("b")); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("write past the cap returned %v while holding", err)
	case <-time.After(50 * time.Millisecond): // it must still be waiting
	}
	cause := endCause("postern: channel ended")
	cancel(cause)
	select {
	case err := <-done:
		if err != cause {
			t.Fatalf("write ended with %v, want the channel's cause", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write still waits after the channel ended")
	}
	if target.String() != "" {
		t.Fatalf("target got %d bytes during the hold", len(target.String()))
	}
}
