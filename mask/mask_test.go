package mask

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// corpusCase is one entry of testdata/mask/cases.json. An empty Want means
// the input must pass unchanged in every mode.
type corpusCase struct {
	Name  string `json:"name"`
	In    string `json:"in"`
	Want  string `json:"want"`
	Last4 string `json:"last4"`
	Full  string `json:"full"`
	Note  string `json:"note"`
}

// want returns the expected output in mode.
func (c corpusCase) want(mode Mode) string {
	if c.Want == "" {
		return c.In
	}
	return map[Mode]string{ModeFirst6Last4: c.Want, ModeLast4: c.Last4, ModeFull: c.Full}[mode]
}

var modes = []Mode{ModeFirst6Last4, ModeLast4, ModeFull}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "mask", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cs []corpusCase
	if err := json.Unmarshal(data, &cs); err != nil {
		t.Fatalf("parse cases.json: %v", err)
	}
	if len(cs) < 100 {
		t.Fatalf("cases.json has %d cases", len(cs))
	}
	return cs
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range modes {
				want := c.want(mode)
				got, _ := Mask(nil, []byte(c.In), mode)
				if string(got) != want {
					t.Errorf("Mask %v\n in: %q\ngot: %q\nwant %q", mode, c.In, got, want)
				}
				if ref := refMask([]byte(c.In), mode); string(ref) != want {
					t.Errorf("reference %v\n in: %q\ngot: %q\nwant %q", mode, c.In, ref, want)
				}
				if got := stream(t, []byte(c.In), nil, mode); string(got) != want {
					t.Errorf("Writer %v\n in: %q\ngot: %q\nwant %q", mode, c.In, got, want)
				}
				// The broader rule masks every PAN the default does, and
				// what its reference finds.
				wantLuhn := string(refMaskDetect([]byte(c.In), mode, DetectLuhn))
				if c.Want != "" && wantLuhn != want {
					t.Errorf("reference luhn %v\n in: %q\ngot: %q\nwant %q", mode, c.In, wantLuhn, want)
				}
				if got, _ := DetectLuhn.Mask(nil, []byte(c.In), mode); string(got) != wantLuhn {
					t.Errorf("Mask luhn %v\n in: %q\ngot: %q\nwant %q", mode, c.In, got, wantLuhn)
				}
			}
		})
	}
}

// TestSplitInvariance cuts every corpus input at every point, and at random
// sets of points, and expects the output of the whole.
func TestSplitInvariance(t *testing.T) {
	t.Parallel()
	cs := loadCorpus(t)
	var all []byte // the corpus as one stream, to cross case borders
	for _, c := range cs {
		all = append(all, c.In...)
	}
	cs = append(cs, corpusCase{Name: "whole corpus", In: string(all)})
	for _, c := range cs {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			in := []byte(c.In)
			rng := rand.New(rand.NewPCG(uint64(len(in)), 1))
			for _, mode := range modes {
				want, _ := Mask(nil, in, mode)
				for i := 0; i <= len(in) && len(in) < 4096; i++ {
					if got := stream(t, in, []int{i}, mode); !bytes.Equal(got, want) {
						t.Fatalf("cut at %d: got %q, want %q", i, got, want)
					}
				}
				for range 50 {
					cuts := randomCuts(rng, len(in))
					if got := stream(t, in, cuts, mode); !bytes.Equal(got, want) {
						t.Fatalf("cuts %v: got %q, want %q", cuts, got, want)
					}
				}
			}
		})
	}
}

// randomCuts returns sorted cut points in [0, n], from one byte per write
// to a few long ones.
func randomCuts(rng *rand.Rand, n int) []int {
	var cuts []int
	step := 1 + rng.IntN(1+rng.IntN(64))
	for c := rng.IntN(step + 1); c < n; c += 1 + rng.IntN(step) {
		cuts = append(cuts, c)
	}
	return cuts
}

