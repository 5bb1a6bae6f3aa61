package cuda

import (
	"fmt"
	"math"
	"sync"
)

// cublasAPI holds libcublas's functions (cublas_api.h, the v2 API).
// cuBLAS is column-major and, in its default pointer mode, reads alpha and
// beta through host pointers before the call returns.
type cublasAPI struct {
	create              func(h *uintptr) int32
	destroy             func(h uintptr) int32
	setStream           func(h, s uintptr) int32
	setMathMode         func(h uintptr, mode int32) int32
	getProperty         func(kind int32, v *int32) int32
	statusName          func(s int32) string
	statusString        func(s int32) string
	sgemm               func(h uintptr, ta, tb, m, n, k int32, alpha *float32, a uintptr, lda int32, b uintptr, ldb int32, beta *float32, c uintptr, ldc int32) int32
	sgemmStridedBatched func(h uintptr, ta, tb, m, n, k int32, alpha *float32, a uintptr, lda int32, sa int64, b uintptr, ldb int32, sb int64, beta *float32, c uintptr, ldc int32, sc int64, batch int32) int32

	path    string
	version [3]int
}

var (
	cublasOnce sync.Once
	cublasLib  *cublasAPI
	cublasErr  error
)

func cublas() (*cublasAPI, error) {
	cublasOnce.Do(func() { cublasLib, cublasErr = loadCUBLAS() })
	return cublasLib, cublasErr
}

