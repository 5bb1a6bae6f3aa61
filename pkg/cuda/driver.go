package cuda

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	native "github.com/alexnet-repro/alexnet/internal/dl"
	"github.com/ebitengine/purego"
)

type cuResult int32

// driverAPI holds libcuda's functions with their C signatures (cuda.h,
// CUDA 12/13). Handles (CUcontext, CUstream, CUevent, CUmodule,
// CUfunction) are opaque pointers and travel as uintptr; CUdevice is int.
type driverAPI struct {
	cuInit                   func(flags uint32) cuResult
	cuDriverGetVersion       func(v *int32) cuResult
	cuDeviceGetCount         func(n *int32) cuResult
	cuDeviceGet              func(dev *int32, ordinal int32) cuResult
	cuDeviceGetName          func(name *byte, n int32, dev int32) cuResult
	cuDeviceGetAttribute     func(v *int32, attr int32, dev int32) cuResult
	cuDeviceGetPCIBusId      func(id *byte, n int32, dev int32) cuResult
	cuDeviceTotalMem         func(bytes *uintptr, dev int32) cuResult
	cuDevicePrimaryCtxRetain func(ctx *uintptr, dev int32) cuResult
	cuCtxSetCurrent          func(ctx uintptr) cuResult
	cuCtxSynchronize         func() cuResult
	cuMemAlloc               func(p *uintptr, bytes uintptr) cuResult
	cuMemFree                func(p uintptr) cuResult
	cuMemGetInfo             func(free, total *uintptr) cuResult
	cuMemHostAlloc           func(p *unsafe.Pointer, bytes uintptr, flags uint32) cuResult
	cuMemFreeHost            func(p unsafe.Pointer) cuResult
	cuMemcpyHtoD             func(dst uintptr, src unsafe.Pointer, n uintptr) cuResult
	cuMemcpyDtoH             func(dst unsafe.Pointer, src uintptr, n uintptr) cuResult
	cuMemcpyHtoDAsync        func(dst uintptr, src unsafe.Pointer, n uintptr, s uintptr) cuResult
	cuMemcpyDtoHAsync        func(dst unsafe.Pointer, src uintptr, n uintptr, s uintptr) cuResult
	cuMemcpyDtoDAsync        func(dst, src uintptr, n uintptr, s uintptr) cuResult
	cuMemsetD8Async          func(dst uintptr, v uint8, n uintptr, s uintptr) cuResult
	cuMemsetD32Async         func(dst uintptr, v uint32, n uintptr, s uintptr) cuResult
	cuStreamCreate           func(s *uintptr, flags uint32) cuResult
	cuStreamDestroy          func(s uintptr) cuResult
	cuStreamSynchronize      func(s uintptr) cuResult
	cuStreamQuery            func(s uintptr) cuResult
	cuStreamWaitEvent        func(s, e uintptr, flags uint32) cuResult
	cuEventCreate            func(e *uintptr, flags uint32) cuResult
	cuEventDestroy           func(e uintptr) cuResult
	cuEventRecord            func(e, s uintptr) cuResult
	cuEventSynchronize       func(e uintptr) cuResult
	cuEventQuery             func(e uintptr) cuResult
	cuEventElapsedTime       func(ms *float32, start, end uintptr) cuResult
	cuModuleLoadDataEx       func(m *uintptr, image unsafe.Pointer, n uint32, opts *int32, vals *uintptr) cuResult
	cuModuleGetFunction      func(f *uintptr, m uintptr, name string) cuResult
	cuModuleUnload           func(m uintptr) cuResult
	cuLaunchKernel           func(f uintptr, gx, gy, gz, bx, by, bz, shmem uint32, s uintptr, params, extra unsafe.Pointer) cuResult
	cuGetErrorName           func(r cuResult, s **byte) cuResult
	cuGetErrorString         func(r cuResult, s **byte) cuResult
	ctxSetCurrentAddr        uintptr // raw address: called through SyscallN on every entry
	symbols                  map[string]string
	path                     string
	initErr                  error
	driverVersion            int
	deviceCount              int
}

var (
	drvOnce sync.Once
	drv     *driverAPI
	drvErr  error
)

// driver loads libcuda and calls cuInit once per process.
func driver() (*driverAPI, error) {
	drvOnce.Do(func() { drv, drvErr = loadDriver() })
	return drv, drvErr
}

// cuInit's answers that mean "this libcuda, not this machine": a
// toolkit's link-time stub, and a user-space driver (a forward-
// compatibility package, or one mounted into a container) that does not
// match the kernel driver or the GPU. The search goes on past them to the
// system's own libcuda.
const (
	cuErrorStubLibrary             = 34  // CUDA_ERROR_STUB_LIBRARY
	cuErrorSystemDriverMismatch    = 803 // CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
	cuErrorCompatNotSupportedOnGPU = 804 // CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE
)

