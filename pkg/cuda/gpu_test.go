package cuda

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// These tests need a GPU and the CUDA libraries. Without them they skip
// with the loader's reason; with ALEXNET_REQUIRE_GPU=1 (the GPU machine's
// check script sets it) a missing piece fails instead, so a broken search
// cannot pass as "skipped".

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("ALEXNET_REQUIRE_GPU") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func gpu(t testing.TB) *Device {
	t.Helper()
	d, err := Init()
	if err != nil {
		skipOrFail(t, "no CUDA driver: %v", err)
	}
	return d
}

func needBLAS(t testing.TB, d *Device) *BLAS {
	t.Helper()
	b, err := d.NewBLAS()
	if err != nil {
		skipOrFail(t, "no cuBLAS: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func needDNN(t testing.TB, d *Device) *DNN {
	t.Helper()
	n, err := d.NewDNN()
	if err != nil {
		skipOrFail(t, "no cuDNN: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func needModule(t testing.TB, d *Device, src, name string) *Module {
	t.Helper()
	if _, _, err := NVRTCVersion(); err != nil {
		skipOrFail(t, "no NVRTC: %v", err)
	}
	// The backend's path (machine code first, then PTX): a PTX-only load
	// fails under an NVRTC whose minor release is newer than the driver,
	// which the search accepts on purpose, and would fail these tests for
	// a reason the backend does not meet. TestGPUCUBIN loads machine code,
	// and TestGPUNVRTCErrorsAndCache real PTX, each on its own.
	m, err := d.CompileModule(src, name, nil)
	if err != nil {
		t.Fatalf("compile and load %s: %v", name, err)
	}
	t.Cleanup(func() { m.Unload() })
	return m
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func upload(t testing.TB, d *Device, host []float32) Buffer {
	t.Helper()
	b, err := d.MemAlloc(4 * len(host))
	must(t, err)
	t.Cleanup(func() { d.MemFree(b) })
	must(t, d.MemcpyHtoD(b.Ptr, Bytes(host)))
	return b
}

func zeros(t testing.TB, d *Device, n int) Buffer {
	t.Helper()
	return upload(t, d, make([]float32, n))
}

func download(t testing.TB, d *Device, b Buffer) []float32 {
	t.Helper()
	out := make([]float32, b.Bytes/4)
	must(t, d.MemcpyDtoH(Bytes(out), b.Ptr))
	return out
}

func randn(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * scale)
	}
	return s
}

// maxRelErr is max|got−want| / max|want|: an error measure that does not
// blow up on the near-zero elements every reduction produces.
func maxRelErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// frobRelErr is ‖got−want‖/‖want‖.
func frobRelErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		m += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / m)
}

func TestGPUDevice(t *testing.T) {
	d := gpu(t)
	t.Logf("device %d: %s, sm_%d%d, %.1f GiB, %d SMs, %d copy engines, driver %s, PCI %s",
		d.Ordinal, d.Name, d.ComputeCapability.Major, d.ComputeCapability.Minor, float64(d.TotalMem)/(1<<30),
		d.SMs, d.AsyncEngines, VersionString(d.DriverVersion), d.PCIBusID)
	if d.Name == "" || d.TotalMem <= 0 || d.SMs <= 0 || d.ComputeCapability.Major < 7 || d.WarpSize != 32 {
		t.Errorf("implausible device info %+v", d.DeviceInfo)
	}
	free, total, err := d.MemGetInfo()
	must(t, err)
	if free <= 0 || free > total || total != d.TotalMem {
		t.Errorf("MemGetInfo free %d total %d, device says %d", free, total, d.TotalMem)
	}
	d2, err := Init()
	must(t, err)
	if d2 != d {
		t.Error("Init returned a second Device for the same GPU")
	}
	t.Logf("\n%s", Probe().Markdown())
}

func TestGPUMemoryErrors(t *testing.T) {
	d := gpu(t)
	huge := int(d.TotalMem) + 1<<30
	_, err := d.MemAlloc(huge)
	var e *Error
	if !errors.Is(err, ErrOutOfMemory) || !errors.As(err, &e) {
		t.Fatalf("MemAlloc(%d) = %v, want out of memory", huge, err)
	}
	if want := fmt.Sprintf("cuda: cuMemAlloc_v2(%d): CUDA_ERROR_OUT_OF_MEMORY: out of memory", huge); err.Error() != want {
		t.Errorf("message %q\nwant    %q", err, want)
	}
	b, err := d.MemAlloc(0)
	if err != nil || b.Ptr != 0 || d.MemFree(b) != nil {
		t.Errorf("zero-byte alloc: %v %+v", err, b)
	}
}

// TestGPUCopyRoundTrip: pinned host → device → device → pinned host on a
// stream, with memsets, timed by events.
func TestGPUCopyRoundTrip(t *testing.T) {
	d := gpu(t)
	const n = 64 << 20
	src, err := d.HostAlloc(n)
	must(t, err)
	defer d.HostFree(src)
	dst, err := d.HostAlloc(n)
	must(t, err)
	defer d.HostFree(dst)
	for i := range src {
		src[i] = byte(i*7 + i>>13)
	}
	a, err := d.MemAlloc(n)
	must(t, err)
	defer d.MemFree(a)
	b, err := d.MemAlloc(n)
	must(t, err)
	defer d.MemFree(b)
	s, err := d.NewStream()
	must(t, err)
	defer s.Destroy()
	start, err := d.NewEvent(true)
	must(t, err)
	defer start.Destroy()
	mid, err := d.NewEvent(true)
	must(t, err)
	defer mid.Destroy()
	// Blocking-sync with timing, as pkg/feed's step-end marks are.
	end, err := d.NewBlockingEvent(true)
	must(t, err)
	defer end.Destroy()

	must(t, start.Record(s))
	must(t, d.MemcpyHtoDAsync(a.Ptr, src, s))
	must(t, mid.Record(s))
	must(t, d.MemcpyDtoDAsync(b.Ptr, a.Ptr, n, s))
	must(t, d.MemcpyDtoHAsync(dst, b.Ptr, s))
	must(t, end.Record(s))
	must(t, end.Synchronize())
	if done, err := end.Query(); err != nil || !done {
		t.Errorf("event query after sync: %v %v", done, err)
	}
	if done, err := s.Query(); err != nil || !done {
		t.Errorf("stream query after sync: %v %v", done, err)
	}
	for i := range src {
		if src[i] != dst[i] {
			t.Fatalf("byte %d: %d != %d", i, dst[i], src[i])
		}
	}
	h2d, err := ElapsedMs(start, mid)
	must(t, err)
	total, err := ElapsedMs(start, end)
	must(t, err)
	if h2d <= 0 || total < h2d {
		t.Errorf("elapsed h2d %.3f ms, total %.3f ms", h2d, total)
	}
	t.Logf("pinned H2D %d MiB in %.3f ms = %.1f GB/s; round trip %.3f ms", n>>20, h2d, float64(n)/float64(h2d)/1e6, total)
	// pkg/feed's clock reads spans in either order; it copes with a
	// driver that signs a reversed span or one that clamps it to zero,
	// and this says which this one does.
	back, err := ElapsedMs(mid, start)
	must(t, err)
	if back != 0 && math.Abs(float64(back+h2d)) > 1e-3 {
		t.Errorf("reversed span %.4f ms for a forward span of %.4f ms: neither signed nor clamped", back, h2d)
	}
	t.Logf("reversed span: %.4f ms (negative: signed; 0: clamped)", back)

	// Memsets, read back through pageable Go memory (the synchronous path).
	must(t, d.MemsetD32Async(a.Ptr, math.Float32bits(2.5), 1000, s))
	must(t, d.MemsetD8Async(a.Ptr.Add(4000), 0x7f, 8, s))
	must(t, s.Synchronize())
	got := make([]float32, 1002)
	must(t, d.MemcpyDtoH(Bytes(got), a.Ptr))
	if got[0] != 2.5 || got[999] != 2.5 || math.Float32bits(got[1000]) != 0x7f7f7f7f {
		t.Errorf("memset: %g %g %#x", got[0], got[999], math.Float32bits(got[1000]))
	}
	plain, err := d.NewEvent(false)
	must(t, err)
	defer plain.Destroy()
	if _, err := ElapsedMs(start, plain); err == nil {
		t.Error("ElapsedMs accepted an event without timing")
	}
}

const testKernels = `
extern "C" __global__ void saxpy(int n, float a, const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

extern "C" __global__ void argcheck(int a, long long b, float c, double d, unsigned int u,
                                    unsigned long long* out) {
    out[0] = (unsigned long long)(long long)a;
    out[1] = (unsigned long long)b;
    out[2] = __float_as_uint(c);
    out[3] = (unsigned long long)__double_as_longlong(d);
    out[4] = u;
}

extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}

extern "C" __global__ void empty() {}
`

func TestGPUNVRTCSaxpy(t *testing.T) {
	d := gpu(t)
	m := needModule(t, d, testKernels, "test_kernels.cu")
	saxpy, err := m.Function("saxpy")
	must(t, err)
	const n = 1<<20 + 3 // not a multiple of the block
	r := rand.New(rand.NewPCG(5, 6))
	x, y := randn(r, n, 1), randn(r, n, 1)
	dx, dy := upload(t, d, x), upload(t, d, y)
	const a = float32(1.75)
	must(t, saxpy.Launch([3]uint32{GridFor(n, 256), 1, 1}, [3]uint32{256, 1, 1}, 0, nil, int32(n), a, dx.Ptr, dy))
	got := download(t, d, dy)
	for i := range got {
		want := float32(math.FMA(float64(a), float64(x[i]), float64(y[i])))
		if math.Abs(float64(got[i]-want)) > 1e-6*math.Max(1, math.Abs(float64(want))) {
			t.Fatalf("y[%d] = %g, want %g", i, got[i], want)
		}
	}

	// Every argument kind arrives intact.
	chk, err := m.Function("argcheck")
	must(t, err)
	out, err := d.MemAlloc(5 * 8)
	must(t, err)
	defer d.MemFree(out)
	must(t, chk.Launch([3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, nil, int32(-7), int64(-1<<40), float32(0.1), math.E, uint32(0xfeedface), out))
	raw := make([]uint64, 5)
	must(t, d.MemcpyDtoH(Bytes(raw), out.Ptr))
	want := []uint64{uint64(1<<64 - 7), uint64(1<<64 - 1<<40), uint64(math.Float32bits(0.1)), math.Float64bits(math.E), 0xfeedface}
	for i := range want {
		if raw[i] != want[i] {
			t.Errorf("argcheck out[%d] = %#x, want %#x", i, raw[i], want[i])
		}
	}

	// Errors: a launch with a Go int, a missing function.
	if err := saxpy.Launch([3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, nil, n, a, dx, dy); err == nil || !strings.Contains(err.Error(), "int32") {
		t.Errorf("launch with a Go int: %v", err)
	}
	if _, err := m.Function("nope"); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_NOT_FOUND") {
		t.Errorf("missing function: %v", err)
	}
}

// TestNVRTCCompile needs NVRTC but no GPU (`just cuda-cpu-libs` fetches
// one for a CPU machine): compile errors carry the log, unknown options
// fail, the test kernels (clock64, the bit-cast intrinsics) compile, and
// the PTX cache misses once, then hits with the same PTX.
func TestNVRTCCompile(t *testing.T) {
	maj, mnr, err := NVRTCVersion()
	if err != nil {
		skipOrFail(t, "no NVRTC: %v", err)
	}
	archs, _ := SupportedArchs()
	arch := archFor(ComputeCapability{Major: 9, Minor: 0}, archs)
	t.Logf("NVRTC %d.%d, targets %v, compiling for %s", maj, mnr, archs, arch)
	checkNVRTC(t, arch)
}

func checkNVRTC(t *testing.T, arch string) {
	t.Helper()
	_, log, err := Compile("extern \"C\" __global__ void k() { undefined_thing(); }", "bad.cu", []string{"--gpu-architecture=" + arch})
	var ce *CompileError
	if !errors.As(err, &ce) || !strings.Contains(log, "undefined_thing") || !strings.Contains(err.Error(), "NVRTC_ERROR_COMPILATION") {
		t.Errorf("bad source: err %v, log %q", err, log)
	}
	if _, _, err := Compile("", "opt.cu", []string{"--no-such-option"}); err == nil {
		t.Error("an unknown option compiled")
	}

	c := &PTXCache{Dir: t.TempDir()}
	p1, _, hit1, err := c.Compile(testKernels, "test_kernels.cu", arch, nil)
	must(t, err)
	p2, _, hit2, err := c.Compile(testKernels, "test_kernels.cu", arch, nil)
	must(t, err)
	if hit1 || !hit2 || p1 != p2 {
		t.Errorf("cache: first hit %v, second hit %v, equal %v", hit1, hit2, p1 == p2)
	}
	for _, k := range []string{"saxpy", "argcheck", "spin", "empty"} {
		if !strings.Contains(p1, ".entry "+k+"(") {
			t.Errorf("PTX has no .entry %s", k)
		}
	}
	checkCUBIN(t, c, arch)
}

// checkCUBIN compiles the test kernels to machine code for arch's real
// architecture (compute_90 → sm_90) through the cache: an ELF image with
// every kernel's name in its symbols, a miss then a hit, a cached file
// that is not ELF compiled again, and a virtual architecture refused.
func checkCUBIN(t *testing.T, c *PTXCache, arch string) {
	t.Helper()
	if _, _, err := CompileCUBIN("", "x.cu", []string{"--gpu-architecture=" + arch}); err == nil {
		t.Errorf("a CUBIN for the virtual %s", arch)
	} else if strings.Contains(err.Error(), "has no nvrtcGetCUBIN") {
		t.Skipf("CUBIN: %v", err)
	}
	sm := "sm_" + strings.TrimPrefix(arch, "compute_")
	b1, _, hit1, err := c.CompileCUBIN(testKernels, "test_kernels.cu", sm, nil)
	must(t, err)
	b2, _, hit2, err := c.CompileCUBIN(testKernels, "test_kernels.cu", sm, nil)
	must(t, err)
	if hit1 || !hit2 || !bytes.Equal(b1, b2) {
		t.Errorf("CUBIN cache: first hit %v, second hit %v, equal %v", hit1, hit2, bytes.Equal(b1, b2))
	}
	if !bytes.HasPrefix(b1, []byte("\x7fELF")) {
		t.Fatalf("CUBIN for %s starts % x, not ELF", sm, b1[:min(8, len(b1))])
	}
	for _, k := range []string{"saxpy", "argcheck", "spin", "empty"} {
		if !bytes.Contains(b1, []byte(k+"\x00")) {
			t.Errorf("CUBIN has no symbol %s", k)
		}
	}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "*.cubin"))
	if len(files) != 1 {
		t.Fatalf("cache holds %v, want one .cubin", files)
	}
	must(t, os.WriteFile(files[0], []byte("not machine code"), 0o644))
	b3, _, hit3, err := c.CompileCUBIN(testKernels, "test_kernels.cu", sm, nil)
	if err != nil || hit3 || !bytes.Equal(b3, b1) {
		t.Errorf("after the entry was spoilt: hit %v, same CUBIN %v, %v", hit3, bytes.Equal(b3, b1), err)
	}
	t.Logf("CUBIN for %s: %d bytes", sm, len(b1))
}

