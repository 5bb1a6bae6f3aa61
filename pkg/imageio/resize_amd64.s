#include "textflag.h"

// Rounding half of the 22-bit fixed point, in the three colour lanes only:
// the horizontal kernel folds lanes 3..5 onto 0..2 before shifting.
DATA rgbhalf<>+0(SB)/4, $0x200000
DATA rgbhalf<>+4(SB)/4, $0x200000
DATA rgbhalf<>+8(SB)/4, $0x200000
DATA rgbhalf<>+12(SB)/4, $0
DATA rgbhalf<>+16(SB)/4, $0
DATA rgbhalf<>+20(SB)/4, $0
DATA rgbhalf<>+24(SB)/4, $0
DATA rgbhalf<>+28(SB)/4, $0
GLOBL rgbhalf<>(SB), RODATA|NOPTR, $32

// VPERMD index moving lanes 3,4,5 to 0,1,2.
DATA fold<>+0(SB)/4, $3
DATA fold<>+4(SB)/4, $4
DATA fold<>+8(SB)/4, $5
DATA fold<>+12(SB)/4, $7
DATA fold<>+16(SB)/4, $7
DATA fold<>+20(SB)/4, $7
DATA fold<>+24(SB)/4, $7
DATA fold<>+28(SB)/4, $7
GLOBL fold<>(SB), RODATA|NOPTR, $32

// Rounding half for two pixels' colour lanes 0..5.
DATA half6<>+0(SB)/4, $0x200000
DATA half6<>+4(SB)/4, $0x200000
DATA half6<>+8(SB)/4, $0x200000
DATA half6<>+12(SB)/4, $0x200000
DATA half6<>+16(SB)/4, $0x200000
DATA half6<>+20(SB)/4, $0x200000
DATA half6<>+24(SB)/4, $0
DATA half6<>+28(SB)/4, $0
GLOBL half6<>(SB), RODATA|NOPTR, $32

// VPERMD index moving lanes 0,1,2 to 3,4,5.
DATA lift<>+0(SB)/4, $7
DATA lift<>+4(SB)/4, $7
DATA lift<>+8(SB)/4, $7
DATA lift<>+12(SB)/4, $0
DATA lift<>+16(SB)/4, $1
DATA lift<>+20(SB)/4, $2
DATA lift<>+24(SB)/4, $7
DATA lift<>+28(SB)/4, $7
GLOBL lift<>(SB), RODATA|NOPTR, $32

// VPERMD index restoring byte order after packing four 8-lane sums.
DATA unpack<>+0(SB)/4, $0
DATA unpack<>+4(SB)/4, $4
DATA unpack<>+8(SB)/4, $1
DATA unpack<>+12(SB)/4, $5
DATA unpack<>+16(SB)/4, $2
DATA unpack<>+20(SB)/4, $6
DATA unpack<>+24(SB)/4, $3
DATA unpack<>+28(SB)/4, $7
GLOBL unpack<>(SB), RODATA|NOPTR, $32

// func vertRowAVX2(out []uint8, src []uint8, stride int, w []int32)
TEXT ·vertRowAVX2(SB), NOSPLIT, $0-80
	MOVQ out_base+0(FP), DI
	MOVQ out_len+8(FP), CX
	ANDQ $-8, CX
	MOVQ src_base+24(FP), SI
	MOVQ stride+48(FP), DX
	MOVQ w_base+56(FP), R8
	MOVQ w_len+64(FP), R9
	TESTQ R9, R9
	JZ   vdone
	MOVL $0x200000, AX
	MOVL AX, X14
	VPBROADCASTD X14, Y14
	VMOVDQU unpack<>(SB), Y13

v32:
	CMPQ CX, $32
	JB   v8
	VMOVDQA Y14, Y0
	VMOVDQA Y14, Y1
	VMOVDQA Y14, Y2
	VMOVDQA Y14, Y3
	MOVQ SI, R10
	MOVQ R8, R11
	MOVQ R9, R12

v32tap:
	VPBROADCASTD (R11), Y4
	VPMOVZXBD (R10), Y5
	VPMOVZXBD 8(R10), Y6
	VPMOVZXBD 16(R10), Y7
	VPMOVZXBD 24(R10), Y8
	VPMULLD Y4, Y5, Y5
	VPMULLD Y4, Y6, Y6
	VPMULLD Y4, Y7, Y7
	VPMULLD Y4, Y8, Y8
	VPADDD Y5, Y0, Y0
	VPADDD Y6, Y1, Y1
	VPADDD Y7, Y2, Y2
	VPADDD Y8, Y3, Y3
	ADDQ DX, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  v32tap

	VPSRAD $22, Y0, Y0
	VPSRAD $22, Y1, Y1
	VPSRAD $22, Y2, Y2
	VPSRAD $22, Y3, Y3
	VPACKUSDW Y1, Y0, Y0
	VPACKUSDW Y3, Y2, Y2
	VPACKUSWB Y2, Y0, Y0
	VPERMD Y0, Y13, Y0
	VMOVDQU Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $32, CX
	JMP  v32

