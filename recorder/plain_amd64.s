#include "textflag.h"

// The bytes plainLenAVX2 compares with: 0x20, '"' and '\\'.
DATA plainConst<>+0(SB)/1, $0x20
DATA plainConst<>+1(SB)/1, $0x22
DATA plainConst<>+2(SB)/1, $0x5c
GLOBL plainConst<>(SB), RODATA|NOPTR, $4

// func plainLenAVX2(s []byte) int
//
// Per 32-byte block: a signed compare with 0x20 marks the bytes below
// 0x20 and those of 0x80 and above (negative as signed bytes), two
// equality compares mark '"' and '\\'; the first marked byte ends it.
TEXT ·plainLenAVX2(SB), NOSPLIT, $0-32
	MOVQ s_base+0(FP), SI
	MOVQ s_len+8(FP), CX
	MOVQ SI, DI
	ANDQ $~31, CX
	ADDQ SI, CX
	VPBROADCASTB plainConst<>+0(SB), Y1
	VPBROADCASTB plainConst<>+1(SB), Y2
	VPBROADCASTB plainConst<>+2(SB), Y3

loop:
	CMPQ SI, CX
	JEQ  done
	VMOVDQU   (SI), Y0
	VPCMPGTB  Y0, Y1, Y4
	VPCMPEQB  Y0, Y2, Y5
	VPCMPEQB  Y0, Y3, Y6
	VPOR      Y4, Y5, Y4
	VPOR      Y4, Y6, Y4
	VPMOVMSKB Y4, AX
	TESTL     AX, AX
	JNZ       found
	ADDQ      $32, SI
	JMP       loop

found:
	BSFL AX, AX
	ADDQ AX, SI

done:
	VZEROUPPER
	SUBQ DI, SI
	MOVQ SI, ret+24(FP)
	RET
