package cpu

import "golang.org/x/sys/cpu"

// useAVX2 selects addAVX2. Tests turn it off to check the Go loop against
// the same sums.
var useAVX2 = cpu.X86.HasAVX2

// addAVX2 adds s[i] to d[i] for i below len(s) rounded down to a multiple
// of 32; d must be at least as long as s.
//
//go:noescape
func addAVX2(d, s []float32)

// addTo adds s into d element by element: d[i] += s[i]. Each sum is the
// one float32 addition the Go loop does, so results are identical with or
// without AVX2; col2im spends most of its time here.
func addTo(d, s []float32) {
	d = d[:len(s)]
	n := 0
	if useAVX2 {
		n = len(s) &^ 31
		if n > 0 {
			addAVX2(d[:n], s[:n])
		}
	}
	for i := n; i < len(s); i++ {
		d[i] += s[i]
	}
}
