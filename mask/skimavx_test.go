package mask

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// skimAlphabet weighs the bytes skimRun tells apart: digits, the bytes
// that join a stretch, breaks (HT to CR, 0x3a and more, 0x80 and more),
// other controls and DEL.
var skimAlphabet = []byte("0123456789012345678901234567890123456789  --  --.:|xZ\t\n\v\f\r\x00\x1b\x18\x1a\x7f\x80\xc3\xff\x1f !/\x1b\x1b[[[;;;mmm@~\x7e")

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

// skimTrail returns the states skim's loop passes through from j, in
// order: before each step skimRun8 takes and each word it calls, up to
// where skimRun8 runs out of bytes or word stops.
func skimTrail(b []byte, j, hs, cnt int) [][3]int {
	trail := [][3]int{{j, hs, cnt}}
	for j+8 <= len(b) {
		nj, nhs, ncnt := skimRun8(b[:j+8], j, hs, cnt)
		if nj == j {
			var ok bool
			if nj, nhs, ncnt, ok = word(b, j, hs, cnt); !ok {
				break
			}
		}
		j, hs, cnt = nj, nhs, ncnt
		trail = append(trail, [3]int{j, hs, cnt})
	}
	return trail
}

// onTrail fails unless state is one of trail's, and returns its index.
func onTrail(t *testing.T, trail [][3]int, state [3]int, what string) int {
	t.Helper()
	for k, st := range trail {
		if st == state {
			return k
		}
	}
	t.Fatalf("%s returns %v, not a state of skim's loop (%v)", what, state, trail)
	return 0
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

// checkSkimRun fails unless skimRun returns a state skim's loop reaches
// in Go alone, and one where that loop's next step goes to word (or the
// end of b); and unless skimAVX2 returns a state of that loop at least as
// far on as skimRun8 on the whole 32-byte blocks from j.
func checkSkimRun(t *testing.T, b []byte, j, hs, cnt int) {
	t.Helper()
	trail := skimTrail(b, j, hs, cnt)
	gj, ghs, gcnt := skimRun(b, j, hs, cnt)
	onTrail(t, trail, [3]int{gj, ghs, gcnt}, fmt.Sprintf("%q from %d (hs %d, cnt %d): skimRun", b, j, hs, cnt))
	if gj+8 <= len(b) {
		if sj, _, _ := skimRun8(b, gj, ghs, gcnt); sj != gj {
			t.Fatalf("%q from %d: skimRun returns %d, where skimRun8 goes on", b, j, gj)
		}
	}
	if !hasSkimAVX2 {
		return
	}
	aj, ahs, acnt := skimAVX2(b, j, hs, cnt)
	onTrail(t, trail, [3]int{aj, ahs, acnt}, fmt.Sprintf("%q from %d (hs %d, cnt %d): skimAVX2", b, j, hs, cnt))
	e := j + (len(b)-j)/32*32 // the end of the last whole block
	if pj, _, _ := skimRun8(b[:e], j, hs, cnt); aj < pj {
		t.Fatalf("%q from %d (hs %d, cnt %d): skimAVX2 stops at %d, before skimRun8 on its blocks (%d)",
			b, j, hs, cnt, aj, pj)
	}
}

// TestSkimAVX2 holds skimRun with its AVX2 loop to skimRun8 on random
// buffers: every length to 200 and long ones, every start, near the last
// block, with stretches near 13 digits and near skimSpan bytes.
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

// FuzzSkimAVX2 holds skimRun with its AVX2 loop to skimRun8 on any bytes,
// from any start, stretch start and digit count.
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
