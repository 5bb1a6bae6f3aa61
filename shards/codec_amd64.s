#include "textflag.h"

// The grad-zstd filter kernels (codec_amd64.go). Pixels are interleaved RGB;
// residuals are three planes. 32 pixels are 96 interleaved bytes A, B, C (32
// each) or one 32-byte register per plane. AVX2 shuffles stay inside 128-bit
// lanes, so the conversion goes through X = [A.lo|B.hi], Y = [A.hi|C.lo],
// Z = [B.lo|C.hi]: lane 0 of X, Y, Z holds bytes 0..47 (pixels 0..15, lane 0
// of each plane) and lane 1 bytes 48..95 (pixels 16..31, lane 1), so VPSHUFB
// with the same 16-byte pattern in both lanes moves bytes between them.

// spread: VPSHUFB patterns, one per plane c. At each byte position i of a
// lane, exactly one of X, Y, Z holds channel c (X holds channel i%3, Y
// (i+1)%3, Z (i+2)%3); spread c puts there the pixel that one needs.
// gather c is its inverse. mod3 selects positions i%3 == 1, then i%3 == 2,
// for the VPBLENDVBs that pick, at each position, X's, Y's or Z's plane.
DATA spread<>+0(SB)/8, $0x0d02070c01060b00
DATA spread<>+8(SB)/8, $0x050a0f04090e0308
DATA spread<>+16(SB)/8, $0x0d02070c01060b00
DATA spread<>+24(SB)/8, $0x050a0f04090e0308
DATA spread<>+32(SB)/8, $0x02070c01060b0005
DATA spread<>+40(SB)/8, $0x0a0f04090e03080d
DATA spread<>+48(SB)/8, $0x02070c01060b0005
DATA spread<>+56(SB)/8, $0x0a0f04090e03080d
DATA spread<>+64(SB)/8, $0x070c01060b00050a
DATA spread<>+72(SB)/8, $0x0f04090e03080d02
DATA spread<>+80(SB)/8, $0x070c01060b00050a
DATA spread<>+88(SB)/8, $0x0f04090e03080d02
GLOBL spread<>(SB), RODATA|NOPTR, $96

DATA gather<>+0(SB)/8, $0x05020f0c09060300
DATA gather<>+8(SB)/8, $0x0d0a0704010e0b08
DATA gather<>+16(SB)/8, $0x05020f0c09060300
DATA gather<>+24(SB)/8, $0x0d0a0704010e0b08
DATA gather<>+32(SB)/8, $0x0603000d0a070401
DATA gather<>+40(SB)/8, $0x0e0b0805020f0c09
DATA gather<>+48(SB)/8, $0x0603000d0a070401
DATA gather<>+56(SB)/8, $0x0e0b0805020f0c09
DATA gather<>+64(SB)/8, $0x0704010e0b080502
DATA gather<>+72(SB)/8, $0x0f0c090603000d0a
DATA gather<>+80(SB)/8, $0x0704010e0b080502
DATA gather<>+88(SB)/8, $0x0f0c090603000d0a
GLOBL gather<>(SB), RODATA|NOPTR, $96

DATA mod3<>+0(SB)/8, $0xff0000ff0000ff00
DATA mod3<>+8(SB)/8, $0x0000ff0000ff0000
DATA mod3<>+16(SB)/8, $0xff0000ff0000ff00
DATA mod3<>+24(SB)/8, $0x0000ff0000ff0000
DATA mod3<>+32(SB)/8, $0x0000ff0000ff0000
DATA mod3<>+40(SB)/8, $0x00ff0000ff0000ff
DATA mod3<>+48(SB)/8, $0x0000ff0000ff0000
DATA mod3<>+56(SB)/8, $0x00ff0000ff0000ff
GLOBL mod3<>(SB), RODATA|NOPTR, $64

// Byte 15 of each lane, for VPSHUFB broadcasts.
DATA last15<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA last15<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA last15<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA last15<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL last15<>(SB), RODATA|NOPTR, $32

// PREFIX turns X into its running byte sum plus the carry C (every byte the
// running sum so far) and leaves in C every byte the new running sum. T and
// U are scratch. Y15 holds last15. Four shift-and-add steps sum within each
// lane; with lane totals T0, T1 and carry c, the lanes then need [c | c+T0]
// added, and the next carry is c+T0+T1, the high lane of [c+T0 | c+T0+T1].
#define PREFIX(X, C, T, U) \
	VPSLLDQ    $1, X, T; \
	VPADDB     T, X, X; \
	VPSLLDQ    $2, X, T; \
	VPADDB     T, X, X; \
	VPSLLDQ    $4, X, T; \
	VPADDB     T, X, X; \
	VPSLLDQ    $8, X, T; \
	VPADDB     T, X, X; \
	VPSHUFB    Y15, X, T; \
	VPERM2I128 $0x08, T, T, U; \
	VPADDB     C, U, U; \
	VPADDB     U, X, X; \
	VPADDB     T, U, U; \
	VPERM2I128 $0x11, U, U, C

