package mask

import (
	"bytes"
	"hash/fnv"
	"math/rand/v2"
	"testing"
)

// FuzzMask holds Mask and the Writer, under both detections, to the
// reference matcher:
//   - the output has the input's length, and every byte that changed was a
//     digit that became '*';
//   - the output is what the reference gives, so every PAN the reference
//     finds in the input is masked;
//   - the reference finds no PAN in the output (with '*' counted as a word
//     byte, so that the kept first six or last four digits of a masked PAN
//     do not join their neighbours into a new one);
//   - a Writer fed the input in pieces cut at points derived from the input
//     (in one of the modes and detections, also derived from it) writes the
//     same, and never holds more than MaxHold bytes.
func FuzzMask(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add([]byte(c.In))
	}
	f.Add([]byte("4111\x1b[31m 1111\x1b]0;4111111111111111\x07 1111-1111 1111 \x1b[0m"))
	f.Add([]byte("%B5555555555554444^X^1 ;4111111111111111=1\x1bP 378282246310005\x1b\\"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h := fnv.New64a()
		h.Write(in)
		rng := rand.New(rand.NewPCG(h.Sum64(), 0))
		cuts := randomCuts(rng, len(in))
		streamed := h.Sum64() % 6 // one streamed mode and detection per input keeps the fuzzer fast
		for i, d := range []Detect{DetectBrands, DetectLuhn} {
			for j, mode := range modes {
				got, _ := d.Mask(nil, in, mode)
				if len(got) != len(in) {
					t.Fatalf("%v %v: length %d, want %d", d, mode, len(got), len(in))
				}
				for i := range in {
					if got[i] != in[i] && (got[i] != '*' || in[i] < '0' || in[i] > '9') {
						t.Fatalf("%v %v: byte %d changed from %q to %q", d, mode, i, in[i], got[i])
					}
				}
				if want := refMaskDetect(in, mode, d); !bytes.Equal(got, want) {
					t.Fatalf("%v %v: differs from reference\n in: %q\ngot: %q\nref: %q", d, mode, in, got, want)
				}
				if pans := refPANs(got, true, d); len(pans) > 0 {
					t.Fatalf("%v %v: PAN at %v survives in %q", d, mode, pans[0], got)
				}
				if uint64(i*3+j) != streamed {
					continue
				}
				if s := streamWith(t, in, cuts, Config{Mode: mode, Detect: d}); !bytes.Equal(s, got) {
					t.Fatalf("%v %v: cuts %v change the output\n in: %q\ngot: %q\nwant %q", d, mode, cuts, in, s, got)
				}
			}
		}
	})
}
