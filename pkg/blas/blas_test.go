package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/tensor"
)

// Implementation must be accepted by tensor.Use and gorgonia.Use.
var _ tensor.BLAS = Implementation{}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = r.Float32()*2 - 1
	}
	return s
}

// naiveSgemm is the reference: the definition, summed in float64.
func naiveSgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	at := func(i, p int) float64 {
		if tA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	bt := func(p, j int) float64 {
		if tB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += at(i, p) * bt(p, j)
			}
			c[i*ldc+j] = float32(float64(alpha)*s + float64(beta)*float64(c[i*ldc+j]))
		}
	}
}

func TestSgemmMatchesReference(t *testing.T) {
	t.Logf("backend: %s", Backend())
	cases := []struct {
		m, n, k     int
		pad         int // extra columns in every leading dimension
		alpha, beta float32
	}{
		{1, 1, 1, 0, 1, 0},
		{7, 5, 3, 0, 1, 0},
		{33, 17, 65, 3, 0.5, 2},
		{64, 129, 31, 1, -1, 1},
		{96, 121, 363, 0, 1, 0}, // conv1-like
		{4, 6, 0, 0, 1, 0.5},    // k=0: C is only scaled by beta
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range cases {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				name := fmt.Sprintf("%dx%dx%d/pad%d/tA=%v/tB=%v", tc.m, tc.n, tc.k, tc.pad, tA, tB)
				t.Run(name, func(t *testing.T) {
					ra, ca := tc.m, tc.k
					if tA {
						ra, ca = tc.k, tc.m
					}
					rb, cb := tc.k, tc.n
					if tB {
						rb, cb = tc.n, tc.k
					}
					lda, ldb, ldc := max(1, ca+tc.pad), max(1, cb+tc.pad), tc.n+tc.pad
					a := randSlice(r, ra*lda)
					b := randSlice(r, rb*ldb)
					c0 := randSlice(r, tc.m*ldc)
					got := append([]float32(nil), c0...)
					want := append([]float32(nil), c0...)
					viaGonum := append([]float32(nil), c0...)
					Sgemm(tA, tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, got, ldc)
					naiveSgemm(tA, tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, want, ldc)
					gonum.Implementation{}.Sgemm(trans(tA), trans(tB), tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, viaGonum, ldc)
					tol := 1e-5 * float64(tc.k+2)
					for i := range want {
						if d := math.Abs(float64(got[i] - want[i])); d > tol {
							t.Fatalf("Sgemm[%d] = %g, reference %g (|diff| %g > %g)", i, got[i], want[i], d, tol)
						}
						if d := math.Abs(float64(got[i] - viaGonum[i])); d > tol {
							t.Fatalf("Sgemm[%d] = %g, gonum %g", i, got[i], viaGonum[i])
						}
					}
				})
			}
		}
	}
}

func TestImplementationDgemmMatchesGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m, n, k := 19, 23, 29
	for _, tA := range []gblas.Transpose{gblas.NoTrans, gblas.Trans} {
		for _, tB := range []gblas.Transpose{gblas.NoTrans, gblas.Trans} {
			a, b := make([]float64, m*k), make([]float64, k*n)
			for i := range a {
				a[i] = r.NormFloat64()
			}
			for i := range b {
				b[i] = r.NormFloat64()
			}
			lda, ldb := k, n
			if tA == gblas.Trans {
				lda = m
			}
			if tB == gblas.Trans {
				ldb = k
			}
			got, want := make([]float64, m*n), make([]float64, m*n)
			Implementation{}.Dgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0, got, n)
			gonum.Implementation{}.Dgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0, want, n)
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-12*float64(k) {
					t.Fatalf("tA=%v tB=%v: Dgemm[%d] = %g, gonum %g", tA, tB, i, got[i], want[i])
				}
			}
		}
	}
}

func TestSgemmRejectsShortSlices(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Sgemm with a too-short A did not panic")
		}
	}()
	Sgemm(false, false, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
}