func loadDriver() (*driverAPI, error) {
	var a *driverAPI
	var initResult cuResult
	_, err := libDriver.load(func(path string, h uintptr) error {
		c := &driverAPI{}
		var err error
		if c.symbols, err = bindSyms(path, h, driverSyms(c)); err != nil {
			return err
		}
		r := c.cuInit(0)
		switch r {
		case cuErrorStubLibrary, cuErrorSystemDriverMismatch, cuErrorCompatNotSupportedOnGPU:
			// A stub found by the loader (LD_LIBRARY_PATH at a toolkit's
			// lib64/stubs), or a user-space driver that is not this
			// machine's: go on looking for the real one.
			return c.err(r, "cuInit(0)")
		}
		c.ctxSetCurrentAddr, _ = native.Sym(h, "cuCtxSetCurrent")
		a, initResult = c, r
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.path = loadedPath(libDriver)
	if initResult != 0 {
		// cuInit's failure is the common "no GPU here" answer; keep the
		// bindings so error names still resolve, but report it.
		a.initErr = a.err(initResult, "cuInit(0) [%s]", a.path)
		return a, a.initErr
	}
	var v, n int32
	if r := a.cuDriverGetVersion(&v); r != 0 {
		return a, a.err(r, "cuDriverGetVersion")
	}
	if r := a.cuDeviceGetCount(&n); r != 0 {
		return a, a.err(r, "cuDeviceGetCount")
	}
	a.driverVersion, a.deviceCount = int(v), int(n)
	return a, nil
}

// driverSyms is the driver's binding table: the Go function variables of
// a and the exported names that fill them.
func driverSyms(a *driverAPI) []sym {
	return []sym{
		{fptr: &a.cuInit, names: []string{"cuInit"}},
		{fptr: &a.cuDriverGetVersion, names: []string{"cuDriverGetVersion"}},
		{fptr: &a.cuDeviceGetCount, names: []string{"cuDeviceGetCount"}},
		{fptr: &a.cuDeviceGet, names: []string{"cuDeviceGet"}},
		{fptr: &a.cuDeviceGetName, names: []string{"cuDeviceGetName"}},
		{fptr: &a.cuDeviceGetAttribute, names: []string{"cuDeviceGetAttribute"}},
		{fptr: &a.cuDeviceGetPCIBusId, names: []string{"cuDeviceGetPCIBusId"}, optional: true},
		{fptr: &a.cuDeviceTotalMem, names: []string{"cuDeviceTotalMem_v2"}},
		// The primary context, not cuCtxCreate: CUDA 13's header maps
		// cuCtxCreate to a four-argument cuCtxCreate_v4, and the runtime
		// inside cuBLAS and cuDNN uses the primary context anyway, so
		// sharing it avoids a second context and its memory.
		{fptr: &a.cuDevicePrimaryCtxRetain, names: []string{"cuDevicePrimaryCtxRetain"}},
		{fptr: &a.cuCtxSetCurrent, names: []string{"cuCtxSetCurrent"}},
		{fptr: &a.cuCtxSynchronize, names: []string{"cuCtxSynchronize"}},
		{fptr: &a.cuMemAlloc, names: []string{"cuMemAlloc_v2"}},
		{fptr: &a.cuMemFree, names: []string{"cuMemFree_v2"}},
		{fptr: &a.cuMemGetInfo, names: []string{"cuMemGetInfo_v2"}},
		{fptr: &a.cuMemHostAlloc, names: []string{"cuMemHostAlloc"}},
		{fptr: &a.cuMemFreeHost, names: []string{"cuMemFreeHost"}},
		{fptr: &a.cuMemcpyHtoD, names: []string{"cuMemcpyHtoD_v2"}},
		{fptr: &a.cuMemcpyDtoH, names: []string{"cuMemcpyDtoH_v2"}},
		{fptr: &a.cuMemcpyHtoDAsync, names: []string{"cuMemcpyHtoDAsync_v2"}},
		{fptr: &a.cuMemcpyDtoHAsync, names: []string{"cuMemcpyDtoHAsync_v2"}},
		{fptr: &a.cuMemcpyDtoDAsync, names: []string{"cuMemcpyDtoDAsync_v2"}},
		// The async memsets were added after the _v2 sweep and were never
		// renamed.
		{fptr: &a.cuMemsetD8Async, names: []string{"cuMemsetD8Async"}},
		{fptr: &a.cuMemsetD32Async, names: []string{"cuMemsetD32Async"}},
		{fptr: &a.cuStreamCreate, names: []string{"cuStreamCreate"}},
		{fptr: &a.cuStreamDestroy, names: []string{"cuStreamDestroy_v2"}},
		{fptr: &a.cuStreamSynchronize, names: []string{"cuStreamSynchronize"}},
		{fptr: &a.cuStreamQuery, names: []string{"cuStreamQuery"}},
		{fptr: &a.cuStreamWaitEvent, names: []string{"cuStreamWaitEvent"}},
		{fptr: &a.cuEventCreate, names: []string{"cuEventCreate"}},
		{fptr: &a.cuEventDestroy, names: []string{"cuEventDestroy_v2"}},
		{fptr: &a.cuEventRecord, names: []string{"cuEventRecord"}},
		{fptr: &a.cuEventSynchronize, names: []string{"cuEventSynchronize"}},
		{fptr: &a.cuEventQuery, names: []string{"cuEventQuery"}},
		// CUDA 12.8 added cuEventElapsedTime_v2 and CUDA 13's header maps
		// the plain name to it; older drivers only have the plain one.
		{fptr: &a.cuEventElapsedTime, names: []string{"cuEventElapsedTime_v2", "cuEventElapsedTime"}},
		{fptr: &a.cuModuleLoadDataEx, names: []string{"cuModuleLoadDataEx"}},
		{fptr: &a.cuModuleGetFunction, names: []string{"cuModuleGetFunction"}},
		{fptr: &a.cuModuleUnload, names: []string{"cuModuleUnload"}},
		{fptr: &a.cuLaunchKernel, names: []string{"cuLaunchKernel"}},
		{fptr: &a.cuGetErrorName, names: []string{"cuGetErrorName"}},
		{fptr: &a.cuGetErrorString, names: []string{"cuGetErrorString"}},
	}
}

// err turns a non-zero CUresult into an *Error, asking the driver for the
// name and description so that codes newer than our table read right.
func (a *driverAPI) err(r cuResult, format string, args ...any) error {
	if r == 0 {
		return nil
	}
	var desc string
	e := newError(APIDriver, int(r), "", "", format, args...)
	if a != nil && a.cuGetErrorString != nil {
		var p *byte
		if a.cuGetErrorString(r, &p) == 0 && p != nil {
			desc = goString(p)
		}
		var np *byte
		if a.cuGetErrorName(r, &np) == 0 && np != nil {
			e.Name = goString(np)
		}
	}
	if desc != "" {
		e.Desc = desc
	}
	if stickyCodes[int(r)] && e.Detail == "" {
		e.Detail = stickyHint(int(r))
	}
	return e
}

// ComputeCapability is a GPU's SM version, 9.0 for H100 and H200.
type ComputeCapability struct{ Major, Minor int }

func (c ComputeCapability) String() string { return fmt.Sprintf("%d.%d", c.Major, c.Minor) }

// DeviceInfo is what the driver says about a GPU, without a context.
type DeviceInfo struct {
	Ordinal                int
	Name                   string
	ComputeCapability      ComputeCapability
	TotalMem               int64 // bytes
	SMs                    int
	MaxThreadsPerBlock     int
	WarpSize               int
	AsyncEngines           int // copy engines: 2 means H2D and D2H overlap each other and kernels
	ConcurrentKernels      bool
	L2CacheBytes           int
	MaxSharedPerBlockOptin int // bytes of shared memory a kernel may opt in to
	PCIBusID               string
	DriverVersion          int // CUDA version the driver supports, 13000 = 13.0
}

// CUdevice_attribute values used here (cuda.h).
const (
	attrMaxThreadsPerBlock     = 1
	attrWarpSize               = 10
	attrMultiprocessorCount    = 16
	attrConcurrentKernels      = 31
	attrL2CacheSize            = 38
	attrAsyncEngineCount       = 40
	attrComputeCapabilityMajor = 75
	attrComputeCapabilityMinor = 76
	attrMaxSharedPerBlockOptin = 97
)

// VersionString formats the driver's or a library's integer CUDA version,
// 13000 as "13.0" and 12080 as "12.8".
func VersionString(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

func (a *driverAPI) deviceInfo(ordinal int) (DeviceInfo, int32, error) {
	var dev int32
	if r := a.cuDeviceGet(&dev, int32(ordinal)); r != 0 {
		return DeviceInfo{}, 0, a.err(r, "cuDeviceGet(%d)", ordinal)
	}
	info := DeviceInfo{Ordinal: ordinal, DriverVersion: a.driverVersion}
	name := make([]byte, 256)
	if r := a.cuDeviceGetName(&name[0], int32(len(name)), dev); r != 0 {
		return info, dev, a.err(r, "cuDeviceGetName(%d)", ordinal)
	}
	info.Name = goString(&name[0])
	var mem uintptr
	if r := a.cuDeviceTotalMem(&mem, dev); r != 0 {
		return info, dev, a.err(r, "cuDeviceTotalMem_v2(%d)", ordinal)
	}
	info.TotalMem = int64(mem)
	attr := func(id int32, what string) (int, error) {
		var v int32
		if r := a.cuDeviceGetAttribute(&v, id, dev); r != 0 {
			return 0, a.err(r, "cuDeviceGetAttribute(%s, device %d)", what, ordinal)
		}
		return int(v), nil
	}
	var err error
	if info.ComputeCapability.Major, err = attr(attrComputeCapabilityMajor, "COMPUTE_CAPABILITY_MAJOR"); err != nil {
		return info, dev, err
	}
	if info.ComputeCapability.Minor, err = attr(attrComputeCapabilityMinor, "COMPUTE_CAPABILITY_MINOR"); err != nil {
		return info, dev, err
	}
	if info.SMs, err = attr(attrMultiprocessorCount, "MULTIPROCESSOR_COUNT"); err != nil {
		return info, dev, err
	}
	// The rest are informational: a driver that drops one should not stop
	// the program, so failures leave zero.
	info.MaxThreadsPerBlock, _ = attr(attrMaxThreadsPerBlock, "MAX_THREADS_PER_BLOCK")
	info.WarpSize, _ = attr(attrWarpSize, "WARP_SIZE")
	info.AsyncEngines, _ = attr(attrAsyncEngineCount, "ASYNC_ENGINE_COUNT")
	ck, _ := attr(attrConcurrentKernels, "CONCURRENT_KERNELS")
	info.ConcurrentKernels = ck != 0
	info.L2CacheBytes, _ = attr(attrL2CacheSize, "L2_CACHE_SIZE")
	info.MaxSharedPerBlockOptin, _ = attr(attrMaxSharedPerBlockOptin, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN")
	if a.cuDeviceGetPCIBusId != nil {
		id := make([]byte, 64)
		if a.cuDeviceGetPCIBusId(&id[0], int32(len(id)), dev) == 0 {
			info.PCIBusID = goString(&id[0])
		}
	}
	return info, dev, nil
}

// Device is one GPU with its primary context retained. Its methods, and
// those of everything made from it, make the context current on the
// calling OS thread for the duration of each call (see the package
// comment), so a Device may be used from any goroutine.
type Device struct {
	DeviceInfo
	api *driverAPI
	dev int32
	ctx uintptr
}

var (
	devMu   sync.Mutex
	devices = map[int]*Device{}
)

// Init opens the GPU named by $ALEXNET_CUDA_DEVICE (an ordinal, default
// 0). On a machine without a driver it returns an error naming
// libcuda.so.1 and every place searched; without a GPU, cuInit's
// CUDA_ERROR_NO_DEVICE.
func Init() (*Device, error) {
	ord := 0
	if s := os.Getenv("ALEXNET_CUDA_DEVICE"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("cuda: ALEXNET_CUDA_DEVICE=%q: want a device ordinal (0, 1, ...)", s)
		}
		ord = n
	}
	return InitDevice(ord)
}

// InitDevice opens GPU ordinal. Calling it again returns the same Device:
// the primary context is retained once and kept for the process's life,
// since releasing it would free everything allocated in it.
func InitDevice(ordinal int) (*Device, error) {
	a, err := driver()
	if err != nil {
		return nil, err
	}
	devMu.Lock()
	defer devMu.Unlock()
	if d := devices[ordinal]; d != nil {
		return d, nil
	}
	if ordinal < 0 || ordinal >= a.deviceCount {
		return nil, fmt.Errorf("cuda: device %d requested, driver %s sees %d device(s)", ordinal, VersionString(a.driverVersion), a.deviceCount)
	}
	info, dev, err := a.deviceInfo(ordinal)
	if err != nil {
		return nil, err
	}
	d := &Device{DeviceInfo: info, api: a, dev: dev}
	if r := a.cuDevicePrimaryCtxRetain(&d.ctx, dev); r != 0 {
		return nil, a.err(r, "cuDevicePrimaryCtxRetain(%d)", ordinal)
	}
	devices[ordinal] = d
	return d, nil
}

// enter pins the calling goroutine to its OS thread and makes the device's
// context current there. A CUDA context is per-thread state and the Go
// scheduler moves goroutines between threads, so every call into the
// driver, cuBLAS or cuDNN is bracketed by enter and leave. LockOSThread
// nests, so a caller that has locked its goroutine stays locked.
// cuCtxSetCurrent goes through SyscallN, not the reflective wrapper,
// because it runs on every call.
func (d *Device) enter() error {
	runtime.LockOSThread()
	r, _, _ := purego.SyscallN(d.api.ctxSetCurrentAddr, d.ctx)
	if r := cuResult(int32(r)); r != 0 {
		runtime.UnlockOSThread()
		return d.api.err(r, "cuCtxSetCurrent(device %d)", d.Ordinal)
	}
	return nil
}

func (d *Device) leave() { runtime.UnlockOSThread() }

// Bind locks the calling goroutine to its OS thread and makes the device's
// context current there, for code that calls CUDA libraries this package
// does not wrap. Call the returned function to unlock.
func (d *Device) Bind() (unbind func(), err error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	return d.leave, nil
}

// Synchronize waits for all work on the device (cuCtxSynchronize).
func (d *Device) Synchronize() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuCtxSynchronize(), "cuCtxSynchronize")
}

// MemGetInfo returns free and total device memory in bytes.
func (d *Device) MemGetInfo() (free, total int64, err error) {
	if err := d.enter(); err != nil {
		return 0, 0, err
	}
	defer d.leave()
	var f, t uintptr
	if r := d.api.cuMemGetInfo(&f, &t); r != 0 {
		return 0, 0, d.api.err(r, "cuMemGetInfo_v2")
	}
	return int64(f), int64(t), nil
}

// DevicePtr is a device address (CUdeviceptr). It is a number to Go: the
// garbage collector neither follows nor frees it.
type DevicePtr uintptr

// Add returns p advanced by off bytes.
func (p DevicePtr) Add(off int) DevicePtr { return p + DevicePtr(off) }

// Buffer is a device allocation: its address and size in bytes.
type Buffer struct {
	Ptr   DevicePtr
	Bytes int
}

// MemAlloc allocates device memory (cuMemAlloc_v2: 256-byte aligned). A
// zero-byte request returns an empty Buffer, which MemFree accepts, since
// the driver rejects it.
func (d *Device) MemAlloc(bytes int) (Buffer, error) {
	if bytes < 0 {
		return Buffer{}, fmt.Errorf("cuda: MemAlloc(%d): negative size", bytes)
	}
	if bytes == 0 {
		return Buffer{}, nil
	}
	if err := d.enter(); err != nil {
		return Buffer{}, err
	}
	defer d.leave()
	var p uintptr
	if r := d.api.cuMemAlloc(&p, uintptr(bytes)); r != 0 {
		return Buffer{}, d.api.err(r, "cuMemAlloc_v2(%d)", bytes)
	}
	return Buffer{Ptr: DevicePtr(p), Bytes: bytes}, nil
}

// MemFree frees b. Freeing an empty Buffer does nothing.
func (d *Device) MemFree(b Buffer) error {
	if b.Ptr == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemFree(uintptr(b.Ptr)), "cuMemFree_v2(%#x, %d bytes)", uintptr(b.Ptr), b.Bytes)
}

