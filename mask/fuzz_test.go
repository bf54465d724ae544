package mask

import (
	"bytes"
	"hash/fnv"
	"math/rand/v2"
	"testing"

	"github.com/postern/postern/internal/testenv"
)

// FuzzMask holds Mask and the Writer to the reference matcher:
//   - the output has the input's length, and every byte that changed was a
//     digit that became '*';
//   - the output is what the reference gives, so every PAN the reference
//     finds in the input is masked;
//   - the reference finds no PAN in the output (with '*' counted as a word
//     byte, so that the kept first six or last four digits of a masked PAN
//     do not join their neighbours into a new one);
//   - all of this for terminal output and for typed input (Config.Input);
//   - a Writer fed the input in pieces cut at points derived from the input
//     (in one of the modes, also derived from it) writes the same, and never holds more than MaxHold bytes.
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
		for _, input := range []bool{false, true} {
			for _, mode := range modes {
				got, _ := maskStream(nil, in, mode, input)
				if len(got) != len(in) {
					t.Fatalf("%v: length %d, want %d", mode, len(got), len(in))
				}
				for i := range in {
					if got[i] != in[i] && (got[i] != '*' || in[i] < '0' || in[i] > '9') {
						t.Fatalf("%v: byte %d changed from %q to %q", mode, i, in[i], got[i])
					}
				}
				if want := refMaskStream(in, mode, input); !bytes.Equal(got, want) {
					t.Fatalf("%v (input %v): differs from reference\n in: %q\ngot: %q\nref: %q", mode, input, in, got, want)
				}
				if pans := testenv.RefJudge(got, true, input).PANs; len(pans) > 0 {
					t.Fatalf("%v (input %v): PAN at %v survives in %q", mode, input, pans[0], got)
				}
				if mode != modes[h.Sum64()%3] || input != (h.Sum64()>>8&1 == 1) {
					continue // one streamed mode per input keeps the fuzzer fast
				}
				if s := streamAs(t, in, cuts, mode, input); !bytes.Equal(s, got) {
					t.Fatalf("%v (input %v): cuts %v change the output\n in: %q\ngot: %q\nwant %q", mode, input, cuts, in, s, got)
				}
			}
		}
	})
}
