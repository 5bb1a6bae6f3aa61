package cuda

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	native "github.com/alexnet-repro/alexnet/internal/dl"
	"github.com/ebitengine/purego"
)

// fakeLibSource implements a few CUDA, cuBLAS, cuDNN and NVRTC entry
// points with their real C signatures (from cuda.h, cublas_api.h,
// cudnn_*.h v9 and nvrtc.h). Each records the arguments it received, so
// the test can check that this package's Go signatures put every value
// where the C ABI expects it: the long ones with stack arguments, the
// float and double parameters mixed among integers, the int64 strides,
// the void** kernel parameters, the char** option list and the
// algorithm-performance struct layout. None of that can be wrong
// silently on the GPU machine if it is right here.
const fakeLibSource = `
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static long long I[64]; static double D[16]; static int ni, nd;
static char S[1024];
static void reset(void) { ni = nd = 0; S[0] = 0; }
static void pi(long long v) { I[ni++] = v; }
static void pd(double v) { D[nd++] = v; }
static void ps(const char* s) { if (S[0]) strcat(S, "|"); strcat(S, s); }
#define P(x) pi((long long)(intptr_t)(x))

int fake_get(long long* ints, double* dbls, int* counts, char* str) {
	memcpy(ints, I, ni * 8); memcpy(dbls, D, nd * 8);
	counts[0] = ni; counts[1] = nd; strcpy(str, S); return 0;
}

/* driver */
static void* last_ctx;
void* fake_last_ctx(void) { return last_ctx; }
int cuCtxSetCurrent(void* ctx) { last_ctx = ctx; return 0; }
int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shmem, void* stream, void** params, void** extra) {
	reset(); P(f); pi(gx); pi(gy); pi(gz); pi(bx); pi(by); pi(bz); pi(shmem); P(stream);
	pi((long long)*(unsigned long long*)params[0]); pi(*(int*)params[1]); pd(*(float*)params[2]);
	pi(*(long long*)params[3]); pd(*(double*)params[4]); pi((long long)*(unsigned long long*)params[5]);
	pi(extra == 0);
	return 0;
}
int cuGetErrorString(int r, const char** s) { *s = r == 2 ? "out of memory" : "a PTX JIT compilation failed"; return 0; }
int cuGetErrorName(int r, const char** s) { *s = r == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_INVALID_PTX"; return 0; }
int cuMemAlloc_v2(unsigned long long* p, size_t n) { reset(); pi((long long)n); return 2; }
int cuModuleLoadDataEx(void** m, const void* image, unsigned n, int* opts, void** vals) {
	reset(); pi(n); pi(opts[0]); pi(opts[1]); P(vals[1]); pi((long long)strlen((const char*)image));
	strcpy((char*)vals[0], "ptxas application ptx input, line 1; fatal: bad");
	return 218;
}
int cuEventElapsedTime_v2(float* ms, void* a, void* b) { reset(); P(a); P(b); *ms = 1.5f; return 0; }
int cuMemsetD8Async(unsigned long long dst, unsigned char v, size_t n, void* s) { reset(); pi((long long)dst); pi(v); pi((long long)n); P(s); return 0; }

/* cuBLAS */
int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc) {
	reset(); P(h); pi(ta); pi(tb); pi(m); pi(n); pi(k); pd(*alpha); P(A); pi(lda); P(B); pi(ldb); pd(*beta); P(C); pi(ldc);
	return 0;
}
int cublasSgemmStridedBatched(void* h, int ta, int tb, int m, int n, int k, const float* alpha,
                              const float* A, int lda, long long sa, const float* B, int ldb, long long sb,
                              const float* beta, float* C, int ldc, long long sc, int batch) {
	reset(); P(h); pi(ta); pi(tb); pi(m); pi(n); pi(k); pd(*alpha); P(A); pi(lda); pi(sa); P(B); pi(ldb); pi(sb);
	pd(*beta); P(C); pi(ldc); pi(sc); pi(batch);
	return 0;
}
const char* cublasGetStatusString(int s) { return "an invalid numeric value was used as an argument"; }

/* cuDNN */
const char* cudnnGetErrorString(int s) { return "CUDNN_STATUS_BAD_PARAM"; }
void cudnnGetLastErrorString(char* buf, size_t n) { strncpy(buf, "cudnnSetTensor4dDescriptor: bad dims", n); }
int cudnnCreateTensorDescriptor(void** d) { *d = (void*)0x11; return 0; }
int cudnnDestroyTensorDescriptor(void* d) { return 0; }
int cudnnSetTensor4dDescriptor(void* d, int format, int dtype, int n, int c, int h, int w) {
	reset(); P(d); pi(format); pi(dtype); pi(n); pi(c); pi(h); pi(w); return 2000;
}
int cudnnCreateLRNDescriptor(void** d) { *d = (void*)0x12; return 0; }
int cudnnSetLRNDescriptor(void* d, unsigned n, double a, double b, double k) { reset(); P(d); pi(n); pd(a); pd(b); pd(k); return 0; }
int cudnnCreateActivationDescriptor(void** d) { *d = (void*)0x13; return 0; }
int cudnnSetActivationDescriptor(void* d, int mode, int nan, double coef) { reset(); P(d); pi(mode); pi(nan); pd(coef); return 0; }
int cudnnCreateDropoutDescriptor(void** d) { *d = (void*)0x14; return 0; }
int cudnnDropoutGetStatesSize(void* h, size_t* n) { *n = 0; return 0; }
int cudnnSetDropoutDescriptor(void* d, void* h, float p, void* states, size_t sz, unsigned long long seed) {
	reset(); P(d); P(h); pd(p); P(states); pi((long long)sz); pi((long long)seed); return 0;
}
int cudnnConvolutionForward(void* h, const void* alpha, void* xd, const void* x, void* wd, const void* w, void* cd,
                            int algo, void* ws, size_t wss, const void* beta, void* yd, void* y) {
	reset(); P(h); pd(*(const float*)alpha); P(xd); P(x); P(wd); P(w); P(cd); pi(algo); P(ws); pi((long long)wss);
	pd(*(const float*)beta); P(yd); P(y);
	return 0;
}
int cudnnLRNCrossChannelBackward(void* h, void* ld, int mode, const void* alpha, void* yd, const void* y,
                                 void* dyd, const void* dy, void* xd, const void* x, const void* beta,
                                 void* dxd, void* dx) {
	reset(); P(h); P(ld); pi(mode); pd(*(const float*)alpha); P(yd); P(y); P(dyd); P(dy); P(xd); P(x);
	pd(*(const float*)beta); P(dxd); P(dx);
	return 0;
}
typedef struct { int algo; int status; float time; size_t memory; int determinism; int mathType; int reserved[3]; } perf_t;
int cudnnFindConvolutionForwardAlgorithm(void* h, void* x, void* w, void* c, void* y, int req, int* ret, perf_t* p) {
	reset(); P(h); P(x); P(w); P(c); P(y); pi(req); pi((long long)sizeof(perf_t));
	p[0].algo = 6; p[0].status = 0; p[0].time = 0.25f; p[0].memory = 123456789012ULL; p[0].determinism = 1; p[0].mathType = 3;
	p[1].algo = 1; p[1].status = 3000; p[1].time = -1.0f; p[1].memory = 7; p[1].determinism = 0; p[1].mathType = 1;
	*ret = 2;
	return 0;
}

/* NVRTC */
static char src_seen[256];
int nvrtcCreateProgram(void** prog, const char* src, const char* name, int nh, const char* const* h, const char* const* in) {
	strncpy(src_seen, src, sizeof src_seen - 1); *prog = (void*)0x21; return 0;
}
int nvrtcCompileProgram(void* prog, int n, const char* const* opts) {
	reset(); P(prog); pi(n); for (int i = 0; i < n; i++) ps(opts[i]); ps(src_seen); return 0;
}
static const char* fake_log = "warning: fake";
static const char* fake_ptx = "// fake ptx\n.version 9.0\n";
int nvrtcGetProgramLogSize(void* prog, size_t* n) { *n = strlen(fake_log) + 1; return 0; }
int nvrtcGetProgramLog(void* prog, char* buf) { strcpy(buf, fake_log); return 0; }
int nvrtcGetPTXSize(void* prog, size_t* n) { *n = strlen(fake_ptx) + 1; return 0; }
int nvrtcGetPTX(void* prog, char* buf) { strcpy(buf, fake_ptx); return 0; }
/* Machine code holds NULs: the size, not a terminator, bounds it. */
static const unsigned char fake_cubin[] = { 0x7f, 'E', 'L', 'F', 0, 2, 0, 0xff };
int nvrtcGetCUBINSize(void* prog, size_t* n) { *n = sizeof fake_cubin; return 0; }
int nvrtcGetCUBIN(void* prog, char* buf) { memcpy(buf, fake_cubin, sizeof fake_cubin); return 0; }
int nvrtcDestroyProgram(void** prog) { *prog = 0; return 0; }
`

