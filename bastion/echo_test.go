package bastion

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// typedEcho counts as echo only the keys as typed, in order, each once:
// the target printing digits the user typed earlier is output; digits
// typed with echo off keep what follows from counting; keys that do not
// come back as themselves (Enter) are passed over.
func TestTypedEcho(t *testing.T) {
	t.Parallel()
	var e typedEcho
	step := func(out, tail string, want bool) {
		t.Helper()
		e.saw([]byte(out))
		if got := e.echoed([]byte(tail)); got != want {
			t.Fatalf("after output %q: echoed(%q) = %v, want %v (keys %q, run %d)", out, tail, got, want, e.keys, e.run)
		}
	}
	step("4", "4", false) // nothing typed
	e.typed([]byte(": 41"))
	step(": 4", "4", true)
	step("1", "41", true)
	step("1", "1", false) // typed once, echoed once
	// A command line typed and echoed whole, then the same digits as
	// the command's output: output, not echo.
	e.typed([]byte("printf 4111111111111111\r"))
	step("printf 4111111111111111", "4111111111111111", true)
	step("\r\n4111", "4111", false)
	// Digits typed with echo off: what the target prints after them,
	// the same digits included, is not echo.
	e.typed([]byte("0123456789"))
	step("4", "4", false)
	// The keys kept are the last maxTyped.
	e.typed(make([]byte, 2*maxTyped))
	if len(e.keys) != maxTyped {
		t.Fatalf("kept %d keys", len(e.keys))
	}
}

// Keys a terminal sends as escape sequences (Delete, Ctrl-arrows, Home
// and End, function keys, the markers around a paste) come back as
// editing, never as themselves: their digits must not wait for an echo
// and hold up the keys typed after them, even split across writes.
func TestTypedEchoSkipsKeySequences(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, keys, out, tail string }{
		{"delete", "x\x1b[D\x1b[3~ 4", "x\b\x1b[K 4", "4"},
		{"ctrl-right", "x\x1b[1;5C 4", "x 4", "4"},
		{"end", "x\x1b[4~ 45", "x 45", "45"},
		{"f5", "\x1b[15~ 1", " 1", "1"},
		{"application arrow", "x\x1bOD 4", "x 4", "4"},
		{"alt-digit", "\x1b3 4", " 4", "4"},
		{"paste", "\x1b[200~ 1234\x1b[201~ 5", " 1234 5", "5"},
		{"cut short", "\x1b[1\x1b[3~ 4", " 4", "4"},
	} {
		var e typedEcho
		for i := range len(c.keys) { // one byte a write: sequences split
			e.typed([]byte{c.keys[i]})
		}
		e.saw([]byte(c.out))
		if !e.echoed([]byte(c.tail)) {
			t.Errorf("%s: keys %q, output %q: %q is not echo (keys left %q)", c.name, c.keys, c.out, c.tail, e.keys)
		}
	}
}

// refEcho is typedEcho as first written, a key at a time: the reference
// that the fast paths of typed (a run of keys outside escape sequences
// at once) and saw (stop once no key is left) must match.
type refEcho struct {
	keys []byte
	run  int
	seq  typedEcho // only its seq and inSeq
}

func (r *refEcho) typed(p []byte) {
	for _, b := range p {
		if !r.seq.inSeq(b) {
			r.keys = append(r.keys, b)
		}
	}
	if over := len(r.keys) - maxTyped; over > 0 {
		r.keys = r.keys[:copy(r.keys, r.keys[over:])]
	}
}

func (r *refEcho) saw(p []byte) {
	k := 0
	for _, b := range p {
		for k < len(r.keys) && r.keys[k] != b && !isDigit(r.keys[k]) {
			k++
		}
		if k < len(r.keys) && r.keys[k] == b {
			k++
			r.run++
		} else {
			r.run = 0
		}
	}
	r.keys = r.keys[:copy(r.keys, r.keys[k:])]
}

// TestTypedEchoMatchesReference drives typedEcho and the reference with
// the same random keys and output, escape sequences, digits and long
// writes among them, and compares what they keep after every call.
func TestTypedEchoMatchesReference(t *testing.T) {
	t.Parallel()
	alphabet := []byte("\x1b[O~;0123456789ab \r\x7f\x03AD\x00\xff")
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 2000 {
		var e typedEcho
		var r refEcho
		for call := range 20 {
			n := rng.IntN(8)
			if rng.IntN(10) == 0 {
				n = rng.IntN(3 * maxTyped)
			}
			p := make([]byte, n)
			for i := range p {
				p[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if rng.IntN(2) == 0 {
				e.typed(p)
				r.typed(p)
			} else {
				e.saw(p)
				r.saw(p)
			}
			if !bytes.Equal(e.keys, r.keys) || e.run != r.run || e.seq != r.seq.seq {
				t.Fatalf("round %d call %d: keys %q run %d seq %d, reference keys %q run %d seq %d", round, call, e.keys, e.run, e.seq, r.keys, r.run, r.seq.seq)
			}
		}
	}
}

// BenchmarkTypedEcho is the echo tracker's cost in a bulk transfer
// through a terminal: 32 KiB writes of binary data typed, then output.
func BenchmarkTypedEcho(b *testing.B) {
	p := make([]byte, 32<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	b.Run("typed", func(b *testing.B) {
		var e typedEcho
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			e.typed(p)
		}
	})
	b.Run("saw", func(b *testing.B) {
		var e typedEcho
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			e.saw(p)
		}
	})
}
