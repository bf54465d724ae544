package mask

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCardShapedAgreesWithMasker checks CardShaped against the masker
// itself: a number it calls safe passes a Writer unchanged under every
// Detect setting, in the sentence a revocation notice puts it in, and one
// it calls card-shaped is masked under DetectLuhn.
func TestCardShapedAgreesWithMasker(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 24))
	nums := []uint64{0, 1, 999_999_999_999, 1_000_000_000_000, 4111111111111111, 1<<63 - 1, 1<<64 - 1}
	for range 5000 {
		nums = append(nums, rng.Uint64()>>rng.IntN(30))
	}
	shaped := 0
	for _, n := range nums {
		in := fmt.Appendf(nil, "certificate serial %d was revoked\r\n", n)
		for _, d := range []Detect{DetectBrands, DetectLuhn} {
			var out bytes.Buffer
			w := NewWriter(&out, Config{Detect: d, Deadline: -1})
			if _, err := w.Write(in); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			changed := !bytes.Equal(out.Bytes(), in)
			if !CardShaped(n) && changed {
				t.Errorf("%d: CardShaped says no, detect %d masks it: %q", n, d, out.Bytes())
			}
			if CardShaped(n) && d == DetectLuhn && !changed {
				t.Errorf("%d: CardShaped says yes, DetectLuhn leaves it", n)
			}
		}
		if CardShaped(n) {
			shaped++
		}
	}
	// About one in ten numbers of 13 to 19 digits passes the Luhn check.
	if shaped < len(nums)/20 {
		t.Errorf("only %d of %d numbers card-shaped: the check is not looking", shaped, len(nums))
	}
}