// fakeLib compiles fakeLibSource and opens it, skipping without a C
// compiler (the GPU machine may have none; this test is about the ABI,
// which the build machine checks).
func fakeLib(t *testing.T) uintptr {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Skip("no C compiler to build the fake library")
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "fake.c")
	lib := filepath.Join(dir, "libfakecuda.so")
	if err := os.WriteFile(src, []byte(fakeLibSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-o", lib, src).CombinedOutput(); err != nil {
		t.Skipf("cannot build the fake library: %v\n%s", err, out)
	}
	h, err := native.Open(lib, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { native.Close(h) })
	return h
}

// bindFake binds a package table against the fake library, every symbol
// optional since the fake implements only some.
func bindFake(t *testing.T, h uintptr, table []sym) {
	t.Helper()
	for i := range table {
		table[i].optional = true
	}
	if _, err := bindSyms("fake", h, table); err != nil {
		t.Fatal(err)
	}
}

type recorder struct {
	get func(ints *int64, dbls *float64, counts *int32, str *byte) int32
}

func (r recorder) read() (ints []int64, dbls []float64, str string) {
	i := make([]int64, 64)
	d := make([]float64, 16)
	c := make([]int32, 2)
	s := make([]byte, 1024)
	r.get(&i[0], &d[0], &c[0], &s[0])
	return i[:c[0]], d[:c[1]], goString(&s[0])
}

