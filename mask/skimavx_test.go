package mask

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// skimAlphabet weighs the bytes skimRun tells apart: digits, the bytes
// that join a stretch, breaks (HT to CR, 0x3a and more, 0x80 and more),
// other controls (ignored ones next to CAN and SUB, erases, kills) and
// DEL.
var skimAlphabet = []byte("0123456789012345678901234567890123456789  --  --.:|xZ\t\n\v\f\r\x00\x1b\x18\x1a\x7f\x80\xc3\xff\x1f !/\x1b\x1b[[[;;;mmm@~\x7e\x19\x1c\x1e\x08\x03\x15")

// skimCase returns a random buffer for skimRun and where to start in it:
// bytes from skimAlphabet, mostly digits or mostly breaks, now and then a
// stretch without a break close to skimSpan long.
func skimCase(rng *rand.Rand) (b []byte, j, hs, cnt int) {
	n := rng.IntN(201)
	if rng.IntN(8) == 0 {
		n = rng.IntN(3000)
	}
	b = make([]byte, n)
	digits := rng.IntN(4) // how often a digit, of 4
	for k := range b {
		switch {
		case rng.IntN(4) < digits:
			b[k] = '0' + byte(rng.IntN(10))
		case rng.IntN(64) == 0:
			b[k] = byte(rng.IntN(256))
		default:
			b[k] = skimAlphabet[rng.IntN(len(skimAlphabet))]
		}
	}
	if n > skimSpan && rng.IntN(2) == 0 { // a long stretch of separators
		s := rng.IntN(n - skimSpan + 1)
		for k := s; k < min(n, s+skimSpan-40+rng.IntN(80)); k++ {
			b[k] = " -"[rng.IntN(2)]
			if rng.IntN(40) == 0 {
				b[k] = '7'
			}
		}
	}
	for range rng.IntN(1 + n/16) { // CSI sequences, whole or not
		seq := csiCase(rng)
		copy(b[rng.IntN(n+1):], seq)
	}
	j = rng.IntN(n + 1)
	if rng.IntN(2) == 0 { // near the last block
		j = max(0, n-32-rng.IntN(16))
	}
	hs = j - rng.IntN(min(j, 8)+1)
	if rng.IntN(8) == 0 {
		hs = j - rng.IntN(j+1)
	}
	return b, j, hs, rng.IntN(minDigits)
}

// skimLoop is skim's loop from b[0], a fresh scanner's start, with run
// as its inner loop: it returns the stretch start it hands back from
// (where word stopped it, or where it ran out of bytes).
func skimLoop(b []byte, run func([]byte, int, int, int) (int, int, int)) int {
	j, hs, cnt := 0, 0, 0
	for {
		j, hs, cnt = run(b, j, hs, cnt)
		if j+8 > len(b) {
			return hs
		}
		var ok bool
		if j, hs, cnt, ok = word(b, j, hs, cnt); !ok {
			return hs
		}
	}
}

// skimOutput is the output of a fresh scanner on b when skim's loop, with
// run as its inner loop, hands back at hs and the exact scanner reads the
// rest from there, with the prev and prev2 skim sets.
func skimOutput(b []byte, hs int, input bool) []byte {
	s := scanner{input: input, exact: true}
	out := append([]byte(nil), b...)
	s.scan(out, s.handBack(b, 0, hs), true)
	return out
}

// csiCase returns a CSI sequence, mostly well formed: parameters and
// intermediates of 0 to 40 bytes, now and then a byte they may not hold,
// a final byte or none.
func csiCase(rng *rand.Rand) []byte {
	seq := []byte("\x1b[")
	for range rng.IntN(1 + rng.IntN(41)) {
		seq = append(seq, byte(0x20+rng.IntN(0x20)))
	}
	if rng.IntN(8) == 0 {
		seq = append(seq, byte(rng.IntN(256)))
	}
	if rng.IntN(8) != 0 {
		seq = append(seq, byte(0x40+rng.IntN(0x3f)))
	}
	return seq
}

