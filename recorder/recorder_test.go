package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func writeCast(t *testing.T, path string, outputs ...string) ([32]byte, int64) {
	t.Helper()
	w, err := Create(path, Header{Width: 100, Height: 30, Title: "alice → db01", Postern: &Meta{ID: "X-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		if err := w.Output([]byte(o)); err != nil {
			t.Fatal(err)
		}
	}
	w.Resize(120, 40)
	w.Marker("exit status 0")
	d, n, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return d, n
}

func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	// A euro sign split across writes, control characters, quotes,
	// backslashes and an escape sequence.
	euro := "€"
	outputs := []string{"hello \"world\"\\\r\n", euro[:1], euro[1:] + "\x1b[31mred\x1b[0m\t\x00end"}
	digest, size := writeCast(t, path, outputs...)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != size {
		t.Fatalf("size %d, file %d", size, len(data))
	}
	if sum := sha256Hex(data); sum != hex.EncodeToString(digest[:]) {
		t.Fatal("digest does not match the file")
	}
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Version != 2 || r.Header.Width != 100 || r.Header.Postern.ID != "X-1" {
		t.Fatalf("header %+v", r.Header)
	}
	var out strings.Builder
	var kinds []string
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.Kind)
		if ev.Kind == "o" {
			out.WriteString(ev.Data)
		}
		if ev.Kind == "r" && ev.Data != "120x40" {
			t.Fatalf("resize event %q", ev.Data)
		}
	}
	if got, want := out.String(), strings.Join(outputs, ""); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	if strings.Join(kinds, "") != "oorm" {
		t.Fatalf("event kinds %v: the split character must be held, not written as two events", kinds)
	}
	// Every line is valid JSON, as asciinema requires.
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
	}
}

func TestReaderTornLastLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	writeCast(t, path, "one\r\n", "two\r\n")
	data, _ := os.ReadFile(path)
	torn := data[:len(data)-7] // inside the last event
	r, err := NewReader(bytes.NewReader(torn))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Cat(r, &buf); err != nil {
		t.Fatalf("cat of a torn file: %v", err)
	}
	if buf.String() != "one\r\ntwo\r\n" || !r.Torn() {
		t.Fatalf("got %q torn=%v", buf.String(), r.Torn())
	}
	// A bad line in the middle is an error, not silently skipped.
	bad := bytes.Replace(data, []byte(`"one\r\n"`), []byte(`"one`), 1)
	r, _ = NewReader(bytes.NewReader(bad))
	if err := Cat(r, io.Discard); err == nil {
		t.Fatal("corrupt middle line accepted")
	}
}

func TestFlushedWithinInterval(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	w, err := Create(path, Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Output([]byte("visible-before-close"))
	deadline := time.Now().Add(5 * FlushInterval)
	for {
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte("visible-before-close")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("output not on disk within the flush interval")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPlayAndGrep(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	w, _ := Create(path, Header{})
	clock := time.Unix(0, 0)
	w.now = func() time.Time { return clock }
	w.start = clock
	for i, s := range []string{"first line\r\n", "\x1b[1mneedle\x1b[0m here\r\n", "last\r\n"} {
		clock = clock.Add(time.Duration(i*10) * time.Second)
		w.Output([]byte(s))
	}
	w.Close()

	f, _ := os.Open(path)
	r, _ := NewReader(f)
	hits, err := Grep(r, regexp.MustCompile(`needle here`), 0)
	f.Close()
	if err != nil || len(hits) != 1 || hits[0].Time != 10 {
		t.Fatalf("hits %+v err %v; want one at 10s", hits, err)
	}
	// An idle limit caps the 20 s pause; speed makes it shorter still.
	f, _ = os.Open(path)
	r, _ = NewReader(f)
	var out bytes.Buffer
	start := time.Now()
	err = Play(context.Background(), r, &out, PlayOptions{Speed: 100, IdleLimit: time.Second}, nil)
	f.Close()
	if err != nil || !strings.HasSuffix(out.String(), "last\r\n") {
		t.Fatalf("play: %v %q", err, out.String())
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("play took %v with idle limit 1s at 100x", el)
	}
	// Quit key ends playback early; pause holds it.
	f, _ = os.Open(path)
	r, _ = NewReader(f)
	keys := make(chan byte, 2)
	keys <- KeyPause
	done := make(chan error, 1)
	out.Reset()
	go func() { done <- Play(context.Background(), r, &out, PlayOptions{}, keys) }()
	keys <- KeyQuit
	select {
	case err := <-done:
		if err != nil || strings.Contains(out.String(), "last") {
			t.Fatalf("quit: %v, output %q", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("q did not stop a paused playback")
	}
	f.Close()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func newStore(t *testing.T) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// record makes one sealed recording in the store.
func record(t *testing.T, s *Local, id, text string) Session {
	t.Helper()
	rel := filepath.Join("recordings", "2026", "11", "25", id+".cast")
	rec := Session{ID: id, Session: id, Identity: "alice", Target: "db01", Login: "root", Kind: "shell", Start: time.Now(), Path: rel}
	if err := s.Begin(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	d, n := writeCast(t, filepath.Join(s.Dir(), rel), text)
	end := time.Now()
	rec.End, rec.SHA256, rec.Size = &end, hex.EncodeToString(d[:]), n
	if _, err := s.Finish(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	return rec
}
