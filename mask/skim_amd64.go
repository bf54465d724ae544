package mask

// hasSkimAVX2 says whether skimAVX2 may run on this processor: it needs
// AVX2 with the operating system saving the YMM registers, and POPCNT.
var hasSkimAVX2 = cpuHasAVX2()

// cpuHasAVX2 asks the processor (CPUID, XGETBV) whether it has AVX2 and
// POPCNT and the operating system saves the YMM registers; the package
// imports only the standard library, which keeps its own answer internal.
func cpuHasAVX2() bool

// skimAVX2 is skim's loop (skimRun8, and word for some controls) on the
// 32-byte blocks of b from j. Most blocks pass whole by a coarser test
// (no control other than HT, LF, VT, FF, CR, CAN and SUB and the ESCs of
// CSI sequences that lie whole in the block, whose bytes then join the
// stretch; fewer than minDigits digits in cnt and the block together, or
// in cnt and the block before its first break and in the block after it;
// a stretch at most skimSpan-24 bytes long at its start); the others go
// through skimRun8's steps on the block's bit masks, a step with a break
// passing when cnt and its digits before the break stay below minDigits.
// A step with a control in it goes on as word does
// (HT, LF, VT, FF, CR, CAN and SUB being breaks) when its first other
// control is the ESC of a CSI sequence whose parameters end within 32
// bytes of its '['; anything else, and a block that does not fit in b,
// ends the loop. It returns a
// state from which skim's loop in Go goes on (skimRun8, then word) to the
// same output as the exact scanner's. It needs
// 0 <= j <= len(b) and hs <= j, and reads no byte outside b[j:].
//
//go:noescape
func skimAVX2(b []byte, j, hs, cnt int) (int, int, int)