func TestGPUNVRTCErrorsAndCache(t *testing.T) {
	d := gpu(t)
	if _, _, err := NVRTCVersion(); err != nil {
		skipOrFail(t, "no NVRTC: %v", err)
	}
	maj, mnr, _ := NVRTCVersion()
	archs, _ := SupportedArchs()
	t.Logf("NVRTC %d.%d, targets %v, device arch %s", maj, mnr, archs, Arch(d))
	checkNVRTC(t, Arch(d))

	_, err := d.LoadPTX("this is not PTX")
	var e *Error
	if !errors.As(err, &e) || e.API != APIDriver {
		t.Errorf("LoadPTX(garbage) = %v", err)
	}
	t.Logf("garbage PTX: %v", err)
	_, err = d.LoadCUBIN([]byte("\x7fELF but not machine code"))
	if !errors.As(err, &e) || e.API != APIDriver || !strings.Contains(err.Error(), "bytes of CUBIN") {
		t.Errorf("LoadCUBIN(garbage) = %v", err)
	}
	t.Logf("garbage CUBIN: %v", err)

	// Real PTX through the driver's JIT: the backend's fallback when
	// machine code is refused. An NVRTC newer than the driver (which the
	// search accepts, for its machine code) makes PTX the driver cannot
	// take; that is logged, not failed.
	ptx, _, err := Compile(testKernels, "test_kernels.cu", []string{"--gpu-architecture=" + Arch(d)})
	if err != nil {
		t.Fatalf("compile to PTX: %v", err)
	}
	m, err := d.LoadPTX(ptx)
	if errors.As(err, &e) && e.Code == cuErrorUnsupportedPTXVersion {
		t.Logf("PTX not loadable here (the backend loads machine code instead): %v", err)
		return
	}
	if err != nil {
		t.Fatalf("LoadPTX(test kernels): %v", err)
	}
	defer m.Unload()
	if _, err := m.Function("saxpy"); err != nil {
		t.Errorf("saxpy in the JIT-loaded module: %v", err)
	}
}