// memHostAllocPortable (CU_MEMHOSTALLOC_PORTABLE) makes the pinning count
// for every context, not only the current one.
const memHostAllocPortable = 0x01

// HostAlloc returns bytes of page-locked host memory, allocated by the
// driver outside the Go heap. Copies from and to it run asynchronously
// with the host and at full PCIe/NVLink speed; copies from ordinary Go
// memory are staged and synchronous. The slice is valid until HostFree;
// the garbage collector does not know about it.
func (d *Device) HostAlloc(bytes int) ([]byte, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("cuda: HostAlloc(%d): size must be positive", bytes)
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	var p unsafe.Pointer
	if r := d.api.cuMemHostAlloc(&p, uintptr(bytes), memHostAllocPortable); r != 0 {
		return nil, d.api.err(r, "cuMemHostAlloc(%d, PORTABLE)", bytes)
	}
	return unsafe.Slice((*byte)(p), bytes), nil
}

// HostFree releases memory from HostAlloc. b must be the slice HostAlloc
// returned (or one starting at the same address).
func (d *Device) HostFree(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemFreeHost(unsafe.Pointer(&b[0])), "cuMemFreeHost(%d bytes)", len(b))
}

// MemcpyHtoD copies src to device address dst and waits for it.
func (d *Device) MemcpyHtoD(dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemcpyHtoD(uintptr(dst), unsafe.Pointer(&src[0]), uintptr(len(src))), "cuMemcpyHtoD_v2(%d bytes)", len(src))
}

