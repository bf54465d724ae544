package mask

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestEscapeAbortRandom holds the scanner to the reference on streams of
// digits and escape sequences cut short by CAN, SUB, ESC, ignored and
// other controls, short and committed (over 64 bytes), streamed in
// random pieces.
func TestEscapeAbortRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	n := 4000
	if testing.Short() {
		n = 500
	}
	for range n {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			switch rng.IntN(4) {
			case 0:
				b.WriteString(pick("4111", "1111", "5555", "4444", "41111111", "11111111", "4111111111111111", "0950022", "32551"))
			case 1:
				b.WriteString(pick(" ", "-", "", "x", "\b", "\x00", "\x07", "\x18", "\x1a", "\x7f", "\x03", "\n"))
			default:
				b.WriteString("\x1b")
				b.WriteString(pick("", "\x00", "\x07", "\x1b", "\x18"))
				b.WriteString(pick("[", "]0;", "P", "#", "(", "", "7", "\x80"))
				b.WriteString(strings.Repeat(pick("1;", "a", "\x00", "\x07", " 4111", "1111"), rng.IntN(50)))
				b.WriteString(pick("m", "\x07", "\x1b\\", "\x18", "\x1a", "\x1b", "\x1b[m", "\n", "\b", "\x00", "", "\x80"))
			}
		}
		in := []byte(b.String())
		for _, input := range []bool{false, true} {
			for _, d := range []Detect{DetectBrands, DetectLuhn} {
				cfg := Config{Mode: ModeFirst6Last4, Detect: d, Input: input}
				got, want := maskWith(in, cfg), refMaskWith(in, cfg)
				if !bytes.Equal(got, want) {
					t.Fatalf("%+v: differs from reference\n in: %q\ngot: %q\nref: %q", cfg, in, got, want)
				}
				if s := streamWith(t, in, randomCuts(rng, len(in)), cfg); !bytes.Equal(s, got) {
					t.Fatalf("%+v: streamed differs\n in: %q\ngot: %q\nwant %q", cfg, in, s, got)
				}
			}
		}
	}
}
