package mask

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
)

// FuzzMask holds Mask and the Writer to the reference matcher:
//   - the output has the input's length, and every byte that changed was a
//     digit that became '*';
//   - the output is what the reference gives, so every PAN the reference
//     finds in the input is masked;
//   - the reference finds no PAN in the output (with '*' counted as a word
//     byte, so that the kept first six or last four digits of a masked PAN
//     do not join their neighbours into a new one);
//   - all of this under both detections, for terminal output and for typed
//     input (Config.Input), in every mode;
//   - a Writer fed the input in pieces cut at points derived from the input
//     (under one of those settings, also derived from it) writes the same,
//     and never holds more than MaxHold bytes.
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
		// Every detection, output and typed input, every mode; one of them,
		// chosen by the input, also streamed, which keeps the fuzzer fast.
		var cfgs []Config
		for _, d := range []Detect{DetectBrands, DetectLuhn} {
			for _, input := range []bool{false, true} {
				for _, mode := range modes {
					cfgs = append(cfgs, Config{Mode: mode, Detect: d, Input: input})
				}
			}
		}
		streamed := int(h.Sum64() % uint64(len(cfgs)))
		for k, cfg := range cfgs {
			name := fmt.Sprintf("%v %v (input %v)", cfg.Detect, cfg.Mode, cfg.Input)
			got := maskWith(in, cfg)
			if len(got) != len(in) {
				t.Fatalf("%s: length %d, want %d", name, len(got), len(in))
			}
			for i := range in {
				if got[i] != in[i] && (got[i] != '*' || in[i] < '0' || in[i] > '9') {
					t.Fatalf("%s: byte %d changed from %q to %q", name, i, in[i], got[i])
				}
			}
			if want := refMaskWith(in, cfg); !bytes.Equal(got, want) {
				t.Fatalf("%s: differs from reference\n in: %q\ngot: %q\nref: %q", name, in, got, want)
			}
			if pans := refJudge(got, true, cfg).PANs; len(pans) > 0 {
				t.Fatalf("%s: PAN at %v survives in %q", name, pans[0], got)
			}
			if k != streamed {
				continue
			}
			if s := streamWith(t, in, cuts, cfg); !bytes.Equal(s, got) {
				t.Fatalf("%s: cuts %v change the output\n in: %q\ngot: %q\nwant %q", name, cuts, in, s, got)
			}
		}
	})
}
