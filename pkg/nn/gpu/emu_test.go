package gpu

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"unsafe"

	native "github.com/alexnet-repro/alexnet/internal/dl"
	"github.com/ebitengine/purego"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

// emuPrelude lets g++ compile kernels.cu as host code. Blocks run one
// after another; the threads of a block are cooperative fibers
// (ucontext), and __syncthreads switches to the next fiber, so a block's
// threads all reach a barrier before any passes it, as on a GPU, and the
// run is deterministic. __shared__ becomes static: shared by the threads
// of the (one) running block. Float intrinsics are plain operators,
// exact under -ffp-contract=off on x86-64's SSE arithmetic.
const emuPrelude = `
#include <cstdint>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>
#include <ucontext.h>

struct emu_dim3 { unsigned x, y, z; };
static emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
	return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
static void __syncthreads();

#include "kernels.cu"

namespace emu {
const size_t kStack = 64 << 10;
struct Fiber { ucontext_t ctx; bool done; emu_dim3 tid; };
static std::vector<Fiber> fibers;
static std::vector<std::vector<char>> stacks;
static ucontext_t sched;
static int cur;
static std::function<void()> body;
static bool use_fibers;

static void entry(int i) { body(); fibers[i].done = true; }

static void run_block() {
	unsigned n = blockDim.x * blockDim.y * blockDim.z;
	if (!use_fibers) {
		// No barrier in this kernel: its threads can run one after another.
		for (unsigned i = 0; i < n; i++) {
			threadIdx = {i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
			body();
		}
		return;
	}
	fibers.resize(n);
	while (stacks.size() < n) stacks.emplace_back(kStack);
	for (unsigned i = 0; i < n; i++) {
		Fiber& f = fibers[i];
		getcontext(&f.ctx);
		f.ctx.uc_stack.ss_sp = stacks[i].data();
		f.ctx.uc_stack.ss_size = kStack;
		f.ctx.uc_link = &sched;
		makecontext(&f.ctx, (void (*)())entry, 1, (int)i);
		f.done = false;
		f.tid = {i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
	}
	for (;;) {
		bool live = false;
		for (unsigned i = 0; i < n; i++) {
			if (fibers[i].done) continue;
			cur = (int)i;
			threadIdx = fibers[i].tid;
			swapcontext(&sched, &fibers[i].ctx);
			if (!fibers[i].done) live = true;
		}
		if (!live) return;
	}
}
} // namespace emu

static void __syncthreads() {
	if (!emu::use_fibers) {
		std::fprintf(stderr, "emulator: __syncthreads in a kernel run without fibers\n");
		std::abort();
	}
	swapcontext(&emu::fibers[emu::cur].ctx, &emu::sched);
}

template <typename... A, std::size_t... I>
static void emu_invoke(void (*k)(A...), void** p, std::index_sequence<I...>) {
	k(*reinterpret_cast<typename std::remove_cv<A>::type*>(p[I])...);
}

template <typename... A>
static int emu_run(void (*k)(A...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** p) {
	emu::body = [=] { emu_invoke(k, p, std::index_sequence_for<A...>{}); };
	gridDim = {gx, gy, gz};
	blockDim = {bx, by, bz};
	for (unsigned z = 0; z < gz; z++)
		for (unsigned y = 0; y < gy; y++)
			for (unsigned x = 0; x < gx; x++) {
				blockIdx = {x, y, z};
				emu::run_block();
			}
	return 0;
}

extern "C" int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, int fibers, void** p) {
	emu::use_fibers = fibers != 0;
#define K(n) if (!std::strcmp(name, #n)) return emu_run(n, gx, gy, gz, bx, by, bz, p);
	KERNEL_LIST
#undef K
	return -1;
}
`

// emulator runs kernels.cu on the CPU. It implements launcher.
type emulator struct {
	mu       sync.Mutex
	cLaunch  func(name string, gx, gy, gz, bx, by, bz uint32, fibers int32, params unsafe.Pointer) int32
	sigs     map[string][]string // each kernel's parameter types, as Go type names
	barriers map[string]bool     // kernels that call __syncthreads, run with fibers
}

var (
	emuOnce sync.Once
	emuLib  *emulator
	emuErr  error
	emuSkip string
	emuDir  string
)

