package mask

import "github.com/postern/postern/internal/testenv"

// refMask masks src, terminal output, the reference way.
func refMask(src []byte, mode Mode) []byte { return refMaskStream(src, mode, false) }

// refMaskStream masks src, output or typed input, the reference way:
// every PAN as mode says, and the digits forced by the hold bound whole.
func refMaskStream(src []byte, mode Mode, input bool) []byte {
	out := append([]byte(nil), src...)
	res := testenv.RefJudge(src, false, input)
	for _, p := range res.PANs {
		lo, hi := 0, len(p)
		switch mode {
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