// TestGPUCUBIN: the kernels compiled to the device's machine code load
// and run; machine code for another architecture is refused by the
// driver; CompileModule, the path the backend takes, gives a module
// whose kernel runs.
func TestGPUCUBIN(t *testing.T) {
	d := gpu(t)
	if _, _, err := NVRTCVersion(); err != nil {
		skipOrFail(t, "no NVRTC: %v", err)
	}
	arch, ok := CUBINArch(d)
	archs, _ := SupportedArchs()
	t.Logf("device %v, NVRTC targets %v: CUBINArch %q, %v", d.ComputeCapability, archs, arch, ok)
	saxpyRuns := func(m *Module) {
		t.Helper()
		f, err := m.Function("saxpy")
		must(t, err)
		x, y := []float32{1, 2, 3}, []float32{10, 20, 30}
		dx, dy := upload(t, d, x), upload(t, d, y)
		must(t, f.Launch([3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0, nil, int32(3), float32(2), dx.Ptr, dy))
		if got := download(t, d, dy); got[0] != 12 || got[1] != 24 || got[2] != 36 {
			t.Errorf("saxpy gave %v, want [12 24 36]", got)
		}
	}
	if ok {
		cubin, _, err := CompileCUBIN(testKernels, "test_kernels.cu", []string{"--gpu-architecture=" + arch})
		must(t, err)
		m, err := d.LoadCUBIN(cubin)
		must(t, err)
		defer m.Unload()
		saxpyRuns(m)
		// Machine code is for one architecture family: Ampere's does not
		// load on Hopper, and the reverse.
		other := "sm_80"
		if d.ComputeCapability.Major == 8 {
			other = "sm_90"
		}
		if slices.Contains(archs, int(other[3]-'0')*10) {
			foreign, _, err := CompileCUBIN(testKernels, "test_kernels.cu", []string{"--gpu-architecture=" + other})
			must(t, err)
			if m, err := d.LoadCUBIN(foreign); err == nil {
				m.Unload()
				t.Errorf("a CUBIN for %s loaded on a %v device", other, d.ComputeCapability)
			} else {
				t.Logf("CUBIN for %s refused: %v", other, err)
			}
		}
	} else if d.ComputeCapability.Major == 9 {
		t.Errorf("no CUBIN for a compute capability %v device (NVRTC targets %v)", d.ComputeCapability, archs)
	}
	m, err := d.CompileModule(testKernels, "test_kernels.cu", nil)
	must(t, err)
	defer m.Unload()
	saxpyRuns(m)
}

func TestGPUSgemm(t *testing.T) {
	d := gpu(t)
	b := needBLAS(t, d)
	v, _ := CUBLASVersion()
	t.Logf("cuBLAS %v", v)
	r := rand.New(rand.NewPCG(7, 8))

	run := func(name string, mode BLASMath, rowMajor, ta, tb bool, m, n, k int, tol float64) {
		t.Run(name, func(t *testing.T) {
			must(t, b.SetMathMode(mode))
			rowsA, colsA := m, k
			if ta {
				rowsA, colsA = k, m
			}
			rowsB, colsB := k, n
			if tb {
				rowsB, colsB = n, k
			}
			A, B := randn(r, rowsA*colsA, 1), randn(r, rowsB*colsB, 1)
			C := randn(r, m*n, 1)
			want := append([]float32(nil), C...)
			var g gemm
			if rowMajor {
				g = gemm{ta, tb, m, n, k, colsA, colsB, n}
				rowMajorGemm(g, 0.75, A, B, 0.5, want)
			} else {
				g = gemm{ta, tb, m, n, k, rowsA, rowsB, m}
				colMajorGemm(g, 0.75, A, B, 0.5, want)
			}
			dA, dB, dC := upload(t, d, A), upload(t, d, B), upload(t, d, C)
			if rowMajor {
				must(t, b.SgemmRowMajor(ta, tb, m, n, k, 0.75, dA.Ptr, g.lda, dB.Ptr, g.ldb, 0.5, dC.Ptr, g.ldc))
			} else {
				must(t, b.Sgemm(ta, tb, m, n, k, 0.75, dA.Ptr, g.lda, dB.Ptr, g.ldb, 0.5, dC.Ptr, g.ldc))
			}
			got := download(t, d, dC)
			e := frobRelErr(got, want)
			t.Logf("%s: relative error %.2e", name, e)
			if e > tol {
				t.Errorf("relative error %.2e > %.0e", e, tol)
			}
		})
	}
	run("fp32 col-major NN", MathDefault, false, false, false, 257, 129, 200, 1e-5)
	run("fp32 col-major TN", MathDefault, false, true, false, 64, 96, 300, 1e-5)
	run("fp32 row-major NT", MathDefault, true, false, true, 130, 70, 90, 1e-5)
	run("fp32 row-major TT", MathDefault, true, true, true, 33, 65, 17, 1e-5)
	run("tf32 row-major NN", MathTF32, true, false, false, 512, 512, 512, 1e-2)
	must(t, b.SetMathMode(MathDefault))

	t.Run("strided batched row-major", func(t *testing.T) {
		const batch, m, n, k = 3, 33, 17, 20
		A, B, C := randn(r, batch*m*k, 1), randn(r, batch*k*n, 1), make([]float32, batch*m*n)
		want := make([]float32, len(C))
		for i := range batch {
			rowMajorGemm(gemm{false, false, m, n, k, k, n, n}, 1, A[i*m*k:], B[i*k*n:], 0, want[i*m*n:])
		}
		dA, dB, dC := upload(t, d, A), upload(t, d, B), upload(t, d, C)
		must(t, b.SgemmStridedBatchedRowMajor(false, false, m, n, k, 1, dA.Ptr, k, m*k, dB.Ptr, n, k*n, 0, dC.Ptr, n, m*n, batch))
		if e := frobRelErr(download(t, d, dC), want); e > 1e-5 {
			t.Errorf("relative error %.2e", e)
		}
	})

	if err := b.Sgemm(false, false, 4, 4, 4, 1, 0, 2, 0, 4, 0, 0, 4); err == nil || !strings.Contains(err.Error(), "lda=2 < 4") {
		t.Errorf("bad lda: %v", err)
	}
}

// convRef computes a grouped, padded, strided convolution's forward
// output and, given dy, its three gradients, directly in float64.
func convRef(s ConvShape, x, w, dy []float32) (y, dx, dw, db []float32) {
	s = s.normalized()
	n, k, p, q, _ := s.Output()
	_, cg, _, _ := s.Filter()
	kg := s.K / s.Groups
	y64 := make([]float64, n*k*p*q)
	dx64 := make([]float64, len(x))
	dw64 := make([]float64, len(w))
	db64 := make([]float64, k)
	for b := range n {
		for ko := range k {
			g := ko / kg
			for oh := range p {
				for ow := range q {
					yi := ((b*k+ko)*p+oh)*q + ow
					var acc float64
					for ci := range cg {
						c := g*cg + ci
						for r := range s.R {
							ih := oh*s.StrideH - s.PadH + r*s.DilationH
							if ih < 0 || ih >= s.H {
								continue
							}
							for ss := range s.S {
								iw := ow*s.StrideW - s.PadW + ss*s.DilationW
								if iw < 0 || iw >= s.W {
									continue
								}
								xi := ((b*s.C+c)*s.H+ih)*s.W + iw
								wi := ((ko*cg+ci)*s.R+r)*s.S + ss
								acc += float64(x[xi]) * float64(w[wi])
								if dy != nil {
									dx64[xi] += float64(dy[yi]) * float64(w[wi])
									dw64[wi] += float64(dy[yi]) * float64(x[xi])
								}
							}
						}
					}
					y64[yi] = acc
					if dy != nil {
						db64[ko] += float64(dy[yi])
					}
				}
			}
		}
	}
	f := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	return f(y64), f(dx64), f(dw64), f(db64)
}

// convInputs draws a convolution's input, filter and output gradient.
func convInputs(r *rand.Rand, s ConvShape) (x, w, dy []float32) {
	n, k, p, q, _ := s.Output()
	fk, fc, fr, fs := s.Filter()
	return randn(r, s.N*s.C*s.H*s.W, 1), randn(r, fk*fc*fr*fs, 1), randn(r, n*k*p*q, 1)
}

func TestGPUConvolution(t *testing.T) {
	d := gpu(t)
	dnn := needDNN(t, d)
	ver, _ := CUDNNVersion()
	t.Logf("cuDNN %s", cudnnVersionString(ver))
	r := rand.New(rand.NewPCG(9, 10))
	s := ConvShape{N: 2, C: 4, H: 11, W: 9, K: 6, R: 3, S: 3, PadH: 1, PadW: 1, StrideH: 2, StrideW: 2, Groups: 2}
	_, k, p, q, err := s.Output()
	must(t, err)
	x, w, dy := convInputs(r, s)
	wantY, wantDx, wantDw, wantDb := convRef(s, x, w, dy)

	for _, tc := range []struct {
		name   string
		search AlgoSearch
		math   ConvMath
		tol    float64
	}{
		{"fp32 benchmark", SearchBenchmark, ConvFP32, 1e-5},
		{"fp32 heuristic", SearchHeuristic, ConvFP32, 1e-5},
		{"tf32 benchmark", SearchBenchmark, ConvTF32, 1e-2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := dnn.NewConvPlanner(ConvPlannerOptions{Search: tc.search, WorkspaceBudget: 64 << 20})
			defer pl.Close()
			plan, err := pl.Plan(s, tc.math)
			must(t, err)
			t.Logf("%v", plan)
			if again, _ := pl.Plan(s, tc.math); again != plan {
				t.Error("second Plan of the same shape was not cached")
			}
			ws, err := d.MemAlloc(int(plan.Workspace))
			must(t, err)
			defer d.MemFree(ws)
			dX, dW, dDy := upload(t, d, x), upload(t, d, w), upload(t, d, dy)
			dY, dDx, dDw, dDb := zeros(t, d, len(wantY)), zeros(t, d, len(x)), zeros(t, d, len(w)), zeros(t, d, k)
			must(t, plan.RunForward(1, dX.Ptr, dW.Ptr, 0, dY.Ptr, ws))
			must(t, plan.RunBackwardData(1, dW.Ptr, dDy.Ptr, 0, dDx.Ptr, ws))
			must(t, plan.RunBackwardFilter(1, dX.Ptr, dDy.Ptr, 0, dDw.Ptr, ws))
			must(t, plan.RunBackwardBias(1, dDy.Ptr, 0, dDb.Ptr))
			for _, c := range []struct {
				what      string
				got, want []float32
			}{
				{"forward", download(t, d, dY), wantY},
				{"backward data", download(t, d, dDx), wantDx},
				{"backward filter", download(t, d, dDw), wantDw},
				{"backward bias", download(t, d, dDb), wantDb},
			} {
				e := maxRelErr(c.got, c.want)
				t.Logf("%s: max relative error %.2e", c.what, e)
				if e > tc.tol {
					t.Errorf("%s: max relative error %.2e > %.0e", c.what, e, tc.tol)
				}
			}
			// Bias add: y += b per channel.
			bias := randn(r, k, 1)
			dB := upload(t, d, bias)
			must(t, plan.AddBias(dB.Ptr, dY.Ptr))
			got := download(t, d, dY)
			for i := range got {
				ch := i / (p * q) % k
				if math.Abs(float64(got[i]-(wantY[i]+bias[ch]))) > tc.tol*10 {
					t.Fatalf("bias add at %d: %g, want %g", i, got[i], wantY[i]+bias[ch])
				}
			}
			if plan.wsPerPass[dirForward] > 0 {
				if err := plan.RunForward(1, dX.Ptr, dW.Ptr, 0, dY.Ptr, Buffer{}); err == nil {
					t.Error("ran with no workspace")
				}
			}

			// A first layer's plan: a separate cache entry, never more
			// workspace, and the passes it has still right.
			noDx, err := pl.PlanWithoutBackwardData(s, tc.math)
			must(t, err)
			if noDx == plan || !noDx.NoBackwardData {
				t.Fatal("PlanWithoutBackwardData returned the full plan")
			}
			if noDx.Workspace > plan.Workspace {
				t.Errorf("without backward-data the workspace grew: %d > %d", noDx.Workspace, plan.Workspace)
			}
			if err := noDx.RunBackwardData(1, dW.Ptr, dDy.Ptr, 0, dDx.Ptr, ws); err == nil {
				t.Error("a plan without backward-data ran it")
			}
			must(t, noDx.RunForward(1, dX.Ptr, dW.Ptr, 0, dY.Ptr, ws))
			must(t, noDx.RunBackwardFilter(1, dX.Ptr, dDy.Ptr, 0, dDw.Ptr, ws))
			for _, c := range []struct {
				what      string
				got, want []float32
			}{
				{"forward (no-dx plan)", download(t, d, dY), wantY},
				{"backward filter (no-dx plan)", download(t, d, dDw), wantDw},
			} {
				if e := maxRelErr(c.got, c.want); e > tc.tol {
					t.Errorf("%s: max relative error %.2e > %.0e", c.what, e, tc.tol)
				}
			}
		})
	}
}

