package mask

import (
	"bytes"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// previewStream feeds in to a Writer with a Preview in pieces, releasing
// the held tail early after the pieces rng picks (by calling release, or
// by Config.Echo saying the tail is the user's echo), and checks what the
// two outputs must be:
//   - the underlying writer gets exactly Mask(in): early releases do not
//     change the strict copy;
//   - Preview gets as many bytes, and the same bytes, except in released
//     ranges;
//   - a range released when the input ended at n holds Mask(in[:n]) there:
//     the tail judged as if the stream ended at the release.
func previewStream(t testing.TB, in []byte, cuts []int, mode Mode, rng *rand.Rand) {
	t.Helper()
	var main, prev bytes.Buffer
	echo, asked := false, false
	w := NewWriter(&main, Config{Mode: mode, Deadline: -1, Preview: &prev,
		Echo: func(tail []byte) bool { asked = true; return echo }})
	type span struct{ from, to int }
	var released []span
	last := 0
	for _, c := range append(cuts, len(in)) {
		from := prev.Len()
		how := rng.IntN(4)
		echo, asked = how == 1, false
		if n, err := w.Write(in[last:c]); n != c-last || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		last = c
		switch {
		case how == 0:
			w.mu.Lock()
			err := w.release()
			w.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		case how == 1 && asked:
		default:
			continue
		}
		if prev.Len() != c {
			t.Fatalf("after a release at %d preview has %d bytes", c, prev.Len())
		}
		if from < c {
			want, _ := Mask(nil, in[:c], mode)
			if got := prev.Bytes()[from:c]; !bytes.Equal(got, want[from:c]) {
				t.Fatalf("%v: released [%d,%d) = %q, want %q (in %q)", mode, from, c, got, want[from:c], in)
			}
			released = append(released, span{from, c})
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want, _ := Mask(nil, in, mode)
	if !bytes.Equal(main.Bytes(), want) {
		t.Fatalf("%v: underlying writer got %q, want %q", mode, main.Bytes(), want)
	}
	if prev.Len() != len(in) {
		t.Fatalf("%v: preview has %d bytes, want %d", mode, prev.Len(), len(in))
	}
	p := prev.Bytes()
	for i := range p {
		if p[i] == want[i] {
			continue
		}
		inside := false
		for _, s := range released {
			inside = inside || s.from <= i && i < s.to
		}
		if !inside {
			t.Fatalf("%v: preview byte %d is %q, strict copy %q, outside every release %v", mode, i, p[i], want[i], released)
		}
	}
}

func TestPreviewProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range loadCorpus(t) {
		for _, mode := range modes {
			in := []byte(c.In)
			previewStream(t, in, randomCuts(rng, len(in)), mode, rng)
		}
	}
}

func FuzzPreview(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add([]byte(c.In))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h := fnv.New64a()
		h.Write(in)
		rng := rand.New(rand.NewPCG(h.Sum64(), 1))
		previewStream(t, in, randomCuts(rng, len(in)), modes[h.Sum64()%3], rng)
	})
}

// The deadline sends a held PAN to the preview at once, masked as a
// complete one; the strict copy waits and judges it with what follows.
func TestPreviewDeadline(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, first, rest string
	}{
		{"the PAN ends", "card 4111111111111111", " ok\n"},
		{"more digits follow", "id 4111111111111111", "1234\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var main, prev testenv.Buffer
			w := NewWriter(&main, Config{Deadline: 5 * time.Millisecond, Preview: &prev})
			w.Write([]byte(tt.first))
			early, _ := Mask(nil, []byte(tt.first), ModeFirst6Last4)
			deadline := time.Now().Add(10 * time.Second)
			for prev.String() != string(early) {
				if time.Now().After(deadline) {
					t.Fatalf("preview %q, want %q within the deadline", prev.String(), early)
				}
				time.Sleep(time.Millisecond)
			}
			if strings.Contains(main.String(), "4111") {
				t.Fatalf("strict copy %q already has the held tail", main.String())
			}
			w.Write([]byte(tt.rest))
			w.Close()
			whole, _ := Mask(nil, []byte(tt.first+tt.rest), ModeFirst6Last4)
			if main.String() != string(whole) {
				t.Errorf("strict copy %q, want %q", main.String(), whole)
			}
			if want := string(early) + string(whole[len(early):]); prev.String() != want {
				t.Errorf("preview %q, want %q", prev.String(), want)
			}
		})
	}
}

