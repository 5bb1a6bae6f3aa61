package cuda

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestGemmCheck(t *testing.T) {
	tests := []struct {
		g   gemm
		bad string
	}{
		{gemm{false, false, 4, 3, 2, 4, 2, 4}, ""},
		{gemm{true, false, 4, 3, 2, 2, 2, 4}, ""},  // A stored k×m
		{gemm{false, true, 4, 3, 2, 4, 3, 4}, ""},  // B stored n×k
		{gemm{false, false, 0, 0, 0, 1, 1, 1}, ""}, // empty is fine, ld ≥ 1
		{gemm{false, false, 4, 3, 2, 3, 2, 4}, "lda=3 < 4"},
		{gemm{true, false, 4, 3, 2, 1, 2, 4}, "lda=1 < 2"},
		{gemm{false, false, 4, 3, 2, 4, 1, 4}, "ldb=1 < 2"},
		{gemm{false, true, 4, 3, 2, 4, 2, 4}, "ldb=2 < 3"},
		{gemm{false, false, 4, 3, 2, 4, 2, 3}, "ldc=3 < m=4"},
		{gemm{false, false, -1, 3, 2, 4, 2, 4}, "negative"},
		{gemm{false, false, 1 << 31, 1, 1, 1 << 31, 1, 1 << 31}, "32-bit"},
	}
	for _, tc := range tests {
		err := tc.g.check()
		if tc.bad == "" && err != nil || tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("%+v: err %v, want %q", tc.g, err, tc.bad)
		}
	}
}

// colMajorGemm is the reference for what cuBLAS computes: column-major,
// element (i, j) of an r×c matrix with leading dimension ld at i + j·ld.
func colMajorGemm(g gemm, alpha float32, a, b []float32, beta float32, c []float32) {
	at := func(i, l int) float32 {
		if g.transA {
			return a[l+i*g.lda]
		}
		return a[i+l*g.lda]
	}
	bt := func(l, j int) float32 {
		if g.transB {
			return b[j+l*g.ldb]
		}
		return b[l+j*g.ldb]
	}
	for i := range g.m {
		for j := range g.n {
			var s float64
			for l := range g.k {
				s += float64(at(i, l)) * float64(bt(l, j))
			}
			c[i+j*g.ldc] = alpha*float32(s) + beta*c[i+j*g.ldc]
		}
	}
}

// rowMajorGemm is the plain row-major definition SgemmRowMajor promises.
func rowMajorGemm(g gemm, alpha float32, a, b []float32, beta float32, c []float32) {
	for i := range g.m {
		for j := range g.n {
			var s float64
			for l := range g.k {
				var av, bv float32
				if g.transA {
					av = a[l*g.lda+i]
				} else {
					av = a[i*g.lda+l]
				}
				if g.transB {
					bv = b[j*g.ldb+l]
				} else {
					bv = b[l*g.ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			c[i*g.ldc+j] = alpha*float32(s) + beta*c[i*g.ldc+j]
		}
	}
}

// TestRowMajorSwap checks the operand swap on the CPU: running the
// column-major reference on the swapped arguments, with the A and B
// buffers exchanged, must give the row-major product.
func TestRowMajorSwap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		ta, tb  bool
		m, n, k int
		pad     int // extra leading-dimension elements
	}{
		{false, false, 5, 3, 4, 0}, {true, false, 5, 3, 4, 1}, {false, true, 2, 7, 3, 2}, {true, true, 6, 6, 1, 0}, {false, false, 1, 9, 8, 3},
	} {
		rowsA, colsA := tc.m, tc.k
		if tc.ta {
			rowsA, colsA = tc.k, tc.m
		}
		rowsB, colsB := tc.k, tc.n
		if tc.tb {
			rowsB, colsB = tc.n, tc.k
		}
		g := gemm{tc.ta, tc.tb, tc.m, tc.n, tc.k, colsA + tc.pad, colsB + tc.pad, tc.n + tc.pad}
		a := randSlice(r, rowsA*g.lda)
		b := randSlice(r, rowsB*g.ldb)
		c0 := randSlice(r, tc.m*g.ldc)
		want := append([]float32(nil), c0...)
		rowMajorGemm(g, 0.5, a, b, 2, want)

		got := append([]float32(nil), c0...)
		cg := g.rowMajor()
		if err := cg.check(); err != nil {
			t.Fatalf("%+v: swapped shape invalid: %v", g, err)
		}
		colMajorGemm(cg, 0.5, b, a, 2, got) // operands swapped
		for i := range want {
			if d := want[i] - got[i]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("%+v: element %d: got %g want %g", g, i, got[i], want[i])
			}
		}
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = r.Float32()*2 - 1
	}
	return s
}
