package mask

import (
	"bytes"
	"strings"
	"testing"
)

// skim3CPUCases are text crafted against skimAVX2's whole-block passes:
// an ESC '[' in every block whose sequence never ends in it (the CSI
// test made and thrown away each block), sequences that straddle blocks,
// and digits that reach minDigits in every block and step.
var skim3CPUCases = []struct{ name, unit string }{
	{"csi40", "\x1b[" + strings.Repeat(";", 40) + "m"},
	{"csi28", "\x1b[" + strings.Repeat(";", 28) + "m"},
	{"csi29-digits", "1\x1b[" + strings.Repeat("1", 29) + "m"},
	{"csi-ctl", "\x1b[m\x00"},
	{"csi-straddle", strings.Repeat("\x1b[m", 7) + "\x1b[" + strings.Repeat(";", 13) + "m"},
	{"csi-then-nul", strings.Repeat("\x1b[m", 10) + "\x00"},
	{"csi-then-esc7", strings.Repeat("\x1b[1m", 7) + "\x1b7"},
	{"digits31", strings.Repeat("1", 31) + ":"},
	{"digits13", "1234567890123:"},
}

// BenchmarkSkim3CPU runs skim3CPUCases as BenchmarkSkimWorstCPU does.
func BenchmarkSkim3CPU(b *testing.B) {
	for _, d := range skim3CPUCases {
		in := bytes.Repeat([]byte(d.unit), (8<<20)/len(d.unit))
		b.Run(d.name, func(b *testing.B) { benchSkimCPU(b, in) })
	}
}
