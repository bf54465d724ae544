#include "textflag.h"

// The bytes escapeAVX2 compares with: 0x20, '"' and '\\'.
DATA escConst<>+0(SB)/1, $0x20
DATA escConst<>+1(SB)/1, $0x22
DATA escConst<>+2(SB)/1, $0x5c
GLOBL escConst<>(SB), RODATA|NOPTR, $4

// func escapeAVX2(dst, src []byte) (nd, ns int)
//
// Per 32-byte block: store it to dst, then mark the bytes that need care:
// a signed compare with 0x20 marks those below 0x20 and those of 0x80 and
// above (negative as signed bytes), two equality compares mark '"' and
// '\\'. With none, both advance by 32; otherwise both advance to the first
// marked byte, which is escaped here or left to the caller. Only VEX
// instructions: a legacy SSE one among them costs hundreds of
// nanoseconds a call on some machines.
TEXT ·escapeAVX2(SB), NOSPLIT, $0-64
	MOVQ dst_base+0(FP), DI
	MOVQ dst_len+8(FP), DX
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	MOVQ DI, R8
	MOVQ SI, R9
	LEAQ -32(SI)(CX*1), CX // the last block may start here
	LEAQ -64(DI)(DX*1), DX // room for a block and an escape up to here
	VPBROADCASTB escConst<>+0(SB), Y1
	VPBROADCASTB escConst<>+1(SB), Y2
	VPBROADCASTB escConst<>+2(SB), Y3

loop:
	CMPQ      SI, CX
	JHI       done
	CMPQ      DI, DX
	JHI       done
	VMOVDQU   (SI), Y0
	VMOVDQU   Y0, (DI)
	VPCMPGTB  Y0, Y1, Y4
	VPCMPEQB  Y0, Y2, Y5
	VPCMPEQB  Y0, Y3, Y6
	VPOR      Y4, Y5, Y4
	VPOR      Y4, Y6, Y4
	VPMOVMSKB Y4, AX
	TESTL     AX, AX
	JNZ       special
	ADDQ      $32, SI
	ADDQ      $32, DI
	JMP       loop

special:
	BSFL    AX, AX
	ADDQ    AX, SI
	ADDQ    AX, DI
	MOVBLZX (SI), AX
	CMPB    AL, $0x0a
	JEQ     lf
	CMPB    AL, $0x0d
	JEQ     cr
	CMPB    AL, $0x22
	JEQ     quoted
	CMPB    AL, $0x5c
	JEQ     quoted
	CMPB    AL, $0x09
	JEQ     tab
	JMP     done

lf:
	MOVW $0x6e5c, (DI) // \n
	JMP  escaped

cr:
	MOVW $0x725c, (DI) // \r
	JMP  escaped

tab:
	MOVW $0x745c, (DI) // \t
	JMP  escaped

quoted:
	MOVB $0x5c, (DI) // \" or \\
	MOVB AL, 1(DI)

escaped:
	ADDQ $2, DI
	INCQ SI
	JMP  loop

done:
	VZEROUPPER
	SUBQ R8, DI
	MOVQ DI, nd+48(FP)
	SUBQ R9, SI
	MOVQ SI, ns+56(FP)
	RET
