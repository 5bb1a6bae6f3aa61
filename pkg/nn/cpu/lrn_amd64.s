#include "textflag.h"

// LRN's row loops in AVX2, 8 floats a step, each float operation the Go
// loop's (lrn.go) in the same order and never fused, so the results are
// identical. Lengths are multiples of 8 (the callers' bulk).

// func sqAddAVX2(a, x []float32)
// a[i] += x[i]*x[i]
TEXT ·sqAddAVX2(SB), NOSPLIT, $0-48
	MOVQ a_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	SHRQ $3, CX
	JZ   sqadd_done

sqadd_loop:
	VMOVUPS (SI), Y0
	VMULPS  Y0, Y0, Y0
	VADDPS  (DI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     sqadd_loop
	VZEROUPPER

sqadd_done:
	RET

// func sqSubAVX2(a, x []float32)
// a[i] -= x[i]*x[i]
TEXT ·sqSubAVX2(SB), NOSPLIT, $0-48
	MOVQ a_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	SHRQ $3, CX
	JZ   sqsub_done

sqsub_loop:
	VMOVUPS (SI), Y0
	VMULPS  Y0, Y0, Y0
	VMOVUPS (DI), Y1
	VSUBPS  Y0, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     sqsub_loop
	VZEROUPPER

sqsub_done:
	RET

// func subAVX2(a, x []float32)
// a[i] -= x[i]
TEXT ·subAVX2(SB), NOSPLIT, $0-48
	MOVQ a_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	SHRQ $3, CX
	JZ   sub_done

sub_loop:
	VMOVUPS (DI), Y1
	VSUBPS  (SI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     sub_loop
	VZEROUPPER

sub_done:
	RET

// func lrnFwdAVX2(sum, x, y, inv, pw []float32, k, alpha float32)
// s = k + alpha*max(sum, 0); inv = 1/s; pw = float32(1/(r*sqrt(r))) with
// r = sqrt(float64(s)); y = x*pw.
TEXT ·lrnFwdAVX2(SB), NOSPLIT, $0-128
	MOVQ sum_base+0(FP), SI
	MOVQ sum_len+8(FP), CX
	MOVQ x_base+24(FP), R8
	MOVQ y_base+48(FP), R9
	MOVQ inv_base+72(FP), R10
	MOVQ pw_base+96(FP), R11
	VBROADCASTSS k+120(FP), Y10
	VBROADCASTSS alpha+124(FP), Y11
	VXORPS Y12, Y12, Y12
	MOVL $0x3f800000, AX // 1.0f
	MOVQ AX, X13
	VBROADCASTSS X13, Y13
	MOVQ $0x3ff0000000000000, AX // 1.0
	MOVQ AX, X14
	VBROADCASTSD X14, Y14
	SHRQ $3, CX
	JZ   fwd_done

fwd_loop:
	VMOVUPS (SI), Y0
	// max(v, 0) as Go's max: the second operand (v) comes back when
	// either is NaN, so a NaN goes on; for ±0 it gives v, where Go gives
	// +0, and k + alpha*(−0) is k either way.
	VMAXPS  Y0, Y12, Y0
	VMULPS  Y11, Y0, Y0
	VADDPS  Y10, Y0, Y0         // s
	VDIVPS  Y0, Y13, Y1         // 1/s
	VMOVUPS Y1, (R10)
	VCVTPS2PD X0, Y2            // s[0:4] as float64
	VEXTRACTF128 $1, Y0, X3
	VCVTPS2PD X3, Y3            // s[4:8]
	VSQRTPD Y2, Y4              // r
	VSQRTPD Y4, Y5              // sqrt(r)
	VMULPD  Y5, Y4, Y4
	VDIVPD  Y4, Y14, Y4         // 1/(r*sqrt(r))
	VSQRTPD Y3, Y6
	VSQRTPD Y6, Y7
	VMULPD  Y7, Y6, Y6
	VDIVPD  Y6, Y14, Y6
	VCVTPD2PSY Y4, X4
	VCVTPD2PSY Y6, X6
	VINSERTF128 $1, X6, Y4, Y4  // pw
	VMOVUPS Y4, (R11)
	VMULPS  (R8), Y4, Y5        // x*pw
	VMOVUPS Y5, (R9)
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	ADDQ    $32, R10
	ADDQ    $32, R11
	DECQ    CX
	JNZ     fwd_loop
	VZEROUPPER

fwd_done:
	RET

// func mul3AVX2(t, d, y, inv []float32)
// t = (d*y)*inv
TEXT ·mul3AVX2(SB), NOSPLIT, $0-96
	MOVQ t_base+0(FP), DI
	MOVQ t_len+8(FP), CX
	MOVQ d_base+24(FP), SI
	MOVQ y_base+48(FP), R8
	MOVQ inv_base+72(FP), R9
	SHRQ $3, CX
	JZ   mul3_done

mul3_loop:
	VMOVUPS (SI), Y0
	VMULPS  (R8), Y0, Y0
	VMULPS  (R9), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     mul3_loop
	VZEROUPPER

mul3_done:
	RET

// func lrnBwdAVX2(g, d, pw, x, sum []float32, coef float32)
// g = d*pw - (coef*x)*sum
TEXT ·lrnBwdAVX2(SB), NOSPLIT, $0-124
	MOVQ g_base+0(FP), DI
	MOVQ g_len+8(FP), CX
	MOVQ d_base+24(FP), SI
	MOVQ pw_base+48(FP), R8
	MOVQ x_base+72(FP), R9
	MOVQ sum_base+96(FP), R10
	VBROADCASTSS coef+120(FP), Y10
	SHRQ $3, CX
	JZ   bwd_done

bwd_loop:
	VMOVUPS (SI), Y0
	VMULPS  (R8), Y0, Y0        // d*pw
	VMULPS  (R9), Y10, Y1       // coef*x
	VMULPS  (R10), Y1, Y1       // (coef*x)*sum
	VSUBPS  Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	ADDQ    $32, R10
	DECQ    CX
	JNZ     bwd_loop
	VZEROUPPER

bwd_done:
	RET