// MemcpyDtoH copies len(dst) bytes from device address src and waits.
func (d *Device) MemcpyDtoH(dst []byte, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemcpyDtoH(unsafe.Pointer(&dst[0]), uintptr(src), uintptr(len(dst))), "cuMemcpyDtoH_v2(%d bytes)", len(dst))
}

// MemcpyHtoDAsync queues a copy of src to dst on s (nil: the legacy
// default stream). When src is from HostAlloc the call returns at once and
// src must stay untouched until the stream passes the copy. When src is Go
// memory, current drivers stage it before returning, but CUDA only says
// such a copy "might be synchronous": callers that reuse or drop src at
// once should synchronize the stream first (pkg/nn/gpu does). Either way
// the copy is slow and does not overlap.
func (d *Device) MemcpyHtoDAsync(dst DevicePtr, src []byte, s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if len(src) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemcpyHtoDAsync(uintptr(dst), unsafe.Pointer(&src[0]), uintptr(len(src)), s.handle()),
		"cuMemcpyHtoDAsync_v2(%d bytes)", len(src))
}

// MemcpyDtoHAsync queues a copy of len(dst) bytes from src into dst on s.
// dst should come from HostAlloc; into Go memory the call is synchronous.
// Read dst only after the stream (or an event after the copy) completes.
func (d *Device) MemcpyDtoHAsync(dst []byte, src DevicePtr, s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemcpyDtoHAsync(unsafe.Pointer(&dst[0]), uintptr(src), uintptr(len(dst)), s.handle()),
		"cuMemcpyDtoHAsync_v2(%d bytes)", len(dst))
}