// TestGonumFallback runs this test binary again with OpenBLAS switched off
// (the library is looked up once per process) and checks the fallback both
// says so and computes.
func TestGonumFallback(t *testing.T) {
	if os.Getenv("BLAS_FALLBACK_CHILD") == "1" {
		if Native() {
			t.Fatalf("OPENBLAS_LIB=none, yet Backend() = %q", Backend())
		}
		c := []float32{0}
		Sgemm(false, false, 1, 1, 2, 1, []float32{1, 2}, 2, []float32{3, 4}, 1, 0, c, 1)
		if c[0] != 11 {
			t.Fatalf("gonum fallback: [1 2]·[3 4]ᵀ = %v, want 11", c[0])
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGonumFallback$", "-test.v")
	cmd.Env = append(os.Environ(), "BLAS_FALLBACK_CHILD=1", "OPENBLAS_LIB=none")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child run failed: %v\n%s", err, out)
	}
}

func TestBackendNamesLibrary(t *testing.T) {
	b := Backend()
	if Native() && !strings.Contains(b, "(") {
		t.Fatalf("Backend() = %q, want the library path in brackets", b)
	}
	if !Native() && !strings.HasPrefix(b, "gonum") {
		t.Fatalf("Backend() = %q without OpenBLAS, want gonum (...)", b)
	}
}

func TestMeasureSgemmGFLOPSPositive(t *testing.T) {
	if g := MeasureSgemmGFLOPS(64, 64, 64, 10*time.Millisecond); !(g > 0) || math.IsInf(g, 0) {
		t.Fatalf("MeasureSgemmGFLOPS = %v", g)
	}
}

// Shapes are AlexNet's per-group GEMMs at batch 32: conv layers as
// weights × im2col columns, fc6 as activations × weightsᵀ.
var gemmShapes = []struct {
	name    string
	m, n, k int
}{
	{"conv1", 96, 3025 * 4, 363},
	{"conv2", 128, 729 * 4, 1200},
	{"conv3", 384, 169 * 32, 2304},
	{"conv5", 128, 169 * 32, 1728},
	{"fc6", 32, 4096, 9216},
}

func BenchmarkSgemm(b *testing.B) {
	for _, s := range gemmShapes {
		b.Run(s.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			a, bb, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				Sgemm(false, false, s.m, s.n, s.k, 1, a, s.k, bb, s.n, 0, c, s.n)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// The note names the setting and the kernels only where OpenBLAS was held
// to a core type without AVX-512 kernels.
func TestKernelNote(t *testing.T) {
	for _, tc := range []struct {
		set, core string
		want      bool
	}{
		{"Haswell", "Haswell", true},
		{"ZEN", "Zen", true},
		{"SkylakeX", "SkylakeX", false},
		{"cooperlake", "Cooperlake", false},
		{"SapphireRapids", "SapphireRapids", false},
		{"Haswell", "", false},
	} {
		got := kernelNote(tc.set, tc.core)
		if (got != "") != tc.want {
			t.Errorf("kernelNote(%q, %q) = %q, want a note: %v", tc.set, tc.core, got, tc.want)
		}
		if got != "" && (!strings.Contains(got, "OPENBLAS_CORETYPE="+tc.set) || !strings.Contains(got, tc.core+" kernels")) {
			t.Errorf("kernelNote(%q, %q) = %q: names neither the setting nor the kernels", tc.set, tc.core, got)
		}
	}
	// The real path, as this machine is: this project's development VMs
	// set OPENBLAS_CORETYPE=Haswell on AVX-512 CPUs, where it must speak.
	set := os.Getenv("OPENBLAS_CORETYPE")
	if set == "" {
		if n := KernelNote(); n != "" {
			t.Errorf("a note without OPENBLAS_CORETYPE set: %q", n)
		}
		return
	}
	l := loaded()
	if l == nil || l.coreName == nil || l.getConfig == nil || !strings.Contains(l.getConfig(), "DYNAMIC_ARCH") || !hasAVX512() {
		t.Skipf("OPENBLAS_CORETYPE=%s, but no DYNAMIC_ARCH OpenBLAS on an AVX-512 CPU here (%s)", set, Backend())
	}
	core := strings.TrimSpace(l.coreName())
	if got := KernelNote(); (got != "") == avx512Cores[strings.ToLower(core)] {
		t.Errorf("OPENBLAS_CORETYPE=%s, OpenBLAS runs %s on an AVX-512 CPU: note %q", set, core, got)
	}
}

// The libraries tried: the Linux sonames, and on macOS the .dylib names
// and the Homebrew and MacPorts folders dlopen does not search.
func TestLibNames(t *testing.T) {
	for _, tc := range []struct {
		goos      string
		want, not string
	}{
		{"linux", "libopenblas.so.0", ".dylib"},
		{"darwin", "/opt/homebrew/opt/openblas/lib/libopenblas.dylib", ".so"},
	} {
		got := strings.Join(libNames(tc.goos), " ")
		if !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
			t.Errorf("%s: %s", tc.goos, got)
		}
	}
}
