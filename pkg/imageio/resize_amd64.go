package imageio

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernels. Tests turn it off to check the
// pure-Go loops against the same reference.
var useAVX2 = cpu.X86.HasAVX2

// vertRowAVX2 computes out[x] = (half + sum_j src[j*stride+x]*w[j]) >> 22
// for x below len(out) rounded down to a multiple of 8; the caller does the
// rest. src must hold (len(w)-1)*stride + len(out) bytes.
//
//go:noescape
func vertRowAVX2(out []uint8, src []uint8, stride int, w []int32)

// horizRowAVX2 computes len(offs) RGB outputs into out (3 bytes each).
// Output i reads pairs*6+2 bytes of row from offs[i] and multiplies them
// by w[i*pairs*8:], its taps' weights laid out as
// [w0 w0 w0 w1 w1 w1 0 0] per pair of taps (see kernel.expandPairs).
//
//go:noescape
func horizRowAVX2(out []uint8, row []uint8, offs []int32, w []int32, pairs int)

// setAVX2 is for tests: it switches between the assembly and Go kernels.
func setAVX2(on bool) { useAVX2 = on && cpu.X86.HasAVX2 }