// MemcpyDtoDAsync queues a device-to-device copy of n bytes on s.
func (d *Device) MemcpyDtoDAsync(dst, src DevicePtr, n int, s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemcpyDtoDAsync(uintptr(dst), uintptr(src), uintptr(n), s.handle()), "cuMemcpyDtoDAsync_v2(%d bytes)", n)
}

// MemsetD8Async sets n bytes at dst to v, on s.
func (d *Device) MemsetD8Async(dst DevicePtr, v byte, n int, s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemsetD8Async(uintptr(dst), v, uintptr(n), s.handle()), "cuMemsetD8Async(%d bytes)", n)
}

// MemsetD32Async sets n 32-bit words at dst (4-byte aligned) to v, on s.
// math.Float32bits(x) fills float32 memory with x; 0 clears.
func (d *Device) MemsetD32Async(dst DevicePtr, v uint32, n int, s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.api.err(d.api.cuMemsetD32Async(uintptr(dst), v, uintptr(n), s.handle()), "cuMemsetD32Async(%d words)", n)
}

// Stream is an ordered queue of GPU work. Work on different streams may
// run concurrently; order across streams comes from events.
type Stream struct {
	dev *Device
	h   uintptr
	// destroyed: Destroy ran. Its handle is then 0, which CUDA reads as
	// the legacy default stream: work queued there would lose its order
	// with the non-blocking streams without a word, so it is refused.
	destroyed bool
}

