package pgproxy

import (
	"crypto/md5"
	"fmt"
	"testing"

	"github.com/postern/postern/mask"
)

// mayHoldPAN lets through every value in which the masker finds a card
// number: it only saves the scan of values that cannot hold one.
func TestMayHoldPANNeverHidesOne(t *testing.T) {
	t.Parallel()
	const pan = "4111111111111111"
	for _, v := range []string{
		pan, "4111 1111 1111 1111", "4111-1111-1111-1111", "%B" + pan + "^", pan + "D2512",
		"4111\x1b[31m111111111111", "4111\x00111111111111", "4111\u200b111111111111", "12\x01" + pan,
		"card: " + pan + ".",
	} {
		if _, n := mask.MaskText(nil, []byte(v), mask.ModeFull); n == 0 || !mayHoldPAN([]byte(v)) {
			t.Errorf("%q: the masker finds %d card numbers, mayHoldPAN says %v", v, n, mayHoldPAN([]byte(v)))
		}
	}
	for _, v := range []string{"c4ca4238a0b923820dcc509a6f75849b", "row 12345", "2026-12-06 00:39:37.123456+00", "order 123456789012x"} {
		if mayHoldPAN([]byte(v)) {
			t.Errorf("%q: scanned although it holds no 13 digits in a row", v)
		}
	}
}

// FuzzMayHoldPAN holds mayHoldPAN to the masker: no value in which the
// masker finds a card number is skipped.
func FuzzMayHoldPAN(f *testing.F) {
	f.Add([]byte("4111 1111-1111 1111"))
	f.Add([]byte("a4111111111111111\x1b[m"))
	f.Fuzz(func(t *testing.T, v []byte) {
		for _, d := range []mask.Detect{mask.DetectBrands, mask.DetectLuhn} {
			if _, n := d.MaskText(nil, v, mask.ModeFull); n > 0 && !mayHoldPAN(v) {
				t.Fatalf("%q: the masker (%v) finds a card number, mayHoldPAN says none", v, d)
			}
		}
	})
}

// BenchmarkMayHoldPAN: the check every value of every row passes through,
// on md5 sums in hex (different ones: one value over and over would let
// the branch predictor learn it).
func BenchmarkMayHoldPAN(b *testing.B) {
	vals := make([][]byte, 1024)
	for i := range vals {
		vals[i] = fmt.Appendf(nil, "%x", md5.Sum(fmt.Appendf(nil, "%d", i)))
	}
	b.SetBytes(32)
	n := 0
	for i := range b.N {
		if mayHoldPAN(vals[i%len(vals)]) {
			n++ // about one in 25 has 13 digits in a row
		}
	}
	if b.N >= len(vals) && n > b.N/10 {
		b.Fatalf("%d of %d md5 sums may hold a card number", n, b.N)
	}
}