func eqInts(t *testing.T, what string, got []int64, want ...int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d integer arguments %v, want %d %v", what, len(got), got, len(want), want)
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: integer argument %d = %#x, want %#x", what, i, got[i], want[i])
		}
	}
}

func eqFloats(t *testing.T, what string, got []float64, want ...float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: float arguments %v, want %v", what, got, want)
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: float argument %d = %g, want %g", what, i, got[i], want[i])
		}
	}
}

func TestABIThroughFakeLibrary(t *testing.T) {
	h := fakeLib(t)
	var rec recorder
	purego.RegisterLibFunc(&rec.get, h, "fake_get")
	var lastCtx func() uintptr
	purego.RegisterLibFunc(&lastCtx, h, "fake_last_ctx")

	drv := &driverAPI{}
	bindFake(t, h, driverSyms(drv))
	drv.ctxSetCurrentAddr, _ = native.Sym(h, "cuCtxSetCurrent")
	dev := &Device{api: drv, ctx: 0xc0ffee}

	t.Run("cuLaunchKernel", func(t *testing.T) {
		f := &Function{mod: &Module{dev: dev}, h: 0xf00d, Name: "k"}
		err := f.Launch([3]uint32{2, 3, 4}, [3]uint32{32, 2, 1}, 48, &Stream{dev: dev, h: 0x5},
			DevicePtr(0xdead0000), int32(-3), float32(2.5), int64(1<<40), 3.25, Buffer{Ptr: 0xbeef00})
		if err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ := rec.read()
		eqInts(t, "launch", ints, 0xf00d, 2, 3, 4, 32, 2, 1, 48, 0x5, 0xdead0000, -3, 1<<40, 0xbeef00, 1)
		eqFloats(t, "launch", dbls, 2.5, 3.25)
		if got := lastCtx(); got != 0xc0ffee {
			t.Errorf("context made current: %#x", got)
		}
	})

	t.Run("error strings from the driver", func(t *testing.T) {
		_, err := dev.MemAlloc(1 << 30)
		if want := "cuda: cuMemAlloc_v2(1073741824): CUDA_ERROR_OUT_OF_MEMORY: out of memory"; err == nil || err.Error() != want {
			t.Errorf("got  %v\nwant %s", err, want)
		}
		ints, _, _ := rec.read()
		eqInts(t, "cuMemAlloc_v2", ints, 1<<30)
	})

	t.Run("cuModuleLoadDataEx log", func(t *testing.T) {
		_, err := dev.LoadPTX(".version 9.0")
		if err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_INVALID_PTX: a PTX JIT compilation failed (ptxas application ptx input, line 1; fatal: bad)") {
			t.Errorf("err = %v", err)
		}
		ints, _, _ := rec.read()
		eqInts(t, "cuModuleLoadDataEx", ints, 2, jitErrorLogBuffer, jitErrorLogBufferSizeBytes, 8192, int64(len(".version 9.0")))
	})

	t.Run("cuEventElapsedTime_v2 and cuMemsetD8Async", func(t *testing.T) {
		ms, err := ElapsedMs(&Event{dev: dev, h: 0xa, timing: true}, &Event{dev: dev, h: 0xb, timing: true})
		if err != nil || ms != 1.5 {
			t.Errorf("ElapsedMs = %g, %v", ms, err)
		}
		if err := dev.MemsetD8Async(0x1000, 0xab, 77, &Stream{dev: dev, h: 0x6}); err != nil {
			t.Fatal(err)
		}
		ints, _, _ := rec.read()
		eqInts(t, "cuMemsetD8Async", ints, 0x1000, 0xab, 77, 0x6)
	})

	t.Run("cuBLAS", func(t *testing.T) {
		api := &cublasAPI{}
		bindFake(t, h, cublasSyms(api))
		b := &BLAS{dev: dev, api: api, h: 0x77}
		// Row-major 5×3 = (5×4)·(4×3): becomes column-major 3×5 = Bᵀ·Aᵀ.
		if err := b.SgemmRowMajor(false, true, 5, 3, 4, 0.5, 0xa0, 4, 0xb0, 4, 0.25, 0xc0, 3); err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ := rec.read()
		eqInts(t, "cublasSgemm_v2", ints, 0x77, 1, 0, 3, 5, 4, 0xb0, 4, 0xa0, 4, 0xc0, 3)
		eqFloats(t, "cublasSgemm_v2", dbls, 0.5, 0.25)

		if err := b.SgemmStridedBatched(true, false, 6, 7, 8, 2, 0xa0, 8, 1<<33, 0xb0, 8, 56, -1, 0xc0, 6, 1<<34+3, 9); err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ = rec.read()
		eqInts(t, "cublasSgemmStridedBatched", ints, 0x77, 1, 0, 6, 7, 8, 0xa0, 8, 1<<33, 0xb0, 8, 56, 0xc0, 6, 1<<34+3, 9)
		eqFloats(t, "cublasSgemmStridedBatched", dbls, 2, -1)
	})

	t.Run("cuDNN", func(t *testing.T) {
		api := &cudnnAPI{}
		bindFake(t, h, cudnnSyms(api))
		n := &DNN{dev: dev, api: api, h: 0x99}

		_, err := n.NewTensor4d(1, 2, 3, 4)
		if want := "cuda: cudnnSetTensor4dDescriptor(NCHW, FLOAT, 1,2,3,4): CUDNN_STATUS_BAD_PARAM (cudnnSetTensor4dDescriptor: bad dims)"; err == nil || err.Error() != want {
			t.Errorf("got  %v\nwant %s", err, want)
		}
		ints, _, _ := rec.read()
		eqInts(t, "cudnnSetTensor4dDescriptor", ints, 0x11, dnnTensorNCHW, dnnDataFloat, 1, 2, 3, 4)

		if _, err := n.NewLRN(5, 5e-4, 0.75, 2); err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ := rec.read()
		eqInts(t, "cudnnSetLRNDescriptor", ints, 0x12, 5)
		eqFloats(t, "cudnnSetLRNDescriptor", dbls, 5e-4, 0.75, 2)

		if _, err := n.NewActivation(ActivationReLU); err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ = rec.read()
		eqInts(t, "cudnnSetActivationDescriptor", ints, 0x13, 1, 0)
		eqFloats(t, "cudnnSetActivationDescriptor", dbls, 0)

		if _, err := n.NewDropout(0.5, 1<<63+9); err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ = rec.read()
		eqInts(t, "cudnnSetDropoutDescriptor", ints, 0x14, 0x99, 0, 0, math.MinInt64+9)
		eqFloats(t, "cudnnSetDropoutDescriptor", dbls, 0.5)

		pl := &ConvPlan{
			dnn: n, X: &TensorDesc{h: 0x31}, W: &FilterDesc{h: 0x32}, Y: &TensorDesc{h: 0x33},
			convs:   [3]*convDesc{{h: 0x34}, {h: 0x35}, {h: 0x36}},
			Forward: AlgoPerf{Algo: 6, Name: "WINOGRAD"},
		}
		pl.wsPerPass[dirForward] = 4096
		if err := pl.RunForward(0.5, 0x100, 0x200, 0.25, 0x300, Buffer{Ptr: 0x400, Bytes: 8192}); err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ = rec.read()
		eqInts(t, "cudnnConvolutionForward", ints, 0x99, 0x31, 0x100, 0x32, 0x200, 0x34, 6, 0x400, 8192, 0x33, 0x300)
		eqFloats(t, "cudnnConvolutionForward", dbls, 0.5, 0.25)

		err = n.LRNBackward(&LRNDesc{h: 0x12}, 1, &TensorDesc{h: 0x41}, 0x51, &TensorDesc{h: 0x42}, 0x52, &TensorDesc{h: 0x43}, 0x53, 0.75, &TensorDesc{h: 0x44}, 0x54)
		if err != nil {
			t.Fatal(err)
		}
		ints, dbls, _ = rec.read()
		eqInts(t, "cudnnLRNCrossChannelBackward", ints, 0x99, 0x12, dnnLRNCrossChannel, 0x41, 0x51, 0x42, 0x52, 0x43, 0x53, 0x44, 0x54)
		eqFloats(t, "cudnnLRNCrossChannelBackward", dbls, 1, 0.75)

		perfs, err := pl.search(dirForward, SearchBenchmark)
		if err != nil {
			t.Fatal(err)
		}
		ints, _, _ = rec.read()
		eqInts(t, "cudnnFindConvolutionForwardAlgorithm", ints, 0x99, 0x31, 0x32, 0x34, 0x33, 16, 48) // 48: C's sizeof(perf_t)
		want := []AlgoPerf{
			{Algo: 6, Name: "WINOGRAD", TimeMs: 0.25, Memory: 123456789012, Deterministic: true, MathType: dnnFMAMath},
			{Algo: 1, Name: "IMPLICIT_PRECOMP_GEMM", Status: 3000, TimeMs: -1, Memory: 7, MathType: dnnTensorOpMath},
		}
		if len(perfs) != 2 || perfs[0] != want[0] || perfs[1] != want[1] {
			t.Errorf("perf results\n got %+v\nwant %+v", perfs, want)
		}
	})

	t.Run("NVRTC", func(t *testing.T) {
		api := &nvrtcAPI{}
		bindFake(t, h, nvrtcSyms(api))
		ptx, log, err := api.compile("__global__ void k(){}", "k.cu", []string{"--gpu-architecture=compute_90", "-default-device"}, false)
		if err != nil {
			t.Fatal(err)
		}
		// PTX comes back NUL-terminated, as NVRTC sizes it.
		if string(ptx) != "// fake ptx\n.version 9.0\n\x00" || log != "warning: fake" {
			t.Errorf("ptx %q log %q", ptx, log)
		}
		ints, _, str := rec.read()
		eqInts(t, "nvrtcCompileProgram", ints, 0x21, 2)
		if want := "--gpu-architecture=compute_90|-default-device|__global__ void k(){}"; str != want {
			t.Errorf("options and source seen: %q, want %q", str, want)
		}
		if _, _, err := api.compile("x", "k.cu", nil, false); err != nil {
			t.Errorf("no options: %v", err)
		}
		if api.getCUBIN == nil || api.getCUBINSize == nil {
			t.Fatal("nvrtcGetCUBIN and its size are not bound")
		}
		cubin, _, err := api.compile("x", "k.cu", []string{"--gpu-architecture=sm_90"}, true)
		if want := []byte{0x7f, 'E', 'L', 'F', 0, 2, 0, 0xff}; err != nil || !bytes.Equal(cubin, want) {
			t.Errorf("cubin % x, %v; want % x", cubin, err, want)
		}
	})
}
