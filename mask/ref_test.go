package mask

import (
	"bytes"
	"testing"

	"github.com/postern/postern/internal/testenv"
)

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

// stream writes the pieces of in cut at cuts to a Writer without deadline
// and closes it, checking the hold cap after every Write.
func stream(t testing.TB, in []byte, cuts []int, mode Mode) []byte {
	t.Helper()
	return streamWith(t, in, cuts, Config{Mode: mode})
}

// streamWith is stream with cfg (its Deadline is set to -1).
func streamWith(t testing.TB, in []byte, cuts []int, cfg Config) []byte {
	t.Helper()
	var out bytes.Buffer
	cfg.Deadline = -1
	w := NewWriter(&out, cfg)
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if n, err := w.Write(in[prev:c]); n != c-prev || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if len(w.buf) > MaxHold {
			t.Fatalf("holding %d bytes > MaxHold", len(w.buf))
		}
		prev = c
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