// checkSkimRun fails unless skimAVX2, from j with stretch start hs and
// cnt digits, returns a state within bounds that skimModel accepts; and
// unless skim's loop on b[j:], with skimRun (the assembly, then the Go
// loop), skimRun8 (the Go loop alone) or the Go loop for a few steps and
// then skimRun (so that the assembly starts inside a stretch), hands back
// where the exact scanner reading the rest gives the exact scanner's
// output.
func checkSkimRun(t *testing.T, b []byte, j, hs, cnt int) {
	t.Helper()
	if hasSkimAVX2 {
		aj, ahs, acnt := skimAVX2(b, j, hs, cnt)
		if aj < j || aj > len(b) || ahs < hs || ahs > aj || acnt < 0 || acnt >= minDigits {
			t.Fatalf("%q from %d (hs %d, cnt %d): skimAVX2 returns %d, %d, %d", b, j, hs, cnt, aj, ahs, acnt)
		}
		if len(b)-j < 32 && [3]int{aj, ahs, acnt} != [3]int{j, hs, cnt} {
			t.Fatalf("%q from %d: skimAVX2 moves with no whole block", b, j)
		}
		if j-hs <= skimSpan { // as skim starts it: a longer one may pass a step that ends on a break
			if err := skimModel(b, j, hs, cnt, aj, ahs, acnt); err != nil {
				t.Fatalf("%q from %d (hs %d, cnt %d): skimAVX2: %v", b, j, hs, cnt, err)
			}
		}
	}
	b = b[j:]
	input := cnt%2 == 0
	want := maskExact(b, Config{Input: input}, true)
	steps := 1 + hs%5
	mixed := func(b []byte, j, hs, cnt int) (int, int, int) {
		j, hs, cnt = skimRun8(b[:min(len(b), j+8*steps)], j, hs, cnt)
		return skimRun(b, j, hs, cnt)
	}
	for k, run := range []func([]byte, int, int, int) (int, int, int){skimRun, skimRun8, mixed} {
		hs := skimLoop(b, run)
		if got := skimOutput(b, hs, input); !bytes.Equal(got, want) {
			t.Fatalf("%q: skim's loop (%d) hands back at %d: output\n%q, want\n%q", b, k, hs, got, want)
		}
	}
	if got := maskExact(b, Config{Input: input}, false); !bytes.Equal(got, want) {
		t.Fatalf("%q: output with skim\n%q, want\n%q", b, got, want)
	}
}

// TestSkimAVX2 holds skim's loop with the AVX2 loop in it to the exact
// scanner's output on random buffers: every length to 200 and long ones,
// every start, near the last block, with stretches near 13 digits and
// near skimSpan bytes.
func TestSkimAVX2(t *testing.T) {
	t.Parallel()
	if !hasSkimAVX2 {
		t.Log("no AVX2 here: skimRun is skimRun8")
	}
	rng := rand.New(rand.NewPCG(18, 32))
	for range 200000 {
		b, j, hs, cnt := skimCase(rng)
		checkSkimRun(t, b, j, hs, cnt)
	}
	// A stretch close to skimSpan bytes long, then a control.
	for n := skimSpan - 40; n < skimSpan+40; n++ {
		for _, ctl := range []string{"\x1b[0m", "\r", "\x00", "12\n"} {
			b := []byte("x" + strings.Repeat(" ", n) + ctl + strings.Repeat("abc 123 ", 8))
			for j := 1; j < 40; j += 5 {
				checkSkimRun(t, b, j, 1, rng.IntN(minDigits))
			}
		}
	}
	// Every start and alignment in one buffer, its end on a guarded page.
	for range 50 {
		b, _, _, _ := skimCase(rng)
		b = guarded(t, b)
		for j := range len(b) + 1 {
			checkSkimRun(t, b, j, j-rng.IntN(min(j, 40)+1), rng.IntN(minDigits))
		}
	}
}

// FuzzSkimAVX2 holds skimAVX2 to its bounds on a guarded page, and skim's
// loop with it to the exact scanner's output, on any bytes from any start
// (stretch start and digit count for the bounds).
func FuzzSkimAVX2(f *testing.F) {
	f.Add([]byte("2024-06-11 10:20:30.123456+00 | t\n 4111 1111 1111 1111 xx"), uint16(0), uint16(0), uint8(0))
	f.Add([]byte("\x1b[01;34mweb02\x1b[0m\n-rw-r--r-- 1 postgres 1073741824 Jun 12 10:34"), uint16(3), uint16(1), uint8(12))
	f.Fuzz(func(t *testing.T, b []byte, j, back uint16, cnt uint8) {
		if len(b) > 4096 {
			return
		}
		jj := int(j) % (len(b) + 1)
		checkSkimRun(t, guarded(t, b), jj, jj-int(back)%(jj+1), int(cnt)%minDigits)
	})
}