// errStreamDestroyed is what a destroyed stream's use returns.
var errStreamDestroyed = errors.New("cuda: stream used after Destroy (its handle would mean the legacy default stream)")

// live refuses a stream that was destroyed; nil, the legacy default
// stream by choice, is fine.
func (s *Stream) live() error {
	if s != nil && s.destroyed {
		return errStreamDestroyed
	}
	return nil
}

// streamNonBlocking (CU_STREAM_NON_BLOCKING): the stream does not
// implicitly wait for the legacy default stream, which would otherwise
// serialise the copy stream behind unrelated default-stream work.
const streamNonBlocking = 0x1

// NewStream creates a non-blocking stream.
func (d *Device) NewStream() (*Stream, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	s := &Stream{dev: d}
	if r := d.api.cuStreamCreate(&s.h, streamNonBlocking); r != 0 {
		return nil, d.api.err(r, "cuStreamCreate(NON_BLOCKING)")
	}
	return s, nil
}

// Handle is the CUstream (== cudaStream_t) for other libraries; 0 for nil.
func (s *Stream) Handle() uintptr { return s.handle() }

func (s *Stream) handle() uintptr {
	if s == nil {
		return 0
	}
	return s.h
}

// Synchronize waits until all work queued on s has finished.
func (s *Stream) Synchronize() error {
	if err := s.live(); err != nil {
		return err
	}
	if err := s.dev.enter(); err != nil {
		return err
	}
	defer s.dev.leave()
	return s.dev.api.err(s.dev.api.cuStreamSynchronize(s.h), "cuStreamSynchronize")
}

// Query reports whether all work queued on s has finished, without waiting.
func (s *Stream) Query() (bool, error) {
	if err := s.live(); err != nil {
		return false, err
	}
	if err := s.dev.enter(); err != nil {
		return false, err
	}
	defer s.dev.leave()
	switch r := s.dev.api.cuStreamQuery(s.h); r {
	case 0:
		return true, nil
	case 600: // CUDA_ERROR_NOT_READY is the answer "no", not a failure
		return false, nil
	default:
		return false, s.dev.api.err(r, "cuStreamQuery")
	}
}

// WaitEvent makes later work on s wait until e has completed; the host
// does not wait.
func (s *Stream) WaitEvent(e *Event) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := s.dev.enter(); err != nil {
		return err
	}
	defer s.dev.leave()
	return s.dev.api.err(s.dev.api.cuStreamWaitEvent(s.h, e.h, 0), "cuStreamWaitEvent")
}

// Destroy releases s once its queued work completes.
func (s *Stream) Destroy() error {
	if s == nil || s.h == 0 {
		return nil
	}
	if err := s.dev.enter(); err != nil {
		return err
	}
	defer s.dev.leave()
	err := s.dev.api.err(s.dev.api.cuStreamDestroy(s.h), "cuStreamDestroy_v2")
	s.h, s.destroyed = 0, true
	return err
}

// Event marks a point in a stream: to wait on, to order other streams
// after, or to time.
type Event struct {
	dev    *Device
	h      uintptr
	timing bool
}

// CUevent_flags.
const (
	eventBlockingSync  = 0x1
	eventDisableTiming = 0x2
)

// NewEvent creates an event. Events without timing are cheaper to record
// and wait on; use timing only where ElapsedMs will be asked. A host
// thread waiting on it (Synchronize) spins on its core, which is the
// lowest latency; see NewBlockingEvent.
func (d *Device) NewEvent(timing bool) (*Event, error) { return d.newEvent(timing, false) }

