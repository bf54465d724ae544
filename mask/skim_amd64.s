#include "textflag.h"

// The bytes skimAVX2 compares with.
DATA skimConst<>+0(SB)/1, $0x2f // '0'-1
DATA skimConst<>+1(SB)/1, $0x39 // '9'
DATA skimConst<>+2(SB)/1, $0x08 // HT-1
DATA skimConst<>+3(SB)/1, $0x0e // CR+1
DATA skimConst<>+4(SB)/1, $0x20
DATA skimConst<>+5(SB)/1, $0x7f // DEL
DATA skimConst<>+6(SB)/1, $0x2d // '-'
DATA skimConst<>+7(SB)/1, $0x3f // the last parameter byte
DATA skimConst<>+8(SB)/1, $0x1b // ESC
DATA skimConst<>+9(SB)/1, $0x5b // '['
GLOBL skimConst<>(SB), RODATA|NOPTR, $16

// CAN and SUB, 32 of each, compared with as memory operands (no vector
// register is left for them).
DATA skimCAN<>+0(SB)/8, $0x1818181818181818
DATA skimCAN<>+8(SB)/8, $0x1818181818181818
DATA skimCAN<>+16(SB)/8, $0x1818181818181818
DATA skimCAN<>+24(SB)/8, $0x1818181818181818
GLOBL skimCAN<>(SB), RODATA|NOPTR, $32
DATA skimSUB<>+0(SB)/8, $0x1a1a1a1a1a1a1a1a
DATA skimSUB<>+8(SB)/8, $0x1a1a1a1a1a1a1a1a
DATA skimSUB<>+16(SB)/8, $0x1a1a1a1a1a1a1a1a
DATA skimSUB<>+24(SB)/8, $0x1a1a1a1a1a1a1a1a
GLOBL skimSUB<>(SB), RODATA|NOPTR, $32

// ESC and '[', for the CSI sequences a block holds whole.
DATA skimESC<>+0(SB)/8, $0x1b1b1b1b1b1b1b1b
DATA skimESC<>+8(SB)/8, $0x1b1b1b1b1b1b1b1b
DATA skimESC<>+16(SB)/8, $0x1b1b1b1b1b1b1b1b
DATA skimESC<>+24(SB)/8, $0x1b1b1b1b1b1b1b1b
GLOBL skimESC<>(SB), RODATA|NOPTR, $32
DATA skimLBR<>+0(SB)/8, $0x5b5b5b5b5b5b5b5b
DATA skimLBR<>+8(SB)/8, $0x5b5b5b5b5b5b5b5b
DATA skimLBR<>+16(SB)/8, $0x5b5b5b5b5b5b5b5b
DATA skimLBR<>+24(SB)/8, $0x5b5b5b5b5b5b5b5b
GLOBL skimLBR<>(SB), RODATA|NOPTR, $32

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
// (below 0x20 but not HT to CR, not negative; and DEL). CAN and SUB move
// from controls to breaks, as in skimRun8, tested only in a block with
// controls (text without them pays nothing). A block with no
// control, whose digits leave cnt below minDigits (13), starting at most
// skimSpan-24 (1000) bytes after hs, passes whole: hs and cnt follow its
// last break. So does one whose digits before its first break leave cnt
// below minDigits and whose digits after that break are fewer, and one
// whose only controls are the ESCs of CSI sequences complete in it, their
// bytes taken out of its digits and breaks. Any other block goes through
// skimRun8's steps on the masks, eight bits at a time (one with a break
// passing when cnt and its digits before the break stay below minDigits),
// and the loop ends where the first of them stops.
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
	VPBROADCASTB skimConst<>+6(SB), Y8
	VPBROADCASTB skimConst<>+7(SB), Y7

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
	JNZ       ctlblock

whole:
	POPCNTL   BX, AX
	ADDQ      R9, AX
	CMPQ      AX, $13     // minDigits
	JGE       wholedigits

wholespan:
	MOVQ      DX, CX
	SUBQ      R8, CX
	CMPQ      CX, $1000   // skimSpan-24: no step may start past skimSpan
	JGT       steps

wholepass:
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

	// cnt and the block's digits reach minDigits: the block still passes
	// whole if cnt and the digits before its first break, and the digits
	// after that break (every later stretch's and the new cnt's), stay
	// below it. Text with numbers (logs, tables) otherwise went through
	// the eight steps a block.
