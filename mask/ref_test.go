package mask

import (
	"testing"

	"github.com/postern/postern/internal/testenv"
)

// refJudge judges b the reference way, reading it as cfg's Detect and
// Input say.
func refJudge(b []byte, starWord bool, cfg Config) testenv.RefResult {
	return testenv.RefJudge(b, testenv.RefOpts{StarWord: starWord, Input: cfg.Input, Luhn: cfg.Detect != DetectBrands})
}

// refMask masks src, terminal output, the reference way, finding PANs as
// DetectBrands does.
func refMask(src []byte, mode Mode) []byte { return refMaskWith(src, Config{Mode: mode}) }

// refMaskDetect masks src, terminal output, the reference way, finding
// PANs as d does.
func refMaskDetect(src []byte, mode Mode, d Detect) []byte {
	return refMaskWith(src, Config{Mode: mode, Detect: d})
}

// refMaskStream masks src, output or typed input, the reference way,
// finding PANs as DetectBrands does.
func refMaskStream(src []byte, mode Mode, input bool) []byte {
	return refMaskWith(src, Config{Mode: mode, Input: input})
}

// refMaskWith masks src the reference way as cfg's Mode, Detect and Input
// say: every PAN as the mode says, and the digits forced by the hold bound
// whole.
func refMaskWith(src []byte, cfg Config) []byte {
	out := append([]byte(nil), src...)
	res := refJudge(src, false, cfg)
	for _, p := range res.PANs {
		lo, hi := 0, len(p)
		switch cfg.Mode {
		case ModeFirst6Last4:
			lo, hi = 6, len(p)-4
		case ModeLast4:
			hi = len(p) - 4
		}
		for _, q := range p[lo:hi] {
			out[q] = '*'
		}
	}
	for _, q := range res.Forced {
		out[q] = '*'
	}
	return out
}

// maskWith is Mask as cfg's Mode, Detect and Input say.
func maskWith(src []byte, cfg Config) []byte {
	got, _ := cfg.Detect.maskStream(nil, src, cfg.Mode, cfg.Input)
	return got
}

// maskStream masks src, output or typed input, finding PANs as
// DetectBrands does.
func maskStream(dst, src []byte, mode Mode, input bool) ([]byte, int) {
	return DetectBrands.maskStream(dst, src, mode, input)
}

// stream writes the pieces of in cut at cuts to a Writer without deadline
// and closes it, checking the hold cap after every Write.
func stream(t testing.TB, in []byte, cuts []int, mode Mode) []byte {
	t.Helper()
	return streamWith(t, in, cuts, Config{Mode: mode})
}

// streamAs is stream for output or, with input set, typed input.
func streamAs(t testing.TB, in []byte, cuts []int, mode Mode, input bool) []byte {
	t.Helper()
	return streamWith(t, in, cuts, Config{Mode: mode, Input: input})
}

// streamWith is stream with cfg (its Deadline is set to -1), skim on.
func streamWith(t testing.TB, in []byte, cuts []int, cfg Config) []byte {
	t.Helper()
	return streamExact(t, in, cuts, cfg, false)
}