// NewBlockingEvent is NewEvent for events a host thread waits on for long
// (a whole training step): Synchronize sleeps in the kernel until the
// event completes (CU_EVENT_BLOCKING_SYNC) instead of spinning a core the
// data pipeline's decoders could use. The wake-up costs tens of
// microseconds, so use it where the waiter is ahead of the GPU anyway.
func (d *Device) NewBlockingEvent(timing bool) (*Event, error) { return d.newEvent(timing, true) }

func (d *Device) newEvent(timing, blocking bool) (*Event, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	var flags uint32
	if !timing {
		flags |= eventDisableTiming
	}
	if blocking {
		flags |= eventBlockingSync
	}
	e := &Event{dev: d, timing: timing}
	if r := d.api.cuEventCreate(&e.h, flags); r != 0 {
		return nil, d.api.err(r, "cuEventCreate(%#x)", flags)
	}
	return e, nil
}

// Record marks the current end of stream s (nil: legacy default stream).
func (e *Event) Record(s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := e.dev.enter(); err != nil {
		return err
	}
	defer e.dev.leave()
	return e.dev.api.err(e.dev.api.cuEventRecord(e.h, s.handle()), "cuEventRecord")
}

// Synchronize waits until the work before the recorded point completes.
func (e *Event) Synchronize() error {
	if err := e.dev.enter(); err != nil {
		return err
	}
	defer e.dev.leave()
	return e.dev.api.err(e.dev.api.cuEventSynchronize(e.h), "cuEventSynchronize")
}

// Query reports whether the recorded point has been reached, without
// waiting.
func (e *Event) Query() (bool, error) {
	if err := e.dev.enter(); err != nil {
		return false, err
	}
	defer e.dev.leave()
	switch r := e.dev.api.cuEventQuery(e.h); r {
	case 0:
		return true, nil
	case 600:
		return false, nil
	default:
		return false, e.dev.api.err(r, "cuEventQuery")
	}
}

// Destroy releases e.
func (e *Event) Destroy() error {
	if e == nil || e.h == 0 {
		return nil
	}
	if err := e.dev.enter(); err != nil {
		return err
	}
	defer e.dev.leave()
	err := e.dev.api.err(e.dev.api.cuEventDestroy(e.h), "cuEventDestroy_v2")
	e.h = 0
	return err
}

// ElapsedMs returns the GPU time between two recorded, completed timing
// events, in milliseconds (resolution about 0.5 µs).
func ElapsedMs(start, end *Event) (float32, error) {
	if !start.timing || !end.timing {
		return 0, fmt.Errorf("cuda: ElapsedMs: both events need timing (NewEvent(true))")
	}
	d := start.dev
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.leave()
	var ms float32
	if r := d.api.cuEventElapsedTime(&ms, start.h, end.h); r != 0 {
		name := d.api.symbols["cuEventElapsedTime_v2"]
		if name == "" {
			name = "cuEventElapsedTime"
		}
		return 0, d.api.err(r, "%s", name)
	}
	return ms, nil
}

// Module is loaded GPU code: PTX, JIT-compiled by the driver for this GPU.
type Module struct {
	dev *Device
	h   uintptr
}

// CUjit_option values for capturing the JIT's error log.
const (
	jitErrorLogBuffer          = 5
	jitErrorLogBufferSizeBytes = 6
)

// LoadPTX loads PTX text (from Compile) into the device's context. A JIT
// failure comes back with the JIT's own log in the error, which names the
// PTX line; CUDA_ERROR_UNSUPPORTED_PTX_VERSION means NVRTC is newer than
// the driver.
func (d *Device) LoadPTX(ptx string) (*Module, error) {
	return d.loadImage(cBytes(ptx), "PTX", ptx)
}

// LoadCUBIN loads machine code (from CompileCUBIN) into the device's
// context. CUDA_ERROR_NO_BINARY_FOR_GPU means it was made for another
// architecture.
func (d *Device) LoadCUBIN(cubin []byte) (*Module, error) {
	if len(cubin) == 0 {
		return nil, errors.New("cuda: LoadCUBIN of an empty image")
	}
	return d.loadImage(cubin, "CUBIN", "")
}