// TestGPUAlexNetConvPlans plans every AlexNet convolution at batch 128 and
// times its forward pass: a record of what cuDNN picks on this GPU.
func TestGPUAlexNetConvPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	d := gpu(t)
	dnn := needDNN(t, d)
	layers := []struct {
		name string
		s    ConvShape
	}{
		{"conv1", ConvShape{N: 128, C: 3, H: 224, W: 224, K: 96, R: 11, S: 11, PadH: 2, PadW: 2, StrideH: 4, StrideW: 4}},
		{"conv2", ConvShape{N: 128, C: 96, H: 27, W: 27, K: 256, R: 5, S: 5, PadH: 2, PadW: 2, Groups: 2}},
		{"conv3", ConvShape{N: 128, C: 256, H: 13, W: 13, K: 384, R: 3, S: 3, PadH: 1, PadW: 1}},
		{"conv4", ConvShape{N: 128, C: 384, H: 13, W: 13, K: 384, R: 3, S: 3, PadH: 1, PadW: 1, Groups: 2}},
		{"conv5", ConvShape{N: 128, C: 384, H: 13, W: 13, K: 256, R: 3, S: 3, PadH: 1, PadW: 1, Groups: 2}},
	}
	s, err := d.NewStream()
	must(t, err)
	defer s.Destroy()
	must(t, dnn.SetStream(s))
	defer dnn.SetStream(nil)
	e0, _ := d.NewEvent(true)
	e1, _ := d.NewEvent(true)
	defer e0.Destroy()
	defer e1.Destroy()
	for _, cm := range []ConvMath{ConvFP32, ConvTF32} {
		pl := dnn.NewConvPlanner(ConvPlannerOptions{})
		for _, l := range layers {
			plan, err := pl.Plan(l.s, cm)
			must(t, err)
			x, _ := d.MemAlloc(plan.X.Bytes())
			y, _ := d.MemAlloc(plan.Y.Bytes())
			fk, fc, fr, fs := l.s.Filter()
			w, _ := d.MemAlloc(4 * fk * fc * fr * fs)
			ws, err := d.MemAlloc(int(plan.Workspace))
			must(t, err)
			must(t, d.MemsetD32Async(x.Ptr, 0, x.Bytes/4, s))
			must(t, d.MemsetD32Async(w.Ptr, 0, w.Bytes/4, s))
			const reps = 10
			must(t, plan.RunForward(1, x.Ptr, w.Ptr, 0, y.Ptr, ws)) // warm-up
			must(t, e0.Record(s))
			for range reps {
				must(t, plan.RunForward(1, x.Ptr, w.Ptr, 0, y.Ptr, ws))
			}
			must(t, e1.Record(s))
			must(t, e1.Synchronize())
			ms, _ := ElapsedMs(e0, e1)
			ms /= reps
			t.Logf("%s %v: %.3f ms/forward, %.1f TFLOP/s; %v", l.name, cm, ms, float64(l.s.FLOPs())/float64(ms)/1e9, plan)
			for _, b := range []Buffer{x, y, w, ws} {
				d.MemFree(b)
			}
		}
		must(t, pl.Close())
	}
}