v8:
	CMPQ CX, $8
	JB   vdone
	VMOVDQA Y14, Y0
	MOVQ SI, R10
	MOVQ R8, R11
	MOVQ R9, R12

v8tap:
	VPBROADCASTD (R11), Y4
	VPMOVZXBD (R10), Y5
	VPMULLD Y4, Y5, Y5
	VPADDD Y5, Y0, Y0
	ADDQ DX, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  v8tap

	VPSRAD $22, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKUSDW X1, X0, X0
	VPACKUSWB X0, X0, X0
	MOVQ X0, (DI)
	ADDQ $8, DI
	ADDQ $8, SI
	SUBQ $8, CX
	JMP  v8

vdone:
	VZEROUPPER
	RET

// func horizRowAVX2(out []uint8, row []uint8, offs []int32, w []int32, pairs int)
TEXT ·horizRowAVX2(SB), NOSPLIT, $0-104
	MOVQ out_base+0(FP), DI
	MOVQ row_base+24(FP), SI
	MOVQ offs_base+48(FP), R8
	MOVQ offs_len+56(FP), CX
	MOVQ w_base+72(FP), R9
	MOVQ pairs+96(FP), R10
	TESTQ CX, CX
	JZ   hdone
	TESTQ R10, R10
	JZ   hdone
	VMOVDQU rgbhalf<>(SB), Y14
	VMOVDQU fold<>(SB), Y13
	CMPQ R10, $2
	JNE  hpix

	// Two taps pairs (3 or 4 taps, the usual downscale by less than 2):
	// two outputs per iteration, the second folded into lanes 3..5 so
	// both leave through one pack and one 6-byte store.
	VMOVDQU half6<>(SB), Y12
	VMOVDQU lift<>(SB), Y11

h2:
	CMPQ CX, $2
	JB   h2tail
	MOVLQSX (R8), R11
	ADDQ SI, R11
	MOVLQSX 4(R8), R12
	ADDQ SI, R12
	VPMOVZXBD (R11), Y1
	VPMOVZXBD 6(R11), Y2
	VPMOVZXBD (R12), Y3
	VPMOVZXBD 6(R12), Y4
	VPMULLD (R9), Y1, Y1
	VPMULLD 32(R9), Y2, Y2
	VPMULLD 64(R9), Y3, Y3
	VPMULLD 96(R9), Y4, Y4
	VPADDD Y2, Y1, Y1
	VPADDD Y4, Y3, Y3
	VPERMD Y1, Y13, Y2
	VPADDD Y2, Y1, Y1
	VPERMD Y3, Y11, Y4
	VPADDD Y4, Y3, Y3
	VPBLENDD $0x38, Y3, Y1, Y1
	VPADDD Y12, Y1, Y1
	VPSRAD $22, Y1, Y1
	VEXTRACTI128 $1, Y1, X2
	VPACKUSDW X2, X1, X1
	VPACKUSWB X1, X1, X1
	MOVQ X1, AX
	MOVL AX, (DI)
	SHRQ $32, AX
	MOVW AX, 4(DI)
	ADDQ $6, DI
	ADDQ $8, R8
	ADDQ $128, R9
	SUBQ $2, CX
	JMP  h2

h2tail:
	TESTQ CX, CX
	JZ   hdone

hpix:
	MOVLQSX (R8), R11
	ADDQ SI, R11
	VMOVDQA Y14, Y0
	MOVQ R10, R12

hpair:
	VPMOVZXBD (R11), Y1
	VPMULLD (R9), Y1, Y1
	VPADDD Y1, Y0, Y0
	ADDQ $6, R11
	ADDQ $32, R9
	DECQ R12
	JNZ  hpair

	VPERMD Y0, Y13, Y1
	VPADDD Y1, Y0, Y0
	VPSRAD $22, Y0, Y0
	VPACKUSDW X0, X0, X0
	VPACKUSWB X0, X0, X0
	MOVL X0, AX
	MOVW AX, (DI)
	SHRL $16, AX
	MOVB AX, 2(DI)
	ADDQ $3, DI
	ADDQ $4, R8
	DECQ CX
	JNZ  hpix

hdone:
	VZEROUPPER
	RET