// UNFILTER32 decodes 32 pixels: residual planes at (BX), (BX)(R9*1),
// (BX)(R9*2); output at (DX); ADDUP adds the row above at (R14); REV, run
// on the three planes after the running sums, can reverse the pixels'
// order. After the colour transform and the running sums, each plane is
// spread so that the
// byte X, Y or Z needs from it is in place; two VPBLENDVBs per output then
// pick the plane by position mod 3 (Y10: i%3 == 1, Y11: i%3 == 2), and
// VPERM2I128 reassembles A, B, C.
#define UNFILTER32(ADDUP, REV) \
	VMOVDQU    (BX)(R9*1), Y1; \
	VPADDB     (BX), Y1, Y0; \
	VPADDB     (BX)(R9*2), Y1, Y2; \
	PREFIX(Y0, Y12, Y3, Y4); \
	PREFIX(Y1, Y13, Y5, Y6); \
	PREFIX(Y2, Y14, Y7, Y8); \
	REV; \
	VPSHUFB    spread<>+0(SB), Y0, Y0; \
	VPSHUFB    spread<>+32(SB), Y1, Y1; \
	VPSHUFB    spread<>+64(SB), Y2, Y2; \
	VPBLENDVB  Y10, Y1, Y0, Y3; \
	VPBLENDVB  Y11, Y2, Y3, Y3; \
	VPBLENDVB  Y11, Y0, Y1, Y4; \
	VPBLENDVB  Y10, Y2, Y4, Y4; \
	VPBLENDVB  Y10, Y0, Y2, Y5; \
	VPBLENDVB  Y11, Y1, Y5, Y5; \
	VPERM2I128 $0x20, Y4, Y3, Y6; \
	VPERM2I128 $0x30, Y3, Y5, Y7; \
	VPERM2I128 $0x31, Y5, Y4, Y8; \
	ADDUP; \
	VMOVDQU    Y6, (DX); \
	VMOVDQU    Y7, 32(DX); \
	VMOVDQU    Y8, 64(DX)

#define ADDUP3 \
	VPADDB (R14), Y6, Y6; \
	VPADDB 32(R14), Y7, Y7; \
	VPADDB 64(R14), Y8, Y8

#define NOTHING

// REVERSE3 reverses the 32 bytes of each plane register: bytes within
// each lane (Y9 holds rev16), then the two lanes.
#define REVERSE3 \
	VPSHUFB Y9, Y0, Y0; \
	VPSHUFB Y9, Y1, Y1; \
	VPSHUFB Y9, Y2, Y2; \
	VPERMQ  $0x4e, Y0, Y0; \
	VPERMQ  $0x4e, Y1, Y1; \
	VPERMQ  $0x4e, Y2, Y2

DATA rev16<>+0(SB)/8, $0x08090a0b0c0d0e0f
DATA rev16<>+8(SB)/8, $0x0001020304050607
DATA rev16<>+16(SB)/8, $0x08090a0b0c0d0e0f
DATA rev16<>+24(SB)/8, $0x0001020304050607
GLOBL rev16<>(SB), RODATA|NOPTR, $32

// DIFF sets X to X minus X shifted one byte up (the byte before X's first
// being P's last) and P to the old X. T is scratch.
#define DIFF(X, P, T) \
	VPERM2I128 $0x21, X, P, T; \
	VPALIGNR   $15, T, X, T; \
	VMOVDQA    X, P; \
	VPSUBB     T, X, X

// FILTER32 encodes 32 pixels: pixels at (DX), the row above at (R14)
// (SUBUP subtracts it), residual planes to (BX), (BX)(R9*1), (BX)(R9*2).
// The vertical differences go to X, Y, Z; two VPBLENDVBs per plane collect
// its bytes by position mod 3 and gather puts them in pixel order; then the
// horizontal differences and the colour transform.
#define FILTER32(SUBUP) \
	VMOVDQU    (DX), Y0; \
	VMOVDQU    32(DX), Y1; \
	VMOVDQU    64(DX), Y2; \
	SUBUP; \
	VPERM2I128 $0x30, Y1, Y0, Y3; \
	VPERM2I128 $0x21, Y2, Y0, Y4; \
	VPERM2I128 $0x30, Y2, Y1, Y5; \
	VPBLENDVB  Y11, Y4, Y3, Y0; \
	VPBLENDVB  Y10, Y5, Y0, Y0; \
	VPBLENDVB  Y10, Y3, Y4, Y1; \
	VPBLENDVB  Y11, Y5, Y1, Y1; \
	VPBLENDVB  Y11, Y3, Y5, Y2; \
	VPBLENDVB  Y10, Y4, Y2, Y2; \
	VPSHUFB    gather<>+0(SB), Y0, Y0; \
	VPSHUFB    gather<>+32(SB), Y1, Y1; \
	VPSHUFB    gather<>+64(SB), Y2, Y2; \
	DIFF(Y0, Y12, Y3); \
	DIFF(Y1, Y13, Y4); \
	DIFF(Y2, Y14, Y5); \
	VPSUBB     Y1, Y0, Y0; \
	VPSUBB     Y1, Y2, Y2; \
	VMOVDQU    Y0, (BX); \
	VMOVDQU    Y1, (BX)(R9*1); \
	VMOVDQU    Y2, (BX)(R9*2)