func loadCUBLAS() (*cublasAPI, error) {
	var a *cublasAPI
	_, err := libCUBLAS.load(func(path string, h uintptr) error {
		c := &cublasAPI{}
		if _, err := bindSyms(path, h, cublasSyms(c)); err != nil {
			return err
		}
		for i := range c.version {
			var v int32
			if r := c.getProperty(int32(i), &v); r != 0 { // MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
				return c.err(r, "cublasGetProperty(%d)", i)
			}
			c.version[i] = int(v)
		}
		// cuBLAS's major is the CUDA major it ships with.
		if err := checkCUDAMajor(fmt.Sprintf("cuBLAS %d.%d", c.version[0], c.version[1]), c.version[0], driverCUDA()); err != nil {
			return err
		}
		a = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.path = loadedPath(libCUBLAS)
	return a, nil
}

func cublasSyms(a *cublasAPI) []sym {
	return []sym{
		{fptr: &a.create, names: []string{"cublasCreate_v2"}},
		{fptr: &a.destroy, names: []string{"cublasDestroy_v2"}},
		{fptr: &a.setStream, names: []string{"cublasSetStream_v2"}},
		{fptr: &a.setMathMode, names: []string{"cublasSetMathMode"}},
		{fptr: &a.getProperty, names: []string{"cublasGetProperty"}},
		{fptr: &a.statusName, names: []string{"cublasGetStatusName"}, optional: true},
		{fptr: &a.statusString, names: []string{"cublasGetStatusString"}, optional: true},
		{fptr: &a.sgemm, names: []string{"cublasSgemm_v2"}},
		{fptr: &a.sgemmStridedBatched, names: []string{"cublasSgemmStridedBatched"}},
	}
}

func (a *cublasAPI) err(r int32, format string, args ...any) error {
	if r == 0 {
		return nil
	}
	var desc string
	if a != nil && a.statusString != nil {
		desc = a.statusString(r)
	}
	return newError(APICUBLAS, int(r), desc, "", format, args...)
}

// BLASMath is a cuBLAS math mode (cublasMath_t).
type BLASMath int32

const (
	// MathDefault computes float32 products in float32 (FMA), unless
	// NVIDIA_TF32_OVERRIDE=1 is set in the environment.
	MathDefault BLASMath = 0
	// MathPedantic forbids every reduced-precision shortcut.
	MathPedantic BLASMath = 2
	// MathTF32 lets Sgemm round inputs to TF32 (10-bit mantissa) and use
	// tensor cores: several times faster on Ampere and later, relative
	// error around 1e-3.
	MathTF32 BLASMath = 3
)

func (m BLASMath) String() string {
	switch m {
	case MathDefault:
		return "CUBLAS_DEFAULT_MATH"
	case MathPedantic:
		return "CUBLAS_PEDANTIC_MATH"
	case MathTF32:
		return "CUBLAS_TF32_TENSOR_OP_MATH"
	}
	return fmt.Sprintf("cublasMath_t(%d)", int32(m))
}

// BLAS is a cuBLAS handle bound to a device. Not safe for concurrent use:
// its stream and math mode are shared state; use one per goroutine.
type BLAS struct {
	dev *Device
	api *cublasAPI
	h   uintptr
}

// NewBLAS creates a cuBLAS handle in the device's primary context.
func (d *Device) NewBLAS() (*BLAS, error) {
	a, err := cublas()
	if err != nil {
		return nil, err
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	b := &BLAS{dev: d, api: a}
	if r := a.create(&b.h); r != 0 {
		return nil, a.err(r, "cublasCreate_v2 [%s]", a.path)
	}
	return b, nil
}

// CUBLASVersion returns the loaded cuBLAS's major, minor and patch.
func CUBLASVersion() ([3]int, error) {
	a, err := cublas()
	if err != nil {
		return [3]int{}, err
	}
	return a.version, nil
}

// Close destroys the handle.
func (b *BLAS) Close() error {
	if b == nil || b.h == 0 {
		return nil
	}
	if err := b.dev.enter(); err != nil {
		return err
	}
	defer b.dev.leave()
	err := b.api.err(b.api.destroy(b.h), "cublasDestroy_v2")
	b.h = 0
	return err
}

// SetStream makes later calls queue on s (nil: legacy default stream).
func (b *BLAS) SetStream(s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := b.dev.enter(); err != nil {
		return err
	}
	defer b.dev.leave()
	return b.api.err(b.api.setStream(b.h, s.handle()), "cublasSetStream_v2")
}

// SetMathMode chooses float32 or TF32 arithmetic for later calls.
func (b *BLAS) SetMathMode(m BLASMath) error {
	if err := b.dev.enter(); err != nil {
		return err
	}
	defer b.dev.leave()
	return b.api.err(b.api.setMathMode(b.h, int32(m)), "cublasSetMathMode(%v)", m)
}

// gemm is one GEMM's shape in cuBLAS's column-major terms: C (m×n) =
// op(A) (m×k) · op(B) (k×n), with leading dimensions in elements.
type gemm struct {
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int
}

// check applies cuBLAS's argument rules, so a bad call fails with a
// message naming the dimension instead of CUBLAS_STATUS_INVALID_VALUE.
func (g gemm) check() error {
	if g.m < 0 || g.n < 0 || g.k < 0 {
		return fmt.Errorf("negative dimension m=%d n=%d k=%d", g.m, g.n, g.k)
	}
	rowsA, rowsB := g.m, g.k // rows of A and B as stored, column-major
	if g.transA {
		rowsA = g.k
	}
	if g.transB {
		rowsB = g.n
	}
	if g.lda < max(1, rowsA) {
		return fmt.Errorf("lda=%d < %d (rows of A as stored)", g.lda, max(1, rowsA))
	}
	if g.ldb < max(1, rowsB) {
		return fmt.Errorf("ldb=%d < %d (rows of B as stored)", g.ldb, max(1, rowsB))
	}
	if g.ldc < max(1, g.m) {
		return fmt.Errorf("ldc=%d < m=%d", g.ldc, max(1, g.m))
	}
	for _, v := range []int{g.m, g.n, g.k, g.lda, g.ldb, g.ldc} {
		if v > math.MaxInt32 {
			return fmt.Errorf("dimension %d exceeds cuBLAS's 32-bit int", v)
		}
	}
	return nil
}

// rowMajor converts a row-major GEMM to the column-major one cuBLAS runs.
// A row-major r×c matrix with row stride ld is, read column-major, its
// c×r transpose with the same ld. So row-major C = op(A)·op(B) is
// column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands (and their
// transpose flags and leading dimensions) and swap m with n. No data
// moves. The caller swaps the A and B pointers likewise.
func (g gemm) rowMajor() gemm {
	return gemm{
		transA: g.transB, transB: g.transA,
		m: g.n, n: g.m, k: g.k,
		lda: g.ldb, ldb: g.lda, ldc: g.ldc,
	}
}

func op(t bool) int32 {
	if t {
		return 1 // CUBLAS_OP_T
	}
	return 0 // CUBLAS_OP_N
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on column-major float32
// matrices, as cublasSgemm does: C is m×n, op(A) m×k, op(B) k×n.
func (b *BLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, A DevicePtr, lda int, B DevicePtr, ldb int, beta float32, C DevicePtr, ldc int) error {
	g := gemm{transA, transB, m, n, k, lda, ldb, ldc}
	return b.sgemm(g, alpha, A, B, beta, C, "cublasSgemm_v2")
}

// SgemmRowMajor is Sgemm for row-major matrices (C is m×n with row stride
// ldc, and so on), as Go code and pkg/blas lay them out. See gemm.rowMajor
// for how it maps onto cuBLAS without copying.
func (b *BLAS) SgemmRowMajor(transA, transB bool, m, n, k int, alpha float32, A DevicePtr, lda int, B DevicePtr, ldb int, beta float32, C DevicePtr, ldc int) error {
	g := gemm{transA, transB, m, n, k, lda, ldb, ldc}
	if err := g.rowMajorCheck(); err != nil {
		return fmt.Errorf("cuda: SgemmRowMajor: %w", err)
	}
	return b.sgemm(g.rowMajor(), alpha, B, A, beta, C, "cublasSgemm_v2 (row-major)")
}

// rowMajorCheck validates a row-major shape by checking the column-major
// GEMM it becomes, so both paths apply the same rules.
func (g gemm) rowMajorCheck() error { return g.rowMajor().check() }

func (b *BLAS) sgemm(g gemm, alpha float32, A, B DevicePtr, beta float32, C DevicePtr, what string) error {
	if err := g.check(); err != nil {
		return fmt.Errorf("cuda: %s: %w", what, err)
	}
	if err := b.dev.enter(); err != nil {
		return err
	}
	defer b.dev.leave()
	r := b.api.sgemm(b.h, op(g.transA), op(g.transB), int32(g.m), int32(g.n), int32(g.k),
		&alpha, uintptr(A), int32(g.lda), uintptr(B), int32(g.ldb), &beta, uintptr(C), int32(g.ldc))
	return b.api.err(r, "%s(%v,%v, m=%d n=%d k=%d, lda=%d ldb=%d ldc=%d)", what, g.transA, g.transB, g.m, g.n, g.k, g.lda, g.ldb, g.ldc)
}

// SgemmStridedBatched runs batch column-major Sgemms whose matrices sit at
// fixed element strides: C_i = alpha·op(A_i)·op(B_i) + beta·C_i with A_i at
// A + i·strideA elements, and so on.
func (b *BLAS) SgemmStridedBatched(transA, transB bool, m, n, k int, alpha float32,
	A DevicePtr, lda int, strideA int64, B DevicePtr, ldb int, strideB int64,
	beta float32, C DevicePtr, ldc int, strideC int64, batch int) error {
	g := gemm{transA, transB, m, n, k, lda, ldb, ldc}
	return b.sgemmBatched(g, alpha, A, strideA, B, strideB, beta, C, strideC, batch, "cublasSgemmStridedBatched")
}

// SgemmStridedBatchedRowMajor is SgemmStridedBatched on row-major matrices.
func (b *BLAS) SgemmStridedBatchedRowMajor(transA, transB bool, m, n, k int, alpha float32,
	A DevicePtr, lda int, strideA int64, B DevicePtr, ldb int, strideB int64,
	beta float32, C DevicePtr, ldc int, strideC int64, batch int) error {
	g := gemm{transA, transB, m, n, k, lda, ldb, ldc}
	return b.sgemmBatched(g.rowMajor(), alpha, B, strideB, A, strideA, beta, C, strideC, batch, "cublasSgemmStridedBatched (row-major)")
}

func (b *BLAS) sgemmBatched(g gemm, alpha float32, A DevicePtr, sa int64, B DevicePtr, sb int64, beta float32, C DevicePtr, sc int64, batch int, what string) error {
	if err := g.check(); err != nil {
		return fmt.Errorf("cuda: %s: %w", what, err)
	}
	if batch < 0 || batch > math.MaxInt32 {
		return fmt.Errorf("cuda: %s: batch %d out of range", what, batch)
	}
	if err := b.dev.enter(); err != nil {
		return err
	}
	defer b.dev.leave()
	r := b.api.sgemmStridedBatched(b.h, op(g.transA), op(g.transB), int32(g.m), int32(g.n), int32(g.k),
		&alpha, uintptr(A), int32(g.lda), sa, uintptr(B), int32(g.ldb), sb, &beta, uintptr(C), int32(g.ldc), sc, int32(batch))
	return b.api.err(r, "%s(m=%d n=%d k=%d batch=%d)", what, g.m, g.n, g.k, batch)
}
