package mask

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
)

// withoutAVX2 runs f with skimRun's AVX2 loop off, as on a processor
// without AVX2. It changes a package variable: callers must not be
// parallel tests (sequential tests end before parallel ones start).
func withoutAVX2(f func()) {
	was := hasSkimAVX2
	hasSkimAVX2 = false
	defer func() { hasSkimAVX2 = was }()
	f()
}

// TestSkimNoAVX2 runs skim's fallback, skimRun8 alone, on this machine
// too: the boundary cases and the benchmark text, whole and in writes,
// as a processor without AVX2 would. Not parallel: see withoutAVX2.
func TestSkimNoAVX2(t *testing.T) {
	withoutAVX2(func() {
		for _, c := range skimCases {
			in := []byte(filler + c + filler)
			checkSkim(t, in, false, false)
		}
		data := benchText()[:1<<20]
		want := maskExact(data, Config{}, true)
		if !bytes.Equal(maskExact(data, Config{}, false), want) {
			t.Fatal("skim without AVX2 changes the output of Mask")
		}
	})
}

// TestCPUHasAVX2 holds the CPUID/XGETBV check to the kernel's view: Linux
// lists avx2 in /proc/cpuinfo only when the processor has it and the
// kernel saves the YMM registers (it clears it under noxsave).
func TestCPUHasAVX2(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/cpuinfo")
	}
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip(err)
	}
	var flags []string
	for _, l := range strings.Split(string(info), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = strings.Fields(v)
			break
		}
	}
	has := func(f string) bool {
		for _, g := range flags {
			if g == f {
				return true
			}
		}
		return false
	}
	if want := has("avx2") && has("popcnt") && has("avx"); hasSkimAVX2 != want {
		t.Fatalf("cpuHasAVX2 = %v, /proc/cpuinfo says %v (flags %v)", hasSkimAVX2, want, flags)
	}
}
