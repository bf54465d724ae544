package mask

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkSkimWorstCPU runs BenchmarkSkimWorst's inputs through the exact
// scanner, skim with its AVX2 loop and skim with skimRun8 alone, in turns
// within each iteration, and reports each one's MB/s of thread CPU time
// (exact-, avx2-, go-MB/s), and skim's time over the exact scanner's
// (avx2/exact, go/exact): ratios taken in the same minutes, which load
// on a shared machine disturbs far less than wall-clock figures.
func BenchmarkSkimWorstCPU(b *testing.B) {
	for _, tc := range skimWorstCases {
		in := skimWorst(tc.pass, tc.passLen, tc.prefix, tc.strch)
		b.Run(tc.name, func(b *testing.B) { benchSkimCPU(b, in) })
	}
	b.Run("text", func(b *testing.B) { benchSkimCPU(b, benchText()) })
	for _, d := range skimDenseCases {
		in := bytes.Repeat([]byte(d.unit), (8<<20)/len(d.unit))
		b.Run("dense-"+d.name, func(b *testing.B) { benchSkimCPU(b, in) })
	}
}

// benchSkimCPU is one of BenchmarkSkimWorstCPU's inputs.
func benchSkimCPU(b *testing.B, in []byte) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, len(in))
	var spent [3]time.Duration
	run := func(k int) {
		copy(buf, in)
		t0 := threadCPU(b)
		s := scanner{exact: k == 0}
		s.scan(buf, 0, true)
		spent[k] += threadCPU(b) - t0
	}
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		run(0)
		run(1)
		withoutAVX2(func() { run(2) })
	}
	mb := float64(b.N) * float64(len(in)) / 1e6
	b.ReportMetric(mb/spent[0].Seconds(), "exact-MB/s")
	b.ReportMetric(mb/spent[1].Seconds(), "avx2-MB/s")
	b.ReportMetric(mb/spent[2].Seconds(), "go-MB/s")
	b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "avx2/exact")
	b.ReportMetric(spent[2].Seconds()/spent[0].Seconds(), "go/exact")
}

// skimDenseCases are text made of one short unit repeated, each unit
// making skimAVX2 hand back to Go, or take its slowest paths, again and
// again: sequences it does not read itself, CSI sequences that straddle
// its blocks, a control every few bytes.
var skimDenseCases = []struct{ name, unit string }{
	{"esc7", "\x1b7"},
	{"nf", "a\x1b(Bb"},
	{"csi30", "\x1b[" + strings.Repeat("1", 30) + "m"},
	{"csi31x", "x\x1b[" + strings.Repeat("1", 30) + "m"},
	{"nul", "1\x00"},
	{"del", "ab\x7f"},
	{"esc-digit", "1\x1b7"},
	{"ht-digit", "1\t2\x1b[m"},
	{"can-esc", "\x18\x1b7"},
	{"utf8", "caf\xc3\xa9 12 "},
	{"can6-esc", "\x18\x18\x18\x18\x18\x18\x1b7"},
	{"ht7-nul", "\t\t\t\t\t\t\t\x00"},
	{"crlf-esc", "\r\n\x1b7"},
	{"crlf-csi", "\r\n\x1b[m"},
	{"block-esc", strings.Repeat("x", 32) + "\x1b7"},
	{"block-nf", strings.Repeat("ab 1 ", 7) + "\x1b(B"},
	{"block-nul", strings.Repeat("ab 1 ", 7) + "\x00"},
}
