package mask

// hasSkimAVX2 says whether skimAVX2 may run on this processor: it needs
// AVX2 with the operating system saving the YMM registers, and POPCNT.
var hasSkimAVX2 = cpuHasAVX2()

// cpuHasAVX2 asks the processor (CPUID, XGETBV) whether it has AVX2 and
// POPCNT and the operating system saves the YMM registers; the package
// imports only the standard library, which keeps its own answer internal.
func cpuHasAVX2() bool

// skimAVX2 is skimRun8 on the 32-byte blocks of b from j: it returns
// what skimRun8 returns on b[:j+32*((len(b)-j)/32)]. Most blocks pass
// whole by a coarser test (no control other than HT, LF, VT, FF and CR,
// fewer than minDigits digits in cnt and the block together, a stretch
// at most skimSpan-24 bytes long at its start); the others go through
// skimRun8's steps on the block's bit masks. It needs 0 <= j <= len(b)
// and hs <= j, and reads no byte outside b[j:].
//
//go:noescape
func skimAVX2(b []byte, j, hs, cnt int) (int, int, int)
