#include "textflag.h"

// huffDecoder's fast loops (huff_amd64.go). Between calls a stream's state
// is in the context: off (its window is the 8 bytes at src+off), used
// (bits of the window read, from the top) and pos (next output byte).
// Within a call it is in registers: the window, shifted left by the bits
// read, with a marker bit just below the unread ones, so that TZCNT gives
// the bits read and no counter is kept; the input pointer; the output
// pointer.
//
// A round refills each window (at least 56 unread bits after it) and makes
// five lookups of 11 bits, each storing four bytes (up to three symbols)
// and consuming at most 11 bits, so the marker is never reached. The four
// streams' lookups are interleaved: four independent chains of shift →
// load → shift.
//
// Context (huffLoop): src 0, out 8, tbl 16, off 24+8i, used 56+8i,
// pos 88+8i, lim 120+8i, low 152+8i. Table entries: three symbol bytes,
// then nbits | count<<6.
//
//   stream   0    1    2    3
//   window   R10  R11  R12  R13
//   in       BX   CX   DX   R9
//   out      DI   SI   R14  R15
//
// R8 is the table, AX the one scratch register (each lookup uses it alone,
// so the renamer gives every stream its own copy). The frame holds each
// stream's limits as pointers: a round may start while out ≤ lim and
// in ≥ low.

#define LIM(i) (0+8*i)(SP)
#define LOW(i) (32+8*i)(SP)

// STEP is one lookup.
#define STEP(VAL, OUT) \
	MOVQ  VAL, AX; \
	SHRQ  $53, AX; \
	MOVL  (R8)(AX*4), AX; \
	MOVL  AX, (OUT); \
	SHRL  $24, AX; \
	SHLXQ AX, VAL, VAL; \
	SHRL  $6, AX; \
	ADDQ  AX, OUT

// REFILL moves the window down by the whole bytes read and reloads it,
// with the marker below the bits still unread.
#define REFILL(IN, VAL) \
	TZCNTQ VAL, AX; \
	SHRQ   $3, AX; \
	SUBQ   AX, IN; \
	TZCNTQ VAL, AX; \
	ANDQ   $7, AX; \
	MOVQ   (IN), VAL; \
	LEAQ   1(VAL)(VAL*1), VAL; \
	SHLXQ  AX, VAL, VAL

#define CHECK(i, IN, OUT) \
	CMPQ OUT, LIM(i); \
	JHI  done; \
	CMPQ IN, LOW(i); \
	JCS  done

// SETUP_PTRS loads stream i's limits into the frame and its pointers
// (AX: context; R12, R13: src, out).
#define SETUP_PTRS(i, IN, OUT) \
	MOVQ (152+8*i)(AX), IN; \
	ADDQ R12, IN; \
	MOVQ IN, LOW(i); \
	MOVQ (120+8*i)(AX), IN; \
	ADDQ R13, IN; \
	MOVQ IN, LIM(i); \
	MOVQ (88+8*i)(AX), OUT; \
	ADDQ R13, OUT; \
	MOVQ (24+8*i)(AX), IN; \
	ADDQ R12, IN

// SETUP_VAL gives stream i a window holding only the marker, under the
// bits already read; the first REFILL loads the bytes. It leaves the
// context in AX.
#define SETUP_VAL(i, VAL) \
	MOVQ  c+0(FP), AX; \
	MOVQ  (56+8*i)(AX), AX; \
	DECQ  AX; \
	MOVQ  $1, VAL; \
	SHLXQ AX, VAL, VAL; \
	MOVQ  c+0(FP), AX

// FINISH stores stream i back as offsets (AX: context).
#define FINISH(i, VAL, IN, OUT) \
	TZCNTQ VAL, VAL; \
	INCQ   VAL; \
	MOVQ   VAL, (56+8*i)(AX); \
	SUBQ   0(AX), IN; \
	MOVQ   IN, (24+8*i)(AX); \
	SUBQ   8(AX), OUT; \
	MOVQ   OUT, (88+8*i)(AX)

// ENTER loads the table and, for SETUP_PTRS, the two bases.
#define ENTER \
	MOVQ c+0(FP), AX; \
	MOVQ 16(AX), R8; \
	MOVQ 0(AX), R12; \
	MOVQ 8(AX), R13

#define LOOKUPS1 STEP(R10, DI)

#define LOOKUPS2 \
	STEP(R10, DI); \
	STEP(R11, SI)

#define LOOKUPS4 \
	LOOKUPS2; \
	STEP(R12, R14); \
	STEP(R13, R15)

// The three loops differ only in how many streams they carry: 4, 2
// (streams 0 and 1) or 1 (stream 0).

// func huffLoop4BMI2(c *huffLoop): all four streams, while each has room.
TEXT ·huffLoop4BMI2(SB), NOSPLIT, $64-8
	ENTER
	SETUP_PTRS(0, BX, DI)
	SETUP_PTRS(1, CX, SI)
	SETUP_PTRS(2, DX, R14)
	SETUP_PTRS(3, R9, R15)
	SETUP_VAL(0, R10)
	SETUP_VAL(1, R11)
	SETUP_VAL(2, R12)
	SETUP_VAL(3, R13)

loop:
	CHECK(0, BX, DI)
	CHECK(1, CX, SI)
	CHECK(2, DX, R14)
	CHECK(3, R9, R15)
	REFILL(BX, R10)
	REFILL(CX, R11)
	REFILL(DX, R12)
	REFILL(R9, R13)
	LOOKUPS4
	LOOKUPS4
	LOOKUPS4
	LOOKUPS4
	LOOKUPS4
	JMP loop

done:
	MOVQ c+0(FP), AX
	FINISH(0, R10, BX, DI)
	FINISH(1, R11, CX, SI)
	FINISH(2, R12, DX, R14)
	FINISH(3, R13, R9, R15)
	RET

// func huffLoop2BMI2(c *huffLoop): streams 0 and 1, while both have room.
TEXT ·huffLoop2BMI2(SB), NOSPLIT, $64-8
	ENTER
	SETUP_PTRS(0, BX, DI)
	SETUP_PTRS(1, CX, SI)
	SETUP_VAL(0, R10)
	SETUP_VAL(1, R11)

loop:
	CHECK(0, BX, DI)
	CHECK(1, CX, SI)
	REFILL(BX, R10)
	REFILL(CX, R11)
	LOOKUPS2
	LOOKUPS2
	LOOKUPS2
	LOOKUPS2
	LOOKUPS2
	JMP loop

done:
	MOVQ c+0(FP), AX
	FINISH(0, R10, BX, DI)
	FINISH(1, R11, CX, SI)
	RET

// func huffLoop1BMI2(c *huffLoop): stream 0 alone, while it has room.
TEXT ·huffLoop1BMI2(SB), NOSPLIT, $64-8
	ENTER
	SETUP_PTRS(0, BX, DI)
	SETUP_VAL(0, R10)

loop:
	CHECK(0, BX, DI)
	REFILL(BX, R10)
	LOOKUPS1
	LOOKUPS1
	LOOKUPS1
	LOOKUPS1
	LOOKUPS1
	JMP loop

done:
	MOVQ c+0(FP), AX
	FINISH(0, R10, BX, DI)
	RET
