package mask

import "github.com/postern/postern/internal/testenv"

// refMask masks src the reference way, finding PANs as DetectBrands does.
func refMask(src []byte, mode Mode) []byte { return refMaskDetect(src, mode, DetectBrands) }

// refPANs is the reference matcher for detection d.
func refPANs(b []byte, starWord bool, d Detect) [][]int {
	if d == DetectBrands {
		return testenv.RefPANs(b, starWord)
	}
	return testenv.RefPANsLuhn(b, starWord)
}

// refMaskDetect masks src the reference way, finding PANs as d does.
func refMaskDetect(src []byte, mode Mode, d Detect) []byte {
	out := append([]byte(nil), src...)
	for _, p := range refPANs(src, false, d) {
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
	return out
}