#define SUBUP3 \
	VPSUBB (R14), Y0, Y0; \
	VPSUBB 32(R14), Y1, Y1; \
	VPSUBB 64(R14), Y2, Y2

// func filterRowsAVX2(res, pix []byte, w, h, y0, y1, npx int)
TEXT ·filterRowsAVX2(SB), NOSPLIT, $0-88
	MOVQ res_base+0(FP), SI
	MOVQ pix_base+24(FP), DI
	MOVQ w+48(FP), R8
	MOVQ h+56(FP), R9
	MOVQ y0+64(FP), R10
	MOVQ y1+72(FP), R11
	MOVQ npx+80(FP), R12
	SHRQ $5, R12
	JZ   fdone
	CMPQ R10, R11
	JGE  fdone
	IMULQ R8, R9
	LEAQ (R8)(R8*2), R13
	VMOVDQU mod3<>+0(SB), Y10
	VMOVDQU mod3<>+32(SB), Y11

frow:
	MOVQ  R10, AX
	IMULQ R8, AX
	LEAQ  (SI)(AX*1), BX
	LEAQ  (AX)(AX*2), AX
	LEAQ  (DI)(AX*1), DX
	MOVQ  DX, R14
	SUBQ  R13, R14
	MOVQ  R12, CX
	VPXOR Y12, Y12, Y12
	VPXOR Y13, Y13, Y13
	VPXOR Y14, Y14, Y14
	TESTQ R10, R10
	JZ    ffirst

floop:
	FILTER32(SUBUP3)
	ADDQ $32, BX
	ADDQ $96, DX
	ADDQ $96, R14
	DECQ CX
	JNZ  floop
	JMP  fnext

ffirst:
	FILTER32(NOTHING)
	ADDQ $32, BX
	ADDQ $96, DX
	DECQ CX
	JNZ  ffirst

fnext:
	INCQ R10
	CMPQ R10, R11
	JLT  frow

fdone:
	VZEROUPPER
	RET

// func unfilterRowAVX2(out, up, res []byte, plane, npx int, mirror bool)
TEXT ·unfilterRowAVX2(SB), NOSPLIT, $0-89
	MOVQ    out_base+0(FP), DX
	MOVQ    up_base+24(FP), R14
	MOVQ    up_len+32(FP), AX
	MOVQ    res_base+48(FP), BX
	MOVQ    plane+72(FP), R9
	MOVQ    npx+80(FP), CX
	MOVBQZX mirror+88(FP), SI
	SHRQ    $5, CX
	JZ      rdone
	VMOVDQU last15<>(SB), Y15
	VMOVDQU mod3<>+0(SB), Y10
	VMOVDQU mod3<>+32(SB), Y11
	VPXOR   Y12, Y12, Y12
	VPXOR   Y13, Y13, Y13
	VPXOR   Y14, Y14, Y14
	TESTQ   SI, SI
	JNZ     rmirror
	TESTQ   AX, AX
	JZ      rfirst

rloop:
	UNFILTER32(ADDUP3, NOTHING)
	ADDQ $32, BX
	ADDQ $96, DX
	ADDQ $96, R14
	DECQ CX
	JNZ  rloop
	JMP  rdone

rfirst:
	UNFILTER32(NOTHING, NOTHING)
	ADDQ $32, BX
	ADDQ $96, DX
	DECQ CX
	JNZ  rfirst
	JMP  rdone

rmirror:
	// Block k of the row goes, mirrored, to block nblk-1-k of out (and
	// reads the same block of up, which is mirrored alike).
	LEAQ    (CX)(CX*2), R8
	SHLQ    $5, R8
	SUBQ    $96, R8
	ADDQ    R8, DX
	ADDQ    R8, R14
	VMOVDQU rev16<>(SB), Y9
	TESTQ   AX, AX
	JZ      mfirst

mloop:
	UNFILTER32(ADDUP3, REVERSE3)
	ADDQ $32, BX
	SUBQ $96, DX
	SUBQ $96, R14
	DECQ CX
	JNZ  mloop
	JMP  rdone

mfirst:
	UNFILTER32(NOTHING, REVERSE3)
	ADDQ $32, BX
	SUBQ $96, DX
	DECQ CX
	JNZ  mfirst

rdone:
	VZEROUPPER
	RET
