#include "textflag.h"

// The bytes skimAVX2 compares with.
DATA skimConst<>+0(SB)/1, $0x2f // '0'-1
DATA skimConst<>+1(SB)/1, $0x39 // '9'
DATA skimConst<>+2(SB)/1, $0x08 // HT-1
DATA skimConst<>+3(SB)/1, $0x0e // CR+1
DATA skimConst<>+4(SB)/1, $0x20
DATA skimConst<>+5(SB)/1, $0x7f // DEL
GLOBL skimConst<>(SB), RODATA|NOPTR, $8

// func cpuHasAVX2() bool
TEXT ·cpuHasAVX2(SB), NOSPLIT, $0-1
	MOVB  $0, ret+0(FP)
	XORL  AX, AX
	CPUID
	CMPL  AX, $7
	JLT   no
	MOVL  $1, AX
	XORL  CX, CX
	CPUID
	MOVL  CX, R8
	ANDL  $0x18800000, R8 // OSXSAVE, AVX, POPCNT
	CMPL  R8, $0x18800000
	JNE   no
	XORL  CX, CX
	XGETBV
	ANDL  $6, AX // the OS saves XMM and YMM
	CMPL  AX, $6
	JNE   no
	MOVL  $7, AX
	XORL  CX, CX
	CPUID
	BTL   $5, BX // AVX2
	JCC   no
	MOVB  $1, ret+0(FP)

no:
	RET

// func skimAVX2(b []byte, j, hs, cnt int) (int, int, int)
//
// Per 32-byte block, three bit masks from signed byte compares: digits
// (above 0x2f and not above 0x39), breaks (above 0x39, HT to CR, and the
// bytes of 0x80 and more, negative as signed bytes) and other controls
// (below 0x20 but not HT to CR, not negative; and DEL). A block with no
// control, whose digits leave cnt below minDigits (13), starting at most
// skimSpan-24 (1000) bytes after hs, passes whole: hs and cnt follow its
// last break. Any other block goes through skimRun8's steps on the masks,
// eight bits at a time, and the loop ends where the first of them stops.
// Only VEX instructions among the vector ones (a legacy SSE one costs
// hundreds of nanoseconds a call on some machines), and VZEROUPPER before
// returning. Y15, R14 and R15 are left alone (Go's ABI reserves them).
TEXT ·skimAVX2(SB), NOSPLIT, $0-72
	MOVQ         b_base+0(FP), SI
	MOVQ         b_len+8(FP), DI
	MOVQ         j+24(FP), DX
	MOVQ         hs+32(FP), R8
	MOVQ         cnt+40(FP), R9
	SUBQ         $32, DI // the last block may start here
	VPBROADCASTB skimConst<>+0(SB), Y10
	VPBROADCASTB skimConst<>+1(SB), Y11
	VPBROADCASTB skimConst<>+2(SB), Y12
	VPBROADCASTB skimConst<>+3(SB), Y13
	VPBROADCASTB skimConst<>+4(SB), Y14
	VPBROADCASTB skimConst<>+5(SB), Y9

loop:
	CMPQ      DX, DI
	JGT       done
	VMOVDQU   (SI)(DX*1), Y0
	VPCMPGTB  Y10, Y0, Y1 // above 0x2f
	VPCMPGTB  Y11, Y0, Y2 // above 0x39
	VPANDN    Y1, Y2, Y1  // digits
	VPCMPGTB  Y12, Y0, Y3 // above 0x08
	VPCMPGTB  Y0, Y13, Y4 // below 0x0e
	VPAND     Y3, Y4, Y3  // HT, LF, VT, FF, CR
	VPOR      Y2, Y3, Y2  // breaks, but for the negative bytes
	VPCMPGTB  Y0, Y14, Y4 // below 0x20, and the negative bytes
	VPANDN    Y4, Y3, Y4  // but for HT to CR
	VPCMPEQB  Y0, Y9, Y5  // DEL
	VPOR      Y4, Y5, Y4  // controls, and the negative bytes
	VPMOVMSKB Y0, R10     // negative: 0x80 and more
	VPMOVMSKB Y4, R11
	VPMOVMSKB Y1, BX      // digits
	VPMOVMSKB Y2, R12
	ORL       R10, R12    // breaks
	NOTL      R10
	ANDL      R10, R11    // controls
	JNZ       steps
	POPCNTL   BX, AX
	ADDQ      R9, AX
	CMPQ      AX, $13     // minDigits
	JGE       steps
	MOVQ      DX, CX
	SUBQ      R8, CX
	CMPQ      CX, $1000   // skimSpan-24: no step may start past skimSpan
	JGT       steps
	TESTL     R12, R12
	JZ        nobreak
	BSRL      R12, R12    // the last break
	LEAQ      1(DX)(R12*1), R8
	LEAL      1(R12), CX
	SHRQ      CX, BX      // the digits after it (BX is 32 bits wide)
	POPCNTQ   BX, R9
	ADDQ      $32, DX
	JMP       loop

nobreak:
	MOVQ AX, R9
	ADDQ $32, DX
	JMP  loop

	// skimRun8's steps on the block's masks: R11 controls, BX digits,
	// R12 breaks, the low eight bits of each for the step at DX.
steps:
	MOVL $4, R13

step:
	TESTL   $0xff, R11
	JNZ     done
	MOVL    BX, AX
	ANDL    $0xff, AX
	POPCNTL AX, R10      // the step's digits
	LEAQ    (R9)(R10*1), CX
	CMPQ    CX, $13      // minDigits
	JGE     done
	MOVL    R12, CX
	ANDL    $0xff, CX
	JZ      stepnobreak
	BSRL    CX, CX       // the step's last break
	LEAQ    1(DX)(CX*1), R8
	INCL    CX
	SHRL    CX, AX
	POPCNTL AX, R9       // the digits after it
	JMP     stepnext

stepnobreak:
	MOVQ DX, CX
	SUBQ R8, CX
	CMPQ CX, $1024 // skimSpan
	JGT  done
	ADDQ R10, R9

stepnext:
	ADDQ $8, DX
	SHRL $8, R11
	SHRL $8, BX
	SHRL $8, R12
	DECL R13
	JNZ  step
	JMP  loop

done:
	VZEROUPPER
	MOVQ DX, ret+48(FP)
	MOVQ R8, ret1+56(FP)
	MOVQ R9, ret2+64(FP)
	RET