func TestFlushEndsStream(t *testing.T) {
	t.Parallel()
	a, b := "pan 41111111", "11111111 and 4111111111111111"
	var out bytes.Buffer
	w := NewWriter(&out, Config{Deadline: -1})
	w.Write([]byte(a))
	if !w.Pending() {
		t.Fatal("no tail held after a live candidate")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Pending() {
		t.Fatal("tail held after Flush")
	}
	w.Write([]byte(b))
	w.Close()
	wa, _ := Mask(nil, []byte(a), 0)
	wb, _ := Mask(nil, []byte(b), 0)
	if want := string(wa) + string(wb); out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestFlushPolicy: a held candidate is judged as if the stream ended.
func TestFlushPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"4111111111111111", "411111******1111"},       // 16 digits, Luhn: masked
		{"4111 1111 1111 1111", "4111 11** **** 1111"}, // same, grouped
		{"4111111111111112", "4111111111111112"},       // Luhn fails: released as is
		{"411111111111", "411111111111"},               // 12 digits: released as is
		{"4", "4"},
		{"card 4222222222222", "card 422222***2222"},
		{"\x1b[31", "\x1b[31"}, // unfinished escape: released as is
	} {
		var out bytes.Buffer
		w := NewWriter(&out, Config{Deadline: -1})
		w.Write([]byte(tc.in))
		if out.Len() == len(tc.in) || !w.Pending() {
			t.Errorf("%q: released before Flush (%q)", tc.in, out.String())
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, out.String(), tc.want)
		}
	}
}

// chanSink passes each write to a channel.
type chanSink chan []byte

func (s chanSink) Write(p []byte) (int, error) {
	s <- bytes.Clone(p)
	return len(p), nil
}