// lrnBackwardRef is the analytic gradient of lrnRef (cuDNN's form):
// dx_j = dy_j·s_j^−β − (2αβ/n)·x_j·Σ_{i: j∈window(i)} dy_i·x_i·s_i^(−β−1).
func lrnBackwardRef(x, dy []float32, n, c, hw, size int, alpha, beta, k float64) []float32 {
	dx := make([]float32, len(x))
	scale := func(b, ch, p int) float64 {
		var s float64
		for j := max(0, ch-size/2); j <= min(c-1, ch+size/2); j++ {
			v := float64(x[(b*c+j)*hw+p])
			s += v * v
		}
		return k + alpha/float64(size)*s
	}
	for b := range n {
		for p := range hw {
			for j := range c {
				xj := float64(x[(b*c+j)*hw+p])
				g := float64(dy[(b*c+j)*hw+p]) * math.Pow(scale(b, j, p), -beta)
				var sum float64
				for i := max(0, j-size/2); i <= min(c-1, j+size/2); i++ {
					idx := (b*c+i)*hw + p
					sum += float64(dy[idx]) * float64(x[idx]) * math.Pow(scale(b, i, p), -beta-1)
				}
				dx[(b*c+j)*hw+p] = float32(g - 2*alpha*beta/float64(size)*xj*sum)
			}
		}
	}
	return dx
}