// needEmulator builds the emulator once per test binary, or skips the
// test when there is no C++ compiler.
func needEmulator(t testing.TB) *emulator {
	t.Helper()
	emuOnce.Do(func() {
		cxx, err := exec.LookPath("g++")
		if err != nil {
			if cxx, err = exec.LookPath("c++"); err != nil {
				emuSkip = "no C++ compiler (g++ or c++) to build the kernel emulator"
				return
			}
		}
		emuLib, emuErr = buildEmulator(cxx)
	})
	if emuSkip != "" {
		t.Skip(emuSkip)
	}
	if emuErr != nil {
		t.Fatal(emuErr)
	}
	return emuLib
}

func buildEmulator(cxx string) (*emulator, error) {
	sigs, err := kernelSignatures(kernelSource)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gpu-emu")
	if err != nil {
		return nil, err
	}
	emuDir = dir
	var list strings.Builder
	for _, k := range kernelNames {
		fmt.Fprintf(&list, "K(%s) ", k)
	}
	src := strings.Replace(emuPrelude, "KERNEL_LIST", list.String(), 1)
	if err := os.WriteFile(filepath.Join(dir, "kernels.cu"), []byte(kernelSource), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "emu.cpp"), []byte(src), 0o644); err != nil {
		return nil, err
	}
	lib := filepath.Join(dir, "emu.so")
	cmd := exec.Command(cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wno-unused-function",
		"-shared", "-fPIC", "-o", lib, filepath.Join(dir, "emu.cpp"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the kernel emulator: %v\n%s", err, out)
	}
	h, err := native.Open(lib, false)
	if err != nil {
		return nil, err
	}
	em := &emulator{sigs: sigs, barriers: kernelBarriers(kernelSource)}
	purego.RegisterLibFunc(&em.cLaunch, h, "emu_launch")
	return em, nil
}

// kernelSignatures reads each extern "C" kernel's parameter list and maps
// every C type to the Go type a launch must pass for it.
func kernelSignatures(src string) (map[string][]string, error) {
	re := regexp.MustCompile(`(?s)extern "C" __global__ void (\w+)\(([^)]*)\)`)
	out := map[string][]string{}
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		var types []string
		for _, p := range strings.Split(m[2], ",") {
			f := strings.Fields(strings.NewReplacer("*", " * ").Replace(p))
			if len(f) < 2 {
				return nil, fmt.Errorf("kernel %s: cannot read parameter %q", m[1], p)
			}
			ctype := strings.Join(f[:len(f)-1], " ")
			var g string
			switch {
			case strings.Contains(ctype, "*"):
				g = "cuda.DevicePtr"
			default:
				switch strings.TrimSpace(strings.ReplaceAll(ctype, "const", "")) {
				case "int":
					g = "int32"
				case "long long":
					g = "int64"
				case "u64", "unsigned long long":
					g = "uint64"
				case "float":
					g = "float32"
				case "double":
					g = "float64"
				default:
					return nil, fmt.Errorf("kernel %s: parameter type %q has no Go mapping here", m[1], ctype)
				}
			}
			types = append(types, g)
		}
		out[m[1]] = types
	}
	return out, nil
}

// kernelBarriers reports, per kernel, whether its body calls
// __syncthreads: only those need the emulator's fibers. Each kernel's
// body runs from its signature to the next kernel's.
func kernelBarriers(src string) map[string]bool {
	const mark = `extern "C" __global__ void `
	out := map[string]bool{}
	parts := strings.Split(src, mark)
	for _, p := range parts[1:] {
		name, _, _ := strings.Cut(p, "(")
		out[name] = strings.Contains(p, "__syncthreads")
	}
	return out
}

func goTypeName(a any) string {
	switch a.(type) {
	case cuda.DevicePtr:
		return "cuda.DevicePtr"
	default:
		return fmt.Sprintf("%T", a)
	}
}