func TestDeadlineReleasesKeystroke(t *testing.T) {
	t.Parallel()
	sink := make(chanSink, 16)
	w := NewWriter(sink, Config{}) // 20 ms
	defer w.Close()

	// A complete line holds nothing: it is written within the Write.
	line := "$ echo 4111111111111111 done\r\n"
	w.Write([]byte(line))
	select {
	case got := <-sink:
		if want := "$ echo 411111******1111 done\r\n"; string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	default:
		t.Fatal("line not written within Write")
	}

	// A keystroke echo: "4" could start a PAN, so it is held, then released.
	for _, key := range []string{"4", "1", "7"} {
		start := time.Now()
		w.Write([]byte(key))
		select {
		case got := <-sink:
			if string(got) != key {
				t.Fatalf("got %q, want %q", got, key)
			}
			if d := time.Since(start); d < DefaultDeadline/2 {
				t.Errorf("%q released after %v, before the deadline", key, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q not released within 10s", key)
		}
	}
}

// TestDeadlineIsIdleTime: writes that keep coming within the deadline keep
// the candidate whole, so a PAN typed fast enough is still masked. The
// deadline is long (the line ends before it, so nothing waits for it):
// with 200ms, a loaded machine could pause the loop between two writes
// for longer, and the number was judged in pieces.
func TestDeadlineIsIdleTime(t *testing.T) {
	t.Parallel()
	sink := make(chanSink, 64)
	w := NewWriter(sink, Config{Deadline: 10 * time.Second})
	defer w.Close()
	for _, c := range "4111111111111111" {
		w.Write([]byte(string(c)))
	}
	w.Write([]byte("\r\n"))
	var got []byte
	for len(got) < 18 {
		select {
		case p := <-sink:
			got = append(got, p...)
		case <-time.After(20 * time.Second):
			t.Fatalf("got %q only", got)
		}
	}
	if string(got) != "411111******1111\r\n" {
		t.Errorf("got %q", got)
	}
}

func TestNoDeadline(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out, Config{Deadline: -1})
	w.Write([]byte("4111"))
	if out.Len() != 0 || !w.Pending() || w.timer != nil {
		t.Fatalf("out %q, pending %v, timer %v", out.String(), w.Pending(), w.timer)
	}
	w.Close()
	if out.String() != "4111" {
		t.Fatalf("got %q", out.String())
	}
}

// TestConcurrentDeadline races the deadline timer against a writer; run
// with -race.
func TestConcurrentDeadline(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var out bytes.Buffer
	sink := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	w := NewWriter(sink, Config{Deadline: time.Microsecond})
	in := []byte(strings.Repeat("pan 4111 1111 1111 1111 \x1b[0m", 200))
	for i := 0; i < len(in); i += 3 {
		w.Write(in[i:min(i+3, len(in))])
		_ = w.Pending()
		_ = w.Count()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if out.Len() != len(in) {
		t.Fatalf("wrote %d bytes, want %d", out.Len(), len(in))
	}
	for i, c := range out.Bytes() {
		if c != in[i] && (c != '*' || in[i] < '0' || in[i] > '9') {
			t.Fatalf("byte %d: %q became %q", i, in[i], c)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestWriteError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	w := NewWriter(writerFunc(func([]byte) (int, error) { return 0, boom }), Config{Deadline: -1})
	if n, err := w.Write([]byte("hello\n")); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := w.Write([]byte("again")); !errors.Is(err, boom) {
		t.Fatalf("second Write: %v", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v", err)
	}

	short := NewWriter(writerFunc(func(p []byte) (int, error) { return len(p) - 1, nil }), Config{Deadline: -1})
	if _, err := short.Write([]byte("hello\n")); err == nil {
		t.Fatal("short write not reported")
	}

	var out bytes.Buffer
	closed := NewWriter(&out, Config{})
	closed.Close()
	if _, err := closed.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestWriteKeepsInput(t *testing.T) {
	t.Parallel()
	in := []byte("a 4111111111111111 b 5555")
	orig := bytes.Clone(in)
	var out bytes.Buffer
	w := NewWriter(&out, Config{Deadline: -1})
	w.Write(in)
	if !bytes.Equal(in, orig) {
		t.Fatalf("Write modified its input: %q", in)
	}
	copy(in, "xxxxxxxxxxxxxxxxxxxxxxxxx") // the held "5555" must be a copy
	w.Close()
	if want := "a 411111******1111 b 5555"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestLargeWrite(t *testing.T) {
	t.Parallel()
	in := bytes.Repeat([]byte("x 4111 1111 1111 1111 y 1234567890123 "), 10000) // > chunkSize
	var out bytes.Buffer
	w := NewWriter(&out, Config{Deadline: -1})
	if n, err := w.Write(in); n != len(in) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	w.Close()
	want, n := Mask(nil, in, 0)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("output differs from Mask")
	}
	if n != 10000 || w.Count() != 10000 {
		t.Errorf("Mask counted %d, Writer %d, want 10000", n, w.Count())
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		mode Mode
	}{{"first6last4", ModeFirst6Last4}, {"", ModeFirst6Last4}, {"last4", ModeLast4}, {"full", ModeFull}} {
		m, err := ParseMode(tc.s)
		if err != nil || m != tc.mode {
			t.Errorf("ParseMode(%q) = %v, %v", tc.s, m, err)
		}
	}
	if _, err := ParseMode("none"); err == nil {
		t.Error("ParseMode(none) accepted")
	}
	// An unknown mode fails closed.
	if got, _ := Mask(nil, []byte("4111111111111111"), Mode(42)); string(got) != "****************" {
		t.Errorf("unknown mode: %q", got)
	}
}

func TestNoAllocs(t *testing.T) {
	in := bytes.Repeat([]byte("2024-06-11 INFO card=4111111111111111 id=42 \x1b[31m1234\x1b[0m\n"), 600)
	title := []byte("\x1b]0;echo 4111111111111111\x07\n")
	w := NewWriter(discard{}, Config{Deadline: -1})
	w.Write(in) // grow the buffer
	if a := testing.AllocsPerRun(100, func() { w.Write(in[:32<<10]) }); a != 0 {
		t.Errorf("Write: %v allocs", a)
	}
	if a := testing.AllocsPerRun(100, func() { w.Write(title) }); a != 0 {
		t.Errorf("Write of a title: %v allocs", a)
	}
	dst := make([]byte, 0, len(in))
	if a := testing.AllocsPerRun(100, func() { Mask(dst, in, 0) }); a != 0 {
		t.Errorf("Mask: %v allocs", a)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