// TestGPULRN checks cuDNN's LRN against the Go reference in cuDNN's
// convention with the paper's constants; the values are large enough that
// an α/n mix-up would be far outside the tolerance.
func TestGPULRN(t *testing.T) {
	d := gpu(t)
	dnn := needDNN(t, d)
	const n, c, h, w = 2, 7, 3, 3
	const size, alpha, beta, k = 5, 5e-4, 0.75, 2.0
	r := rand.New(rand.NewPCG(11, 12))
	x, dy := randn(r, n*c*h*w, 40), randn(r, n*c*h*w, 1)
	wantY := lrnRef(x, n, c, h*w, size, alpha, beta, k)
	wantDx := lrnBackwardRef(x, dy, n, c, h*w, size, alpha, beta, k)
	td, err := dnn.NewTensor4d(n, c, h, w)
	must(t, err)
	defer td.Close()
	l, err := dnn.NewLRN(size, alpha, beta, k)
	must(t, err)
	defer l.Close()
	dX, dDy, dY, dDx := upload(t, d, x), upload(t, d, dy), zeros(t, d, len(x)), zeros(t, d, len(x))
	must(t, dnn.LRNForward(l, 1, td, dX.Ptr, 0, td, dY.Ptr))
	must(t, dnn.LRNBackward(l, 1, td, dY.Ptr, td, dDy.Ptr, td, dX.Ptr, 0, td, dDx.Ptr))
	if e := maxRelErr(download(t, d, dY), wantY); e > 1e-5 {
		t.Errorf("forward: max relative error %.2e", e)
	} else {
		t.Logf("forward: max relative error %.2e", e)
	}
	if e := maxRelErr(download(t, d, dDx), wantDx); e > 1e-4 {
		t.Errorf("backward: max relative error %.2e", e)
	} else {
		t.Logf("backward: max relative error %.2e", e)
	}
	if _, err := dnn.NewLRN(17, alpha, beta, k); err == nil {
		t.Error("NewLRN accepted size 17")
	}
}

func TestGPUPooling(t *testing.T) {
	d := gpu(t)
	dnn := needDNN(t, d)
	const n, c, h = 2, 3, 13
	r := rand.New(rand.NewPCG(13, 14))
	x := randn(r, n*c*h*h, 1)
	o := PoolOutput(h, 3, 2, 0)
	dy := randn(r, n*c*o*o, 1)
	wantY := make([]float32, n*c*o*o)
	wantDx := make([]float32, len(x))
	for pl := range n * c {
		for i := range o {
			for j := range o {
				best, at := float32(math.Inf(-1)), 0
				for a := range 3 {
					for b := range 3 {
						idx := pl*h*h + (2*i+a)*h + 2*j + b
						if x[idx] > best {
							best, at = x[idx], idx
						}
					}
				}
				wantY[pl*o*o+i*o+j] = best
				wantDx[at] += dy[pl*o*o+i*o+j]
			}
		}
	}
	xd, err := dnn.NewTensor4d(n, c, h, h)
	must(t, err)
	defer xd.Close()
	p, err := dnn.NewPool(PoolMax, 3, 2, 0)
	must(t, err)
	defer p.Close()
	gn, gc, gh, gw, err := p.OutputDims(xd)
	must(t, err)
	if gn != n || gc != c || gh != o || gw != o {
		t.Fatalf("cuDNN pools to %dx%dx%dx%d, PoolOutput says %d", gn, gc, gh, gw, o)
	}
	yd, err := dnn.NewTensor4d(n, c, o, o)
	must(t, err)
	defer yd.Close()
	dX, dDy, dY, dDx := upload(t, d, x), upload(t, d, dy), zeros(t, d, len(wantY)), zeros(t, d, len(x))
	must(t, dnn.PoolingForward(p, 1, xd, dX.Ptr, 0, yd, dY.Ptr))
	must(t, dnn.PoolingBackward(p, 1, yd, dY.Ptr, yd, dDy.Ptr, xd, dX.Ptr, 0, xd, dDx.Ptr))
	if e := maxRelErr(download(t, d, dY), wantY); e != 0 {
		t.Errorf("forward differs: %.2e", e)
	}
	if e := maxRelErr(download(t, d, dDx), wantDx); e > 1e-6 {
		t.Errorf("backward: %.2e", e)
	}
}

