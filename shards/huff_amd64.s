#include "textflag.h"

// huffDecoder's fast loops (huff_amd64.go). A stream's state lives in the
// context between rounds: off (its window is the 8 bytes at src+off), used
// (bits of the window already read, from the top) and pos (next output
// byte). A round refills a window and makes five lookups in an 11-bit
// table, each storing two symbols and consuming one or two codes (at most
// 11 bits, so 5 lookups fit in the 57 bits a refill leaves). Streams go
// two at a time with their instructions interleaved, so that the core
// overlaps the two chains of shift → load → shift.
//
// Context (huffLoop): src 0, out 8, tbl 16, off 24+8i, used 56+8i,
// pos 88+8i, lim 120+8i, low 152+8i.
//
// Table entries: bits used (low byte, which is all SHLX reads of it),
// first symbol, second symbol, symbol count.

// LOAD refills stream i's window into VAL, with USED and POS.
#define LOAD(i, VAL, USED, POS) \
	MOVQ  (24+8*i)(DX), AX; \
	MOVQ  (56+8*i)(DX), USED; \
	MOVQ  (88+8*i)(DX), POS; \
	MOVQ  USED, BX; \
	SHRQ  $3, BX; \
	SUBQ  BX, AX; \
	MOVQ  AX, (24+8*i)(DX); \
	ANDQ  $7, USED; \
	MOVQ  (SI)(AX*1), VAL; \
	SHLXQ USED, VAL, VAL

#define STORE(i, USED, POS) \
	MOVQ USED, (56+8*i)(DX); \
	MOVQ POS, (88+8*i)(DX)

// STEP is one lookup: the window's top 11 bits index the table.
#define STEP(VAL, USED, POS, T1, T2) \
	MOVQ    VAL, T1; \
	SHRQ    $53, T1; \
	MOVL    (R8)(T1*4), T1; \
	SHLXQ   T1, VAL, VAL; \
	MOVBQZX T1, T2; \
	ADDQ    T2, USED; \
	MOVL    T1, T2; \
	SHRL    $8, T2; \
	MOVW    T2, (DI)(POS*1); \
	SHRL    $24, T1; \
	ADDQ    T1, POS

// A round may start while pos ≤ lim and off ≥ low.
#define CHECK(i) \
	MOVQ (88+8*i)(DX), AX; \
	CMPQ AX, (120+8*i)(DX); \
	JGT  done; \
	MOVQ (24+8*i)(DX), AX; \
	CMPQ AX, (152+8*i)(DX); \
	JLT  done

#define SETUP \
	MOVQ c+0(FP), DX; \
	MOVQ 0(DX), SI; \
	MOVQ 8(DX), DI; \
	MOVQ 16(DX), R8

// The four-stream loop keeps every stream's window, bits used and output
// pointer in registers, and its input pointer and limits in its frame
// (in 0+8i, lim 32+8i, low 64+8i, all absolute): stream i's window is the
// 8 bytes at in, a round may start while out ≤ lim and in ≥ low.
//   stream   0    1    2    3
//   window   R10  R11  R12  R13
//   used     BX   CX   DX   R9
//   out      DI   SI   R14  R15
// AX is the one scratch register: each lookup uses it alone, so the
// renamer gives every stream its own copy.

#define IN(i) (0+8*i)(SP)
#define LIM(i) (32+8*i)(SP)
#define LOW(i) (64+8*i)(SP)

// STEP4 is one lookup of one stream; the bits-used count stays under 256,
// so adding the entry's low byte to its low byte is exact.
#define STEP4(VAL, USED, OUT) \
	MOVQ  VAL, AX; \
	SHRQ  $53, AX; \
	MOVL  (R8)(AX*4), AX; \
	SHLXQ AX, VAL, VAL; \
	ADDB  AX, USED; \
	SHRL  $8, AX; \
	MOVW  AX, (OUT); \
	SHRL  $16, AX; \
	ADDQ  AX, OUT

#define REFILL4(i, VAL, USED) \
	MOVQ  USED, AX; \
	SHRQ  $3, AX; \
	NEGQ  AX; \
	ADDQ  IN(i), AX; \
	MOVQ  AX, IN(i); \
	ANDQ  $7, USED; \
	MOVQ  (AX), VAL; \
	SHLXQ USED, VAL, VAL

#define CHECK4(i, OUT) \
	CMPQ OUT, LIM(i); \
	JHI  done; \
	MOVQ IN(i), AX; \
	CMPQ AX, LOW(i); \
	JCS  done

// SETUP4 converts stream i's offsets to pointers (R10: src, R11: out).
#define SETUP4(i, USED, OUT) \
	MOVQ (24+8*i)(AX), R12; \
	ADDQ R10, R12; \
	MOVQ R12, IN(i); \
	MOVQ (152+8*i)(AX), R12; \
	ADDQ R10, R12; \
	MOVQ R12, LOW(i); \
	MOVQ (120+8*i)(AX), R12; \
	ADDQ R11, R12; \
	MOVQ R12, LIM(i); \
	MOVQ (88+8*i)(AX), OUT; \
	ADDQ R11, OUT; \
	MOVQ (56+8*i)(AX), USED

// FINISH4 stores stream i's state back into the context as offsets.
#define FINISH4(i, USED, OUT) \
	MOVQ IN(i), R10; \
	SUBQ 0(AX), R10; \
	MOVQ R10, (24+8*i)(AX); \
	MOVQ USED, (56+8*i)(AX); \
	SUBQ 8(AX), OUT; \
	MOVQ OUT, (88+8*i)(AX)

#define LOOKUPS4 \
	STEP4(R10, BX, DI); \
	STEP4(R11, CX, SI); \
	STEP4(R12, DX, R14); \
	STEP4(R13, R9, R15)

// func huffLoop4BMI2(c *huffLoop): all four streams, while each has room.
TEXT ·huffLoop4BMI2(SB), NOSPLIT, $96-8
	MOVQ c+0(FP), AX
	MOVQ 16(AX), R8
	MOVQ 0(AX), R10
	MOVQ 8(AX), R11
	SETUP4(0, BX, DI)
	SETUP4(1, CX, SI)
	SETUP4(2, DX, R14)
	SETUP4(3, R9, R15)

loop:
	CHECK4(0, DI)
	CHECK4(1, SI)
	CHECK4(2, R14)
	CHECK4(3, R15)
	REFILL4(0, R10, BX)
	REFILL4(1, R11, CX)
	REFILL4(2, R12, DX)
	REFILL4(3, R13, R9)
	LOOKUPS4
	LOOKUPS4
	LOOKUPS4
	LOOKUPS4
	LOOKUPS4
	JMP loop

done:
	MOVQ c+0(FP), AX
	FINISH4(0, BX, DI)
	FINISH4(1, CX, SI)
	FINISH4(2, DX, R14)
	FINISH4(3, R9, R15)
	RET

// func huffLoop1BMI2(c *huffLoop): stream 0 alone, while it has room.
TEXT ·huffLoop1BMI2(SB), NOSPLIT, $0-8
	SETUP

loop:
	CHECK(0)
	LOAD(0, R10, R11, R12)
	STEP(R10, R11, R12, AX, BX)
	STEP(R10, R11, R12, AX, BX)
	STEP(R10, R11, R12, AX, BX)
	STEP(R10, R11, R12, AX, BX)
	STEP(R10, R11, R12, AX, BX)
	STORE(0, R11, R12)
	JMP loop

done:
	RET