wholedigits:
	TESTL R12, R12
	JZ    steps
	LEAL  -1(R12), CX
	XORL  R12, CX     // the bytes to the first break
	NOTL  CX
	ANDL  BX, CX
	POPCNTL CX, CX    // the digits after it
	CMPQ  CX, $13     // minDigits
	JGE   steps
	SUBQ  CX, AX      // cnt and the digits before it
	CMPQ  AX, $13
	JLT   wholespan
	JMP   steps

	// A block with a control, its digits and stretch short enough: the
	// steps before the control's pass, and the state follows their last
	// break, as in a block that passes whole.
ctlblock:
	VPCMPEQB  skimCAN<>(SB), Y0, Y3
	VPCMPEQB  skimSUB<>(SB), Y0, Y4
	VPOR      Y3, Y4, Y3
	VPMOVMSKB Y3, AX  // CAN and SUB: breaks, tested only here
	ORL       AX, R12
	NOTL      AX
	ANDL      AX, R11
	JZ        whole

	// CSI sequences that lie whole in the block: when its other controls
	// are all the ESCs of such sequences, the block passes whole with
	// their bytes neither digits nor breaks (they join the stretch, as
	// word reads them), its checks made on what is left. One block then
	// takes a prompt line's colours, where passing them one at a time
	// restarted the loop after each. Each ESC followed by '[' starts a
	// run of parameter bytes (0x20-0x3f) from two bytes on; adding the
	// run's first bit carries to the byte after the run (at bit 32 or
	// beyond if the run reaches the block's end), which must be a final
	// byte (0x40-0x7e) in the block. Anything else goes on below with the
	// block's masks as they were.
	VPCMPEQB  skimESC<>(SB), Y0, Y3
	VPMOVMSKB Y3, AX
	VPCMPEQB  skimLBR<>(SB), Y0, Y4
	VPMOVMSKB Y4, CX
	SHRL      $1, CX
	ANDL      CX, AX      // ESC '['
	JZ        ctlrest
	VPCMPGTB  Y0, Y14, Y3 // below 0x20, and the negative bytes
	VPCMPGTB  Y7, Y0, Y4  // above 0x3f
	VPOR      Y3, Y4, Y3  // not a parameter or intermediate
	VPANDN    Y4, Y5, Y4  // a final byte: 0x40 to 0x7e
	VPMOVMSKB Y3, R10
	VPMOVMSKB Y4, R13
	NOTL      R10         // parameters (32 bits, the rest 0)
	MOVQ      AX, CX
	SHLQ      $2, CX      // where the parameters start
	ADDQ      R10, CX
	NOTQ      R10
	ANDQ      R10, CX     // the byte after each run
	NOTQ      R13
	TESTQ     CX, R13
	JNZ       ctlrest     // not final, or past the block
	SHLQ      $1, CX
	SUBQ      AX, CX      // the sequences' bytes, ESC to final
	NOTL      CX
	TESTL     CX, R11
	JNZ       ctlrest     // another control
	MOVL      BX, AX
	ANDL      CX, AX      // the digits outside them
	POPCNTL   AX, R10
	ADDQ      R9, R10
	CMPQ      R10, $13    // minDigits
	JGE       csidigits

csispan:
	MOVQ      DX, R13
	SUBQ      R8, R13
	CMPQ      R13, $1000  // skimSpan-24
	JGT       ctlrest
	MOVL      AX, BX
	ANDL      CX, R12     // the breaks outside them
	MOVQ      R10, AX
	JMP       wholepass

	// As wholedigits, on the bytes outside the sequences (AX digits, CX
	// not the sequences' bytes); the block's masks stay as they were.
csidigits:
	MOVL    R12, R13
	ANDL    CX, R13   // the breaks outside them
	JZ      ctlrest
	LEAL    -1(R13), R10
	XORL    R13, R10  // the bytes to the first break
	NOTL    R10
	ANDL    AX, R10
	POPCNTL R10, R10  // the digits after it
	CMPQ    R10, $13  // minDigits
	JGE     ctlrest
	POPCNTL AX, R13
	SUBQ    R10, R13
	ADDQ    R9, R13   // cnt and the digits before it
	CMPQ    R13, $13
	JLT     csispan