func TestGPUActivationSoftmaxDropout(t *testing.T) {
	d := gpu(t)
	dnn := needDNN(t, d)
	r := rand.New(rand.NewPCG(15, 16))

	t.Run("relu", func(t *testing.T) {
		x, dy := randn(r, 2*3*4*5, 1), randn(r, 2*3*4*5, 1)
		td, err := dnn.NewTensor4d(2, 3, 4, 5)
		must(t, err)
		defer td.Close()
		a, err := dnn.NewActivation(ActivationReLU)
		must(t, err)
		defer a.Close()
		dX, dDy, dY, dDx := upload(t, d, x), upload(t, d, dy), zeros(t, d, len(x)), zeros(t, d, len(x))
		must(t, dnn.ActivationForward(a, 1, td, dX.Ptr, 0, td, dY.Ptr))
		must(t, dnn.ActivationBackward(a, 1, td, dY.Ptr, td, dDy.Ptr, td, dX.Ptr, 0, td, dDx.Ptr))
		y, dx := download(t, d, dY), download(t, d, dDx)
		for i := range x {
			wy, wdx := max(x[i], 0), float32(0)
			if x[i] > 0 {
				wdx = dy[i]
			}
			if y[i] != wy || dx[i] != wdx {
				t.Fatalf("element %d: relu(%g) = %g, grad %g; want %g, %g", i, x[i], y[i], dx[i], wy, wdx)
			}
		}
	})

	t.Run("softmax", func(t *testing.T) {
		const n, classes = 4, 10
		x, dy := randn(r, n*classes, 3), randn(r, n*classes, 1)
		td, err := dnn.NewTensor4d(n, classes, 1, 1)
		must(t, err)
		defer td.Close()
		dX, dDy, dY, dDx := upload(t, d, x), upload(t, d, dy), zeros(t, d, len(x)), zeros(t, d, len(x))
		must(t, dnn.SoftmaxForward(SoftmaxAccurate, 1, td, dX.Ptr, 0, td, dY.Ptr))
		must(t, dnn.SoftmaxBackward(SoftmaxAccurate, 1, td, dY.Ptr, td, dDy.Ptr, 0, td, dDx.Ptr))
		wantY, wantDx := make([]float32, len(x)), make([]float32, len(x))
		for b := range n {
			row := x[b*classes : (b+1)*classes]
			m := row[0]
			for _, v := range row {
				m = max(m, v)
			}
			var s, dot float64
			for _, v := range row {
				s += math.Exp(float64(v - m))
			}
			for i, v := range row {
				wantY[b*classes+i] = float32(math.Exp(float64(v-m)) / s)
				dot += float64(wantY[b*classes+i]) * float64(dy[b*classes+i])
			}
			for i := range row {
				j := b*classes + i
				wantDx[j] = float32(float64(wantY[j]) * (float64(dy[j]) - dot))
			}
		}
		if e := maxRelErr(download(t, d, dY), wantY); e > 1e-6 {
			t.Errorf("forward: %.2e", e)
		}
		if e := maxRelErr(download(t, d, dDx), wantDx); e > 1e-5 {
			t.Errorf("backward: %.2e", e)
		}
	})

	t.Run("dropout", func(t *testing.T) {
		const n = 1 << 16
		td, err := dnn.NewTensor4d(1, n, 1, 1)
		must(t, err)
		defer td.Close()
		drop, err := dnn.NewDropout(0.5, 1234)
		must(t, err)
		defer drop.Close()
		rb, err := drop.ReserveBytes(td)
		must(t, err)
		reserve, err := d.MemAlloc(rb)
		must(t, err)
		defer d.MemFree(reserve)
		ones := make([]float32, n)
		for i := range ones {
			ones[i] = 1
		}
		dX, dY, dDx := upload(t, d, ones), zeros(t, d, n), zeros(t, d, n)
		must(t, drop.Forward(td, dX.Ptr, td, dY.Ptr, reserve))
		must(t, drop.Backward(td, dX.Ptr, td, dDx.Ptr, reserve)) // dy = ones: dx must equal y
		y, dx := download(t, d, dY), download(t, d, dDx)
		kept := 0
		for i := range y {
			switch y[i] {
			case 0:
			case 2: // inverted dropout: kept units scaled by 1/(1−p)
				kept++
			default:
				t.Fatalf("y[%d] = %g, want 0 or 2", i, y[i])
			}
			if dx[i] != y[i] {
				t.Fatalf("backward mask differs at %d: %g vs %g", i, dx[i], y[i])
			}
		}
		if f := float64(kept) / n; math.Abs(f-0.5) > 0.02 {
			t.Errorf("kept fraction %.3f, want 0.5", f)
		}
	})
}