// launch checks every argument's Go type against the kernel's C
// signature, which the real driver cannot do (it copies as many bytes as
// the parameter has), packs them as cuLaunchKernel reads them (one
// 8-byte slot each) and runs the kernel.
func (em *emulator) launch(name string, grid, block [3]uint32, args ...any) error {
	sig, ok := em.sigs[name]
	if !ok {
		return fmt.Errorf("emulator: no kernel %q", name)
	}
	if len(sig) != len(args) {
		return fmt.Errorf("emulator: %s takes %d arguments, launched with %d", name, len(sig), len(args))
	}
	slots := make([]uint64, 2*len(args)+1)
	for i, a := range args {
		if got := goTypeName(a); got != sig[i] {
			return fmt.Errorf("emulator: %s argument %d is a %s, the kernel takes %s", name, i, got, sig[i])
		}
		var v uint64
		switch x := a.(type) {
		case cuda.DevicePtr:
			v = uint64(x)
		case int32:
			v = uint64(uint32(x))
		case int64:
			v = uint64(x)
		case uint64:
			v = x
		case float32:
			v = uint64(math.Float32bits(x))
		case float64:
			v = math.Float64bits(x)
		}
		slots[i] = v
	}
	var pin runtime.Pinner
	pin.Pin(&slots[0])
	defer pin.Unpin()
	n := len(args)
	for i := range n {
		slots[n+i] = uint64(uintptr(unsafe.Pointer(&slots[i])))
	}
	for i := range 3 {
		if grid[i] == 0 || block[i] == 0 {
			return fmt.Errorf("emulator: %s: grid %v block %v has a zero dimension", name, grid, block)
		}
	}
	if block[0]*block[1]*block[2] > 1024 {
		return fmt.Errorf("emulator: %s: block %v over 1024 threads", name, block)
	}
	em.mu.Lock()
	defer em.mu.Unlock()
	fibers := int32(0)
	if em.barriers[name] {
		fibers = 1
	}
	if r := em.cLaunch(name, grid[0], grid[1], grid[2], block[0], block[1], block[2], fibers, unsafe.Pointer(&slots[n])); r != 0 {
		return fmt.Errorf("emulator: %s not found in the library", name)
	}
	return nil
}

// hostMem is "device" memory for the emulator: pinned Go allocations,
// addressed by their real addresses so kernels can use them directly.
type hostMem struct {
	mu     sync.Mutex
	pin    runtime.Pinner
	blocks []hostBlock // sorted by base
}

type hostBlock struct {
	base uintptr
	b    []byte
}

func (m *hostMem) alloc(n int) cuda.DevicePtr {
	// A uint64 backing keeps every block 8-byte aligned for doubles.
	words := make([]uint64, (n+7)/8+1)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pin.Pin(&words[0])
	base := uintptr(unsafe.Pointer(&words[0]))
	m.blocks = append(m.blocks, hostBlock{base, b})
	sort.Slice(m.blocks, func(i, j int) bool { return m.blocks[i].base < m.blocks[j].base })
	return cuda.DevicePtr(base)
}

// bytes is the n bytes at p, which must lie inside one allocation.
func (m *hostMem) bytes(p cuda.DevicePtr, n int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.Search(len(m.blocks), func(i int) bool { return m.blocks[i].base > uintptr(p) }) - 1
	if i < 0 {
		panic(fmt.Sprintf("hostMem: %#x is not allocated", p))
	}
	blk := m.blocks[i]
	off := int(uintptr(p) - blk.base)
	if off+n > len(blk.b) {
		panic(fmt.Sprintf("hostMem: %d bytes at %#x overrun the %d-byte block at %#x", n, p, len(blk.b), blk.base))
	}
	return blk.b[off : off+n : off+n]
}

func (m *hostMem) f32(p cuda.DevicePtr, n int) []float32 {
	if n == 0 {
		return nil
	}
	b := m.bytes(p, 4*n)
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

func (m *hostMem) free() { m.pin.Unpin() }

func TestMain(m *testing.M) {
	code := m.Run()
	if emuDir != "" {
		os.RemoveAll(emuDir)
	}
	os.Exit(code)
}

func TestKernelSignatures(t *testing.T) {
	sigs, err := kernelSignatures(kernelSource)
	if err != nil {
		t.Fatal(err)
	}
	var inSource []string
	for k := range sigs {
		inSource = append(inSource, k)
	}
	sort.Strings(inSource)
	listed := append([]string(nil), kernelNames...)
	sort.Strings(listed)
	if strings.Join(inSource, " ") != strings.Join(listed, " ") {
		t.Errorf("kernels.cu defines %v, kernelNames lists %v", inSource, listed)
	}
	if got := sigs["dropout_fwd"]; strings.Join(got, ",") != "cuda.DevicePtr,cuda.DevicePtr,cuda.DevicePtr,int64,uint64,uint64,uint64,float32,int32" {
		t.Errorf("dropout_fwd parameters read as %v", got)
	}
}