ctlrest:
	POPCNTL BX, AX
	ADDQ    R9, AX
	CMPQ    AX, $13   // minDigits
	JGE     steps
	MOVQ    DX, CX
	SUBQ    R8, CX
	CMPQ    CX, $1000 // skimSpan-24
	JGT     steps
	BSFL    R11, R10
	ANDL    $0x18, R10 // the control's step
	JZ      steps
	MOVL    $1, AX
	MOVL    R10, CX
	SHLL    CX, AX
	DECL    AX
	ANDL    AX, R12    // the breaks before it
	ANDL    AX, BX     // the digits before it
	LEAQ    32(DX), R13
	TESTL   R12, R12
	JZ      ctlnobreak
	BSRL    R12, R12
	LEAQ    1(DX)(R12*1), R8
	LEAL    1(R12), CX
	SHRL    CX, BX
	POPCNTL BX, R9
	ADDQ    R10, DX
	JMP     ctlstep

ctlnobreak:
	POPCNTL BX, AX
	ADDQ    AX, R9
	ADDQ    R10, DX
	JMP     ctlstep

	// skimRun8's steps on the block's masks: R11 controls, BX digits,
	// R12 breaks, the low eight bits of each for the step at DX.
steps:
	LEAQ 32(DX), R13 // the block's end

step:
	TESTL   $0xff, R11
	JNZ     ctlstep
	MOVL    BX, AX
	ANDL    $0xff, AX
	POPCNTL AX, R10      // the step's digits
	LEAQ    (R9)(R10*1), CX
	CMPQ    CX, $13      // minDigits
	JGE     stepdigits
	MOVL    R12, CX
	ANDL    $0xff, CX
	JZ      stepnobreak

stepbreak:
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
	CMPQ DX, R13
	JLT  step
	JMP  loop

	// cnt and the step's digits reach minDigits: the step still passes if
	// it has a break and cnt and the digits before its first break stay
	// below it (fewer than eight follow that break), so that only a
	// stretch that holds minDigits digits stops the steps.
stepdigits:
	MOVL    R12, CX
	ANDL    $0xff, CX
	JZ      done
	LEAL    -1(CX), R10
	XORL    CX, R10      // the bytes to the first break
	ANDL    AX, R10
	POPCNTL R10, R10
	ADDQ    R9, R10      // cnt and the digits before it
	CMPQ    R10, $13     // minDigits
	JLT     stepbreak
	JMP     done

	// word's reading of the step at DX, which has a control in it: HT to
	// CR, CAN and SUB are breaks read with the rest of the step, as in
	// word (one pass a byte made text dense with them, "\r\n\x1b7" or
	// CANs before an ESC, cost skim up to 5.5 times the exact scanner);
	// when the first other control is the ESC of a CSI sequence whose
	// parameters end in the 32 bytes after its '[' (seqEnd), the step
	// goes on after it; anything else returns at DX, where word reads it
	// again. The state moves only once the step is known to pass. R10
	// sep, R11 C0 but breaks and DEL, BX digits, R12 breaks: the step's
	// bits, from the block's vectors (Y0 the bytes, Y1 digits, Y5 DEL).