// TestGPUCopyKernelOverlap: a copy on one stream runs while a kernel spins
// on another. Events on both streams, measured from the same origin, show
// the copy finishing before the kernel does.
func TestGPUCopyKernelOverlap(t *testing.T) {
	d := gpu(t)
	if d.AsyncEngines < 1 {
		t.Skipf("%s has no copy engine", d.Name)
	}
	m := needModule(t, d, testKernels, "test_kernels.cu")
	spin, err := m.Function("spin")
	must(t, err)
	compute, err := d.NewStream()
	must(t, err)
	defer compute.Destroy()
	copyS, err := d.NewStream()
	must(t, err)
	defer copyS.Destroy()
	ev := func() *Event {
		e, err := d.NewEvent(true)
		must(t, err)
		t.Cleanup(func() { e.Destroy() })
		return e
	}
	a0, a1, b0, b1 := ev(), ev(), ev(), ev()

	// Calibrate clock64 cycles per millisecond on this GPU.
	const probe = 20_000_000
	must(t, a0.Record(compute))
	must(t, spin.Launch([3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, compute, int64(probe)))
	must(t, a1.Record(compute))
	must(t, a1.Synchronize())
	ms, err := ElapsedMs(a0, a1)
	must(t, err)
	cycles := int64(probe / float64(ms) * 100) // about 100 ms

	const n = 256 << 20
	host, err := d.HostAlloc(n)
	must(t, err)
	defer d.HostFree(host)
	dev, err := d.MemAlloc(n)
	must(t, err)
	defer d.MemFree(dev)

	must(t, a0.Record(compute))
	must(t, spin.Launch([3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, compute, cycles))
	must(t, a1.Record(compute))
	must(t, copyS.WaitEvent(a0)) // the copy starts no earlier than the kernel
	must(t, b0.Record(copyS))
	must(t, d.MemcpyHtoDAsync(dev.Ptr, host, copyS))
	must(t, b1.Record(copyS))
	if done, err := a1.Query(); err != nil || done {
		t.Logf("kernel already done when queried (%v, %v): host too slow to observe", done, err)
	}
	must(t, copyS.Synchronize())
	must(t, compute.Synchronize())
	tb0, err := ElapsedMs(a0, b0)
	must(t, err)
	tb1, err := ElapsedMs(a0, b1)
	must(t, err)
	ta1, err := ElapsedMs(a0, a1)
	must(t, err)
	t.Logf("kernel 0–%.2f ms; copy %.2f–%.2f ms (%.1f GB/s)", ta1, tb0, tb1, float64(n)/float64(tb1-tb0)/1e6)
	if !(tb1 < ta1) {
		t.Errorf("copy ended at %.2f ms, after the kernel (%.2f ms): no overlap", tb1, ta1)
	}
}

// TestGPUConcurrentGoroutines: many goroutines, each with its own stream,
// using the device at once. Each call makes the context current on
// whatever thread the goroutine runs on, so none needs LockOSThread.
func TestGPUConcurrentGoroutines(t *testing.T) {
	d := gpu(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				s, err := d.NewStream()
				if err != nil {
					return err
				}
				defer s.Destroy()
				b, err := d.MemAlloc(1 << 20)
				if err != nil {
					return err
				}
				defer d.MemFree(b)
				for it := range 20 {
					v := uint32(g*1000 + it)
					if err := d.MemsetD32Async(b.Ptr, v, b.Bytes/4, s); err != nil {
						return err
					}
					out := make([]uint32, b.Bytes/4)
					if err := d.MemcpyDtoHAsync(Bytes(out), b.Ptr, s); err != nil {
						return err
					}
					if err := s.Synchronize(); err != nil {
						return err
					}
					if out[0] != v || out[len(out)-1] != v {
						return fmt.Errorf("goroutine %d iteration %d: read %d, want %d", g, it, out[0], v)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkGPULaunch measures the host cost of one kernel launch through
// purego, including making the context current.
func BenchmarkGPULaunch(b *testing.B) {
	d := gpu(b)
	m := needModule(b, d, testKernels, "test_kernels.cu")
	f, err := m.Function("empty")
	must(b, err)
	s, err := d.NewStream()
	must(b, err)
	defer s.Destroy()
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Launch([3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0, s); err != nil {
			b.Fatal(err)
		}
	}
	must(b, s.Synchronize())
}

// BenchmarkGPUEnter measures what every call pays to make the context
// current on its thread.
func BenchmarkGPUEnter(b *testing.B) {
	d := gpu(b)
	for b.Loop() {
		if err := d.enter(); err != nil {
			b.Fatal(err)
		}
		d.leave()
	}
}

// TestGPUGraphConvolution runs every engine the graph API offers for each
// pass of two shapes (a small grouped one, and alexnet's conv2 at batch
// 4, grouped 5×5) against the float64 reference, not only the one the
// planner would keep: a wrong role in the variant pack or the graph would
// otherwise hide behind a faster legacy algorithm. An engine outside the
// precision's tolerance must be one the accuracy gate refuses; every pass
// must have an engine within it.
func TestGPUGraphConvolution(t *testing.T) {
	d := gpu(t)
	dnn := needDNN(t, d)
	if dnn.api.backendCreate == nil {
		t.Skip("this cuDNN lacks the graph API")
	}
	r := rand.New(rand.NewPCG(11, 12))
	checked := 0 // engines run against the reference, over every shape and math
	for _, s := range []ConvShape{
		{N: 2, C: 4, H: 11, W: 9, K: 6, R: 3, S: 3, PadH: 1, PadW: 1, StrideH: 2, StrideW: 2, Groups: 2},
		{N: 4, C: 96, H: 27, W: 27, K: 256, R: 5, S: 5, PadH: 2, PadW: 2, StrideH: 1, StrideW: 1, Groups: 2},
	} {
		x, w, dy := convInputs(r, s)
		wantY, wantDx, wantDw, _ := convRef(s, x, w, dy)
		dX, dW, dDy := upload(t, d, x), upload(t, d, w), upload(t, d, dy)
		for _, math := range []ConvMath{ConvFP32, ConvTF32} {
			planner := dnn.NewConvPlanner(ConvPlannerOptions{Search: SearchBenchmark, WorkspaceBudget: 1 << 30})
			pl, err := planner.Plan(s, math)
			must(t, err)
			t.Logf("%v", pl)
			for _, n := range pl.Notes {
				t.Logf("  %s", n)
			}
			tol := gateTolerance(math)
			sc := &gateScratch{pl: pl}
			rules := algoRules{budget: 1 << 30, strictFP32: math == ConvFP32}
			offered := 0
			for _, dir := range []convDirection{dirForward, dirBackwardData, dirBackwardFilter} {
				cands, why, err := pl.graphPlans(dir, rules)
				if err != nil {
					t.Fatalf("%v %v %v: %v", s, math, dir, err)
				}
				t.Logf("%v %v %v: %d engines; refused: %s", s, math, dir, len(cands), strings.Join(why, "; "))
				offered += len(cands)
				good := 0
				for _, c := range cands {
					var ws Buffer
					if c.workspace > 0 {
						ws, err = d.MemAlloc(int(c.workspace))
						must(t, err)
					}
					var out Buffer
					var want []float32
					switch dir {
					case dirForward:
						out, want = zeros(t, d, len(wantY)), wantY
						err = c.run(dX.Ptr, dW.Ptr, out.Ptr, ws)
					case dirBackwardData:
						out, want = zeros(t, d, len(x)), wantDx
						err = c.run(out.Ptr, dW.Ptr, dDy.Ptr, ws)
					default:
						out, want = zeros(t, d, len(w)), wantDw
						err = c.run(dX.Ptr, out.Ptr, dDy.Ptr, ws)
					}
					if err != nil {
						t.Errorf("%v %v %v %s: %v", s, math, dir, c.name(), err)
					} else {
						e := maxRelErr(download(t, d, out), want)
						if e <= tol {
							good++
							t.Logf("  %s: max relative error %.2e", c.name(), e)
						} else {
							g, err := sc.check(dir, c.workspace, c.run)
							must(t, err)
							t.Logf("  %s: max relative error %.2e, beyond %.0e; the gate measures %.2e", c.name(), e, tol, g)
							if g <= tol { // false for NaN, which RelErr never returns
								t.Errorf("%v %v %v %s: error %.2e against float64, but the gate would take it (%.2e)", s, math, dir, c.name(), e, g)
							}
						}
					}
					c.close()
					// out is freed at the test's end by zeros' cleanup:
					// freeing it here too would free whatever reuses
					// its address by then (cuDNN's own memory, say).
					if ws.Ptr != 0 {
						_ = d.MemFree(ws)
					}
				}
				if len(cands) > 0 && good == 0 {
					t.Errorf("%v %v %v: no engine within %.0e", s, math, dir, tol)
				}
			}
			if offered == 0 {
				// What cuDNN offers is a fact of this build and card, not
				// a wrong result: the legacy path plans that shape. A
				// failure here would turn the graph API off for every
				// later step of the GPU check (run.sh).
				t.Logf("%v %v: the graph API offered no usable engine for any pass (the legacy path plans it)", s, math)
			}
			checked += offered
			sc.close()
			must(t, planner.Close())
		}
	}
	if checked == 0 {
		// Not a pass: nothing was checked (the GPU check's table then
		// reads SKIPPED, and the graph API stays on, offering nothing).
		t.Skip("the graph API offered no usable engine for any shape: nothing to check")
	}
}
