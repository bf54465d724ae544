package mask

import (
	"math/rand/v2"
	"testing"
)

// skimAlphabet weighs the bytes skimRun tells apart: digits, the bytes
// that join a stretch, breaks (HT to CR, 0x3a and more, 0x80 and more),
// other controls and DEL.
var skimAlphabet = []byte("0123456789012345678901234567890123456789  --  --.:|xZ\t\n\v\f\r\x00\x1b\x18\x1a\x7f\x80\xc3\xff\x1f !/")

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

// checkSkimRun fails unless skimRun and skimRun8 agree on b from j, and
// skimAVX2 agrees with skimRun8 on the whole 32-byte blocks from j.
func checkSkimRun(t *testing.T, b []byte, j, hs, cnt int) {
	t.Helper()
	wj, whs, wcnt := skimRun8(b, j, hs, cnt)
	if gj, ghs, gcnt := skimRun(b, j, hs, cnt); gj != wj || ghs != whs || gcnt != wcnt {
		t.Fatalf("%q from %d (hs %d, cnt %d): skimRun = %d, %d, %d; skimRun8 = %d, %d, %d",
			b, j, hs, cnt, gj, ghs, gcnt, wj, whs, wcnt)
	}
	if !hasSkimAVX2 {
		return
	}
	aj, ahs, acnt := skimAVX2(b, j, hs, cnt)
	e := j + (len(b)-j)/32*32 // the end of the last whole block
	if pj, phs, pcnt := skimRun8(b[:e], j, hs, cnt); pj != aj || phs != ahs || pcnt != acnt {
		t.Fatalf("%q from %d (hs %d, cnt %d): skimAVX2 = %d, %d, %d; skimRun8 on its blocks = %d, %d, %d",
			b, j, hs, cnt, aj, ahs, acnt, pj, phs, pcnt)
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