ctlstep:
	MOVQ      DX, AX
	SUBQ      R8, AX
	CMPQ      AX, $1024 // skimSpan
	JGT       done
	VPCMPEQB  Y0, Y14, Y3
	VPCMPEQB  Y0, Y8, Y4
	VPOR      Y3, Y4, Y3
	VPMOVMSKB Y3, R10     // ' ', '-'
	VPCMPGTB  Y0, Y14, Y4
	VPOR      Y4, Y5, Y4
	VPCMPGTB  Y12, Y0, Y3
	VPCMPGTB  Y0, Y13, Y6
	VPAND     Y3, Y6, Y3  // HT to CR
	VPCMPEQB  skimCAN<>(SB), Y0, Y6
	VPOR      Y3, Y6, Y3
	VPCMPEQB  skimSUB<>(SB), Y0, Y6
	VPOR      Y3, Y6, Y3
	VPANDN    Y4, Y3, Y4  // but for HT to CR, CAN and SUB: breaks
	VPMOVMSKB Y4, R11
	VPMOVMSKB Y0, AX
	NOTL      AX
	ANDL      AX, R11     // C0 but breaks, DEL
	VPMOVMSKB Y1, BX      // digits
	LEAQ      32(DX), CX
	SUBQ      R13, CX     // the step's place in the block
	SHRL      CX, R10
	SHRL      CX, R11
	SHRL      CX, BX
	BSFL      R11, CX     // the first control (no break)
	MOVL      BX, R12
	ORL       R10, R12
	ORL       R11, R12
	NOTL      R12
	MOVL      $1, AX
	SHLL      CX, AX
	DECL      AX
	ANDL      AX, R12     // the breaks before it
	ANDL      AX, BX      // the digits before it
	LEAQ      (DX)(CX*1), R10

	// A CSI sequence in the block: its bytes from the block's vectors,
	// without waiting for another load; anything else goes to ctlbyte.
	VPBROADCASTB skimConst<>+8(SB), Y2
	VPCMPEQB     Y0, Y2, Y2
	VPMOVMSKB    Y2, AX     // ESC
	LEAQ         32(R10), R11
	SUBQ         R13, R11   // the control's place in the block
	BTL          R11, AX
	JCC          ctlbyte
	CMPQ         R11, $29
	JGT          ctlbyte    // its '[' and a parameter byte not in the block
	VPBROADCASTB skimConst<>+9(SB), Y3
	VPCMPEQB     Y0, Y3, Y3
	VPMOVMSKB    Y3, AX     // '['
	LEAL         1(R11), CX
	BTL          CX, AX
	JCC          ctlbyte
	VPCMPGTB     Y0, Y14, Y4 // below 0x20, and the negative bytes
	VPCMPGTB     Y7, Y0, Y6  // above 0x3f
	VPOR         Y4, Y6, Y4  // not a parameter or intermediate
	VPANDN       Y6, Y5, Y6  // a final byte: 0x40 to 0x7e
	VPMOVMSKB    Y4, AX
	INCL         CX
	SHRL         CX, AX
	TESTL        AX, AX
	JZ           ctlbyte     // the parameters go on past the block
	BSFL         AX, AX
	ADDL         CX, AX      // the first byte that is no parameter
	VPMOVMSKB    Y6, R11
	BTL          AX, R11
	JCC          done        // is not final: seqEnd refuses it
	LEAQ         -31(R13)(AX*1), R10
	JMP          pass

ctlbyte:
	CMPB      (SI)(R10*1), $0x1b
	JNE       done

csi:
	LEAQ      2(R10), AX
	CMPQ      AX, DI      // 32 bytes after the '[' in b
	JGT       done
	CMPB      1(SI)(R10*1), $0x5b
	JNE       done
	VMOVDQU   2(SI)(R10*1), Y3
	VPCMPGTB  Y3, Y14, Y4 // below 0x20, and the negative bytes
	VPCMPGTB  Y7, Y3, Y6  // above 0x3f
	VPOR      Y4, Y6, Y4  // not a parameter or intermediate
	VPCMPEQB  Y3, Y9, Y2
	VPANDN    Y6, Y2, Y6  // a final byte: 0x40 to 0x7e
	VPMOVMSKB Y4, AX
	VPMOVMSKB Y6, CX
	TESTL     AX, AX
	JZ        done
	BSFL      AX, AX
	BTL       AX, CX      // the first byte that is no parameter is final
	JCC       done
	LEAQ      3(R10)(AX*1), R10

	// R10 is where word goes on; the bytes before the control, as word
	// reads them exactly, may still stop it.
pass:
	TESTL   R12, R12
	JNZ     passbreak
	POPCNTL BX, AX
	ADDQ    R9, AX
	CMPQ    AX, $13   // minDigits
	JGE     done
	MOVQ    R8, R11
	JMP     commit

passbreak:
	BSFL    R12, CX   // the first break
	MOVL    $1, AX
	SHLL    CX, AX
	DECL    AX
	ANDL    BX, AX
	POPCNTL AX, AX
	ADDQ    R9, AX
	CMPQ    AX, $13   // minDigits
	JGE     done
	BSRL    R12, CX   // the last break
	LEAQ    1(DX)(CX*1), R11
	INCL    CX
	SHRL    CX, BX
	POPCNTL BX, AX    // the digits after it

commit:
	MOVQ    R10, DX
	MOVQ    R11, R8
	MOVQ    AX, R9
	JMP     loop

done:
	VZEROUPPER
	MOVQ DX, ret+48(FP)
	MOVQ R8, ret1+56(FP)
	MOVQ R9, ret2+64(FP)
	RET