// loadImage loads a module image, what it is ("PTX", "CUBIN") naming it in
// errors; ptx is the PTX text for the hint an unsupported version gets.
func (d *Device) loadImage(image []byte, what, ptx string) (*Module, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	logBuf := make([]byte, 8192)
	var pin runtime.Pinner
	pin.Pin(&logBuf[0])
	pin.Pin(&image[0])
	defer pin.Unpin()
	opts := []int32{jitErrorLogBuffer, jitErrorLogBufferSizeBytes}
	// Option values are void*: the buffer's address, and the size cast to
	// a pointer, which the driver overwrites with the length written.
	vals := []uintptr{uintptr(unsafe.Pointer(&logBuf[0])), uintptr(len(logBuf))}
	m := &Module{dev: d}
	r := d.api.cuModuleLoadDataEx(&m.h, unsafe.Pointer(&image[0]), uint32(len(opts)), &opts[0], &vals[0])
	if r != 0 {
		e := d.api.err(r, "cuModuleLoadDataEx(%d bytes of %s)", len(image), what).(*Error)
		e.Detail = strings.TrimSpace(goString(&logBuf[0]))
		if r == cuErrorUnsupportedPTXVersion && what == "PTX" {
			nv := ""
			// Only an NVRTC already loaded: a search from this error
			// path (hand-written PTX) would be a side effect.
			if nvrtcLoaded.Load() {
				if a, err := nvrtc(); err == nil {
					nv = fmt.Sprintf("%d.%d", a.major, a.minor)
				}
			}
			e.Detail = strings.TrimSpace(e.Detail + " " + ptxVersionHint(ptx, nv, d.api.driverVersion))
		}
		return nil, e
	}
	return m, nil
}

// cuErrorUnsupportedPTXVersion is CUDA_ERROR_UNSUPPORTED_PTX_VERSION.
const cuErrorUnsupportedPTXVersion = 222

// ptxVersionHint explains CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the PTX's
// ISA version (its ".version" line) is newer than the driver's JIT knows,
// because NVRTC is newer than the driver. nvrtcVersion is "" if unknown.
func ptxVersionHint(ptx, nvrtcVersion string, driverVersion int) string {
	isa := "?"
	for _, line := range strings.SplitN(ptx, "\n", 64) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == ".version" {
			isa = f[1]
			break
		}
	}
	from := "NVRTC"
	if nvrtcVersion != "" {
		from += " " + nvrtcVersion
	}
	return fmt.Sprintf("PTX ISA %s from %s; the driver supports CUDA %s: use an NVRTC no newer than the driver (ALEXNET_CUDA_LIB names its folder) or update the driver",
		isa, from, VersionString(driverVersion))
}

// Function looks up a kernel by its (extern "C") name.
func (m *Module) Function(name string) (*Function, error) {
	if err := m.dev.enter(); err != nil {
		return nil, err
	}
	defer m.dev.leave()
	f := &Function{mod: m, Name: name}
	if r := m.dev.api.cuModuleGetFunction(&f.h, m.h, name); r != 0 {
		return nil, m.dev.api.err(r, "cuModuleGetFunction(%q)", name)
	}
	return f, nil
}

// Unload frees the module; its Functions become invalid.
func (m *Module) Unload() error {
	if m == nil || m.h == 0 {
		return nil
	}
	if err := m.dev.enter(); err != nil {
		return err
	}
	defer m.dev.leave()
	err := m.dev.api.err(m.dev.api.cuModuleUnload(m.h), "cuModuleUnload")
	m.h = 0
	return err
}

// Function is a kernel in a loaded Module.
type Function struct {
	mod  *Module
	h    uintptr
	Name string
}

// Launch queues the kernel on s (nil: legacy default stream) with the
// given grid and block shape and dynamic shared memory. args are the
// kernel's parameters in order, each one of DevicePtr, Buffer (its Ptr),
// int32, uint32, int64, uint64, uintptr, float32 or float64, matching the
// C parameter's type and size exactly: a Go int is refused because C's
// int is 32 bits and a silent mismatch shifts every later argument.
func (f *Function) Launch(grid, block [3]uint32, sharedMem uint32, s *Stream, args ...any) error {
	if err := s.live(); err != nil {
		return fmt.Errorf("cuda: launch %s: %w", f.Name, err)
	}
	if err := checkLaunchDims(grid, block); err != nil {
		return fmt.Errorf("cuda: launch %s: %w", f.Name, err)
	}
	// One Go block: the argument values, then the void* table pointing at
	// them. Both are uint64 to the garbage collector, so the table is not
	// "Go memory holding Go pointers"; pinning the block is what keeps
	// those addresses valid while cuLaunchKernel reads them (it copies the
	// values before it returns, so the pin ends with the call).
	n := len(args)
	block64 := make([]uint64, 2*n+1)
	if err := packArgs(block64[:n], args); err != nil {
		return fmt.Errorf("cuda: launch %s: %w", f.Name, err)
	}
	var pin runtime.Pinner
	pin.Pin(&block64[0])
	defer pin.Unpin()
	for i := range n {
		block64[n+i] = uint64(uintptr(unsafe.Pointer(&block64[i])))
	}
	var params unsafe.Pointer
	if n > 0 {
		params = unsafe.Pointer(&block64[n])
	}
	d := f.mod.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	r := d.api.cuLaunchKernel(f.h, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedMem, s.handle(), params, nil)
	if r != 0 {
		return d.api.err(r, "cuLaunchKernel(%s, grid %v, block %v, shmem %d)", f.Name, grid, block, sharedMem)
	}
	return nil
}
