// Package blas owns the matrix multiply that both CPU training and the
// benchmarks stand on. It loads OpenBLAS at run time through purego, so the
// build stays CGO_ENABLED=0, and falls back to gonum's pure-Go BLAS when no
// library can be opened.
//
// The library is looked up once, on first use: $OPENBLAS_LIB if set, then
// libopenblas.so.0, libopenblas.so and libblas.so.3 (on macOS the .dylib
// names and Homebrew's and MacPorts' folders: libNames). OPENBLAS_LIB=none
// skips the search and forces gonum. Every function here is
// safe for concurrent use; OpenBLAS itself serialises or threads its calls.
//
// Implementation satisfies the BLAS interface of gorgonia and gorgonia's
// tensor package (gonum's blas.Float32, Float64, Complex64, Complex128):
// gonum for everything, with Sgemm and Dgemm routed to OpenBLAS.
package blas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/alexnet-repro/alexnet/internal/dl"
	"github.com/ebitengine/purego"
	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// CBLAS enumerations (cblas.h); row-major is how every Go slice here is laid out.
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

type library struct {
	path       string
	sgemm      func(order, transA, transB, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	dgemm      func(order, transA, transB, m, n, k int32, alpha float64, a *float64, lda int32, b *float64, ldb int32, beta float64, c *float64, ldc int32)
	setThreads func(n int32)
	getThreads func() int32
	getConfig  func() string
	coreName   func() string
}

var (
	loadOnce sync.Once
	lib      *library // nil when OpenBLAS could not be loaded
	loadErr  error
)

// candidates lists the libraries tried, in order.
func candidates() []string {
	var c []string
	if p := os.Getenv("OPENBLAS_LIB"); p != "" {
		c = append(c, p)
	}
	return append(c, libNames(runtime.GOOS)...)
}

// libNames are the OpenBLAS libraries tried on goos. Homebrew keeps
// OpenBLAS out of its lib folders (keg-only), and dlopen does not search
// /opt/homebrew or MacPorts' /opt/local, so on macOS they are named
// outright. (Untested here: no Mac.)
func libNames(goos string) []string {
	if goos == "darwin" {
		return []string{"libopenblas.dylib", "libopenblas.0.dylib",
			"/opt/homebrew/opt/openblas/lib/libopenblas.dylib", "/usr/local/opt/openblas/lib/libopenblas.dylib",
			"/opt/local/lib/libopenblas.dylib"}
	}
	return []string{"libopenblas.so.0", "libopenblas.so", "libblas.so.3"}
}

func load() {
	if os.Getenv("OPENBLAS_LIB") == "none" {
		loadErr = errors.New("OPENBLAS_LIB=none")
		return
	}
	var errs []string
	for _, path := range candidates() {
		l, err := open(path)
		if err == nil {
			lib = l
			return
		}
		errs = append(errs, err.Error())
	}
	loadErr = errors.New(strings.Join(errs, "; "))
}

func open(path string) (*library, error) {
	h, err := dl.Open(path, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	l := &library{path: path}
	// RegisterLibFunc panics on a missing symbol; a reference BLAS without
	// the CBLAS layer must be an error, not a crash.
	bind := func(fptr any, name string, required bool) error {
		sym, err := dl.Sym(h, name)
		if err != nil || sym == 0 {
			if required {
				return fmt.Errorf("%s: no symbol %s", path, name)
			}
			return nil
		}
		purego.RegisterFunc(fptr, sym)
		return nil
	}
	if err := bind(&l.sgemm, "cblas_sgemm", true); err != nil {
		dl.Close(h)
		return nil, err
	}
	if err := bind(&l.dgemm, "cblas_dgemm", true); err != nil {
		dl.Close(h)
		return nil, err
	}
	_ = bind(&l.setThreads, "openblas_set_num_threads", false)
	_ = bind(&l.getThreads, "openblas_get_num_threads", false)
	_ = bind(&l.getConfig, "openblas_get_config", false)
	_ = bind(&l.coreName, "openblas_get_corename", false)
	return l, nil
}

func loaded() *library {
	loadOnce.Do(load)
	return lib
}

// Backend says which SGEMM runs: "OpenBLAS <config> (<path>)", or
// "gonum (<why OpenBLAS is absent>)".
func Backend() string {
	l := loaded()
	if l == nil {
		return fmt.Sprintf("gonum (%v)", loadErr)
	}
	name := "BLAS"
	if l.getConfig != nil {
		name = strings.TrimSpace(l.getConfig())
	}
	return fmt.Sprintf("%s (%s)", name, l.path)
}

// Arith names what decides SGEMM's bits: the library's version, build and
// kernels (OpenBLAS's config names the core type it chose), or gonum's Go
// code for this architecture. Two runs under the same Arith sum alike;
// the thread count does not change the sums.
func Arith() string {
	l := loaded()
	if l == nil {
		return "gonum " + runtime.GOARCH
	}
	if l.getConfig != nil {
		return strings.TrimSpace(l.getConfig())
	}
	return "CBLAS " + filepath.Base(l.path)
}

// avx512Cores are OpenBLAS's core types with AVX-512 SGEMM kernels
// (0.3.21 to 0.3.30; Zen 4 and 5 get Cooperlake's or SkylakeX's).
var avx512Cores = map[string]bool{"skylakex": true, "cooperlake": true, "sapphirerapids": true}

// KernelNote returns a sentence when the environment's OPENBLAS_CORETYPE
// holds OpenBLAS to a core type without AVX-512 kernels on a CPU that has
// AVX-512 (this project's development VMs set Haswell), and "" otherwise.
// The setting is the user's to keep, so it is named, not overridden: on
// those VMs OpenBLAS's own choice trains 1.2-1.5x faster (README).
func KernelNote() string {
	set := os.Getenv("OPENBLAS_CORETYPE")
	l := loaded()
	if set == "" || l == nil || l.coreName == nil || l.getConfig == nil || !hasAVX512() {
		return ""
	}
	// Only a DYNAMIC_ARCH build reads OPENBLAS_CORETYPE; any other runs the
	// one core type it was built for, set or not.
	if !strings.Contains(l.getConfig(), "DYNAMIC_ARCH") {
		return ""
	}
	core := strings.TrimSpace(l.coreName())
	return kernelNote(set, core)
}

func kernelNote(set, core string) string {
	if core == "" || avx512Cores[strings.ToLower(core)] {
		return ""
	}
	return fmt.Sprintf("OPENBLAS_CORETYPE=%s has OpenBLAS run its %s kernels on this CPU, which has AVX-512; "+
		"unset it to let OpenBLAS choose for this CPU (in the README's table its own choice, AVX-512 kernels, "+
		"trained 1.2-1.5x faster; a --resume across the change notes other arithmetic)", set, core)
}

// Native reports whether OpenBLAS (or another CBLAS library) is loaded.
func Native() bool { return loaded() != nil }

// SetThreads sets OpenBLAS's thread count. It does nothing under gonum,
// whose level-3 routines parallelise over GOMAXPROCS on their own.
func SetThreads(n int) {
	if l := loaded(); l != nil && l.setThreads != nil && n > 0 {
		l.setThreads(int32(n))
	}
}

// Threads returns OpenBLAS's thread count, or 0 when it is not loaded or
// does not say.
func Threads() int {
	if l := loaded(); l != nil && l.getThreads != nil {
		return int(l.getThreads())
	}
	return 0
}

func trans(t bool) gblas.Transpose {
	if t {
		return gblas.Trans
	}
	return gblas.NoTrans
}

func cblasTransOf(t gblas.Transpose) int32 {
	if t == gblas.NoTrans {
		return cblasNoTrans
	}
	return cblasTrans
}

// checkGemm applies gonum's argument rules, so a bad call panics the same
// way on both paths instead of letting C read past a slice.
func checkGemm(tA, tB gblas.Transpose, m, n, k, lenA, lda, lenB, ldb, lenC, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("blas: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	rowsA, colsA := m, k
	if tA != gblas.NoTrans {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if tB != gblas.NoTrans {
		rowsB, colsB = n, k
	}
	if lda < max(1, colsA) || ldb < max(1, colsB) || ldc < max(1, n) {
		panic(fmt.Sprintf("blas: bad leading dimension lda=%d ldb=%d ldc=%d", lda, ldb, ldc))
	}
	need := func(rows, cols, ld int) int {
		if rows == 0 || cols == 0 {
			return 0
		}
		return (rows-1)*ld + cols
	}
	if lenA < need(rowsA, colsA, lda) || lenB < need(rowsB, colsB, ldb) || lenC < need(m, n, ldc) {
		panic("blas: slice too short for the matrix it holds")
	}
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major matrices,
// where op transposes when asked; C is m×n and the inner dimension is k.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func sgemm(tA, tB gblas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	l := loaded()
	if l == nil {
		gonum.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	checkGemm(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	// k == 0 still scales C by beta; A and B may then be empty, and C
	// must not see a pointer to index 0 of an empty slice.
	var pa, pb *float32
	if len(a) > 0 {
		pa = &a[0]
	}
	if len(b) > 0 {
		pb = &b[0]
	}
	l.sgemm(cblasRowMajor, cblasTransOf(tA), cblasTransOf(tB), int32(m), int32(n), int32(k),
		alpha, pa, int32(lda), pb, int32(ldb), beta, &c[0], int32(ldc))
}

func dgemm(tA, tB gblas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	l := loaded()
	if l == nil {
		gonum.Implementation{}.Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	checkGemm(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	var pa, pb *float64
	if len(a) > 0 {
		pa = &a[0]
	}
	if len(b) > 0 {
		pb = &b[0]
	}
	l.dgemm(cblasRowMajor, cblasTransOf(tA), cblasTransOf(tB), int32(m), int32(n), int32(k),
		alpha, pa, int32(lda), pb, int32(ldb), beta, &c[0], int32(ldc))
}

// Implementation is gonum's BLAS with the two GEMMs swapped for OpenBLAS's
// when it is loaded. Pass it to gorgonia.Use (which also sets tensor.Use).
type Implementation struct {
	gonum.Implementation
}

// Sgemm implements blas.Float32Level3.
func (Implementation) Sgemm(tA, tB gblas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Dgemm implements blas.Float64Level3.
func (Implementation) Dgemm(tA, tB gblas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