// A preview that fails (the user went away) does not cost the strict copy
// anything: what was shown, and all that follows, still reaches it.
func TestPreviewErrorKeepsStrictCopy(t *testing.T) {
	t.Parallel()
	var main testenv.Buffer
	var prev failingAfter
	prev.ok = 10
	w := NewWriter(&main, Config{Deadline: -1, Preview: &prev})
	in := "hello there, card 4111111111111111 and more"
	n, err := w.Write([]byte(in[:30]))
	if n != 30 || err == nil {
		t.Fatalf("Write = %d, %v; want 30 and the preview's error", n, err)
	}
	w.mu.Lock()
	if err := w.release(); err == nil {
		t.Error("release after a failed preview: no error")
	}
	w.mu.Unlock()
	if n, err := w.Write([]byte(in[30:])); n != len(in)-30 || err == nil {
		t.Fatalf("second Write = %d, %v; want all of it and the error", n, err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close: no error after the preview failed")
	}
	want, _ := Mask(nil, []byte(in), ModeFirst6Last4)
	if main.String() != string(want) {
		t.Errorf("strict copy %q, want %q", main.String(), want)
	}
}

// failingAfter accepts ok bytes, then fails.
type failingAfter struct{ ok int }

func (f *failingAfter) Write(p []byte) (int, error) {
	if len(p) > f.ok {
		return 0, errors.New("client gone")
	}
	f.ok -= len(p)
	return len(p), nil
}

// Echo releases the tail it is shown at once, before Write returns and
// long before the deadline, only when it says so; what it refuses waits.
// Without a Preview the underlying writer gets the release, and nothing
// is left pending for it.
func TestEchoRelease(t *testing.T) {
	t.Parallel()
	typed := []byte("4111")
	echo := func(tail []byte) bool { return bytes.HasPrefix(typed, tail) }
	var main, prev bytes.Buffer
	w := NewWriter(&main, Config{Deadline: time.Hour, Preview: &prev, Echo: echo})
	w.Write([]byte("card 4"))
	if prev.String() != "card 4" || main.String() != "card " {
		t.Fatalf("typed 4: preview %q, strict %q", prev.String(), main.String())
	}
	w.Write([]byte("111111111111111")) // not typed: held for the deadline
	if prev.String() != "card 4" || !w.Pending() {
		t.Fatalf("the target's digits: preview %q", prev.String())
	}
	w.Close()
	if want := "card 411111******1111"; main.String() != want || prev.String() != want {
		t.Fatalf("closed: strict %q, preview %q, want %q", main.String(), prev.String(), want)
	}
	var only bytes.Buffer
	w = NewWriter(&only, Config{Deadline: time.Hour, Echo: echo})
	w.Write([]byte("id 41"))
	if only.String() != "id 41" || w.Pending() {
		t.Fatalf("without a preview: %q", only.String())
	}
	w.Close()
}

// With Echo and no Preview, the caller's writer gets the early copy; its
// error is the Writer's, and sticky, as without Echo.
func TestEchoWithoutPreviewWriteError(t *testing.T) {
	t.Parallel()
	client := &failingAfter{ok: 8}
	w := NewWriter(client, Config{Deadline: time.Hour, Echo: func([]byte) bool { return true }})
	if n, err := w.Write([]byte("card 41")); n != 7 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := w.Write([]byte("11 and more")); err == nil {
		t.Fatal("a write the client refused: no error")
	}
	if n, err := w.Write([]byte("x")); n != 0 || err == nil {
		t.Fatalf("Write after the error = %d, %v; want 0 and the error", n, err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close: no error")
	}
}
