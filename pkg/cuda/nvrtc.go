package cuda

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// nvrtcAPI holds libnvrtc's functions (nvrtc.h). NVRTC needs no GPU and
// no context: it turns CUDA C++ into PTX on the host, so it is safe to
// call from any goroutine, one program per call.
type nvrtcAPI struct {
	version           func(major, minor *int32) int32
	createProgram     func(prog *uintptr, src *byte, name *byte, numHeaders int32, headers, includeNames unsafe.Pointer) int32
	compileProgram    func(prog uintptr, numOptions int32, options unsafe.Pointer) int32
	getPTXSize        func(prog uintptr, size *uintptr) int32
	getPTX            func(prog uintptr, buf *byte) int32
	getProgramLogSize func(prog uintptr, size *uintptr) int32
	getProgramLog     func(prog uintptr, buf *byte) int32
	destroyProgram    func(prog *uintptr) int32
	getErrorString    func(r int32) string
	getNumArchs       func(n *int32) int32
	getArchs          func(archs *int32) int32
	// CUBIN (nvrtcGetCUBIN, CUDA 11.1 on) is machine code for one real
	// architecture; nil where this NVRTC lacks it.
	getCUBINSize func(prog uintptr, size *uintptr) int32
	getCUBIN     func(prog uintptr, buf *byte) int32

	path         string
	major, minor int
	archs        []int // compute capabilities NVRTC can target, 75 = 7.5
}

var (
	nvrtcOnce sync.Once
	nvrtcLib  *nvrtcAPI
	nvrtcErr  error
)

// nvrtcLoaded is set once the search for NVRTC has run.
var nvrtcLoaded atomic.Bool

func nvrtc() (*nvrtcAPI, error) {
	nvrtcOnce.Do(func() {
		nvrtcLib, nvrtcErr = loadNVRTC()
		nvrtcLoaded.Store(true)
	})
	return nvrtcLib, nvrtcErr
}

func loadNVRTC() (*nvrtcAPI, error) {
	var a *nvrtcAPI
	_, err := libNVRTC.load(func(path string, h uintptr) error {
		c := &nvrtcAPI{}
		if _, err := bindSyms(path, h, nvrtcSyms(c)); err != nil {
			return err
		}
		var maj, mnr int32
		if r := c.version(&maj, &mnr); r != 0 {
			return c.err(r, "nvrtcVersion")
		}
		c.major, c.minor = int(maj), int(mnr)
		// Its PTX carries the ISA version of its own CUDA release, which
		// an older driver's JIT refuses, minor releases included; its
		// CUBIN needs no JIT, and loads on any driver of the same major
		// (CUDA's minor version compatibility). The search goes on past
		// an NVRTC the driver can take neither way (to a toolkit's beside
		// newer pip wheels, say).
		if err := checkNVRTCVersion(c.major, c.minor, driverCUDA(), c.getCUBIN != nil && c.getCUBINSize != nil); err != nil {
			return err
		}
		a = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.path = loadedPath(libNVRTC)
	if a.getNumArchs != nil && a.getArchs != nil {
		var n int32
		if a.getNumArchs(&n) == 0 && n > 0 && n < 1024 {
			archs := make([]int32, n)
			if a.getArchs(&archs[0]) == 0 {
				for _, x := range archs {
					a.archs = append(a.archs, int(x))
				}
			}
		}
	}
	return a, nil
}

func nvrtcSyms(a *nvrtcAPI) []sym {
	return []sym{
		{fptr: &a.version, names: []string{"nvrtcVersion"}},
		{fptr: &a.createProgram, names: []string{"nvrtcCreateProgram"}},
		{fptr: &a.compileProgram, names: []string{"nvrtcCompileProgram"}},
		{fptr: &a.getPTXSize, names: []string{"nvrtcGetPTXSize"}},
		{fptr: &a.getPTX, names: []string{"nvrtcGetPTX"}},
		{fptr: &a.getProgramLogSize, names: []string{"nvrtcGetProgramLogSize"}},
		{fptr: &a.getProgramLog, names: []string{"nvrtcGetProgramLog"}},
		{fptr: &a.destroyProgram, names: []string{"nvrtcDestroyProgram"}},
		{fptr: &a.getErrorString, names: []string{"nvrtcGetErrorString"}},
		{fptr: &a.getNumArchs, names: []string{"nvrtcGetNumSupportedArchs"}, optional: true},
		{fptr: &a.getArchs, names: []string{"nvrtcGetSupportedArchs"}, optional: true},
		{fptr: &a.getCUBINSize, names: []string{"nvrtcGetCUBINSize"}, optional: true},
		{fptr: &a.getCUBIN, names: []string{"nvrtcGetCUBIN"}, optional: true},
	}
}

func (a *nvrtcAPI) err(r int32, format string, args ...any) error {
	if r == 0 {
		return nil
	}
	var desc string
	if a != nil && a.getErrorString != nil {
		desc = a.getErrorString(r)
	}
	return newError(APINVRTC, int(r), desc, "", format, args...)
}

// NVRTCVersion returns the loaded NVRTC's version, 13.0 for CUDA 13.0.
func NVRTCVersion() (major, minor int, err error) {
	a, err := nvrtc()
	if err != nil {
		return 0, 0, err
	}
	return a.major, a.minor, nil
}

// CompileError is a CUDA C++ program NVRTC refused. Log is the compiler's
// output, with file:line positions relative to the name given to Compile.
type CompileError struct {
	Name string
	Log  string
	Err  error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("%v\n--- %s ---\n%s", e.Err, e.Name, strings.TrimSpace(e.Log))
}

func (e *CompileError) Unwrap() error { return e.Err }

// Compile turns CUDA C++ source into PTX with NVRTC. name labels the
// program in diagnostics ("normalize.cu"); opts are nvrtc options, such as
// "--gpu-architecture=compute_90" (see Arch) or "-default-device". The
// compiler's log comes back even on success, since it holds warnings. A
// compilation failure is a *CompileError carrying the log.
func Compile(src, name string, opts []string) (ptx, log string, err error) {
	a, err := nvrtc()
	if err != nil {
		return "", "", err
	}
	out, log, err := a.compile(src, name, opts, false)
	return strings.TrimRight(string(out), "\x00"), log, err
}

// CompileCUBIN is Compile to machine code: opts must name a real
// architecture ("--gpu-architecture=sm_90", see CUBINArch). The driver
// loads a CUBIN without its JIT, so it runs where the driver is older than
// NVRTC within one CUDA major, which PTX does not.
func CompileCUBIN(src, name string, opts []string) (cubin []byte, log string, err error) {
	a, err := nvrtc()
	if err != nil {
		return nil, "", err
	}
	if a.getCUBIN == nil || a.getCUBINSize == nil {
		return nil, "", fmt.Errorf("cuda: NVRTC %d.%d at %s has no nvrtcGetCUBIN (CUDA 11.1 or newer has)", a.major, a.minor, a.path)
	}
	return a.compile(src, name, opts, true)
}

// compile runs NVRTC on src and returns its PTX (NUL-terminated, as NVRTC
// writes it) or, with cubin, its CUBIN.
func (a *nvrtcAPI) compile(src, name string, opts []string, cubin bool) (out []byte, log string, err error) {
	// NVRTC may keep the source and name beyond nvrtcCreateProgram, so
	// they live in buffers held until the program is destroyed.
	srcC, nameC := cBytes(src), cBytes(name)
	defer runtime.KeepAlive(srcC)
	defer runtime.KeepAlive(nameC)
	var prog uintptr
	if r := a.createProgram(&prog, &srcC[0], &nameC[0], 0, nil, nil); r != 0 {
		return nil, "", a.err(r, "nvrtcCreateProgram(%s)", name)
	}
	defer a.destroyProgram(&prog)

	var pin runtime.Pinner
	optPtrs := cStringArray(opts, &pin)
	var optArg unsafe.Pointer
	if len(optPtrs) > 0 {
		optArg = unsafe.Pointer(&optPtrs[0])
	}
	rc := a.compileProgram(prog, int32(len(opts)), optArg)
	pin.Unpin()

	var logSize uintptr
	if r := a.getProgramLogSize(prog, &logSize); r == 0 && logSize > 1 {
		buf := make([]byte, logSize)
		if a.getProgramLog(prog, &buf[0]) == 0 {
			log = strings.TrimRight(string(buf), "\x00")
		}
	}
	if rc != 0 {
		return nil, log, &CompileError{Name: name, Log: log, Err: a.err(rc, "nvrtcCompileProgram(%s, %q)", name, opts)}
	}
	getSize, get, what := a.getPTXSize, a.getPTX, "PTX"
	if cubin {
		getSize, get, what = a.getCUBINSize, a.getCUBIN, "CUBIN"
	}
	var size uintptr
	if r := getSize(prog, &size); r != 0 {
		return nil, log, a.err(r, "nvrtcGet%sSize(%s)", what, name)
	}
	if size == 0 {
		// NVRTC gives an empty CUBIN when opts named a virtual
		// architecture (compute_90): it only had PTX to make.
		return nil, log, fmt.Errorf("cuda: nvrtcGet%sSize(%s, %q): empty %s", what, name, opts, what)
	}
	buf := make([]byte, size)
	if r := get(prog, &buf[0]); r != 0 {
		return nil, log, a.err(r, "nvrtcGet%s(%s)", what, name)
	}
	return buf, log, nil
}

// SupportedArchs lists the compute capabilities the loaded NVRTC can
// target, as 75, 80, 90, ... (empty if this NVRTC cannot say).
func SupportedArchs() ([]int, error) {
	a, err := nvrtc()
	if err != nil {
		return nil, err
	}
	return append([]int(nil), a.archs...), nil
}

// Arch returns the virtual architecture to compile for d:
// "compute_<major><minor>", lowered to the newest NVRTC supports when the
// GPU is newer than the compiler (PTX for an older architecture runs on a
// newer GPU; the reverse does not load).
func Arch(d *Device) string {
	var archs []int
	if a, err := nvrtc(); err == nil {
		archs = a.archs
	}
	return archFor(d.ComputeCapability, archs)
}

func archFor(cc ComputeCapability, supported []int) string {
	want := cc.Major*10 + cc.Minor
	if len(supported) == 0 {
		return "compute_" + strconv.Itoa(want)
	}
	best := -1
	for _, s := range supported {
		if s <= want && s > best {
			best = s
		}
	}
	if best < 0 {
		// Older than everything NVRTC supports: ask for the GPU's own
		// and let NVRTC's error say so.
		best = want
	}
	return "compute_" + strconv.Itoa(best)
}

// CUBINArch returns the real architecture to compile d's machine code
// for, "sm_<major><minor>", and whether the loaded NVRTC can: it must list
// d's compute capability among its targets (an NVRTC older than the GPU
// does not, and PTX for an older architecture is then the way) and have
// nvrtcGetCUBIN.
func CUBINArch(d *Device) (string, bool) {
	a, err := nvrtc()
	if err != nil || a.getCUBIN == nil || a.getCUBINSize == nil {
		return "", false
	}
	return cubinArchFor(d.ComputeCapability, a.archs)
}

func cubinArchFor(cc ComputeCapability, supported []int) (string, bool) {
	want := cc.Major*10 + cc.Minor
	if !slices.Contains(supported, want) {
		return "", false
	}
	return "sm_" + strconv.Itoa(want), true
}

// PTXCache keeps compiled PTX (and CUBIN) on disk, one file per distinct (source,
// name, architecture, options, NVRTC version), so a training run does not
// pay NVRTC's start-up (tens to hundreds of milliseconds per kernel) again.
// Files are written atomically (temporary file, then rename), so
// concurrent processes and crashes never leave a torn entry.
type PTXCache struct {
	Dir string
}

// DefaultPTXCache returns the cache at $ALEXNET_PTX_CACHE if set, else
// $XDG_CACHE_HOME/alexnet/ptx, else ~/.cache/alexnet/ptx; nil when
// ALEXNET_PTX_CACHE=off, which compiles every time.
func DefaultPTXCache() *PTXCache {
	home, _ := os.UserHomeDir()
	dir, ok := ptxCacheDir(os.Getenv, home)
	if !ok {
		return nil
	}
	return &PTXCache{Dir: dir}
}

func ptxCacheDir(getenv func(string) string, home string) (string, bool) {
	switch v := getenv("ALEXNET_PTX_CACHE"); v {
	case "off", "0", "none":
		return "", false
	case "":
	default:
		return v, true
	}
	if x := getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "alexnet", "ptx"), true
	}
	if home == "" {
		return "", false
	}
	return filepath.Join(home, ".cache", "alexnet", "ptx"), true
}

// ptxCacheKey names a cache entry. Every input is length-prefixed so no
// two different inputs can concatenate to the same bytes, and the format
// is versioned so a change to this scheme orphans old entries instead of
// misreading them. Options are hashed in order: NVRTC honours the last of
// conflicting options.
func ptxCacheKey(src, name, arch string, opts []string, nvrtcVersion string) string {
	h := sha256.New()
	field := func(s string) {
		fmt.Fprintf(h, "%d:", len(s))
		h.Write([]byte(s))
	}
	field("alexnet-ptx-cache-v1")
	field(nvrtcVersion)
	field(arch)
	field(name)
	fmt.Fprintf(h, "%d:", len(opts))
	for _, o := range opts {
		field(o)
	}
	field(src)
	return hex.EncodeToString(h.Sum(nil))
}

// Compile returns the PTX for src compiled for arch ("compute_90"), from
// the cache if present, else by NVRTC, storing the result. hit says which.
// A nil cache compiles every time. A cache that cannot be written is not
// an error: the PTX is still returned.
func (c *PTXCache) Compile(src, name, arch string, opts []string) (ptx, log string, hit bool, err error) {
	out, log, hit, err := c.build(src, name, arch, opts, ".ptx", nil, func(all []string) ([]byte, string, error) {
		ptx, log, err := Compile(src, name, all)
		return []byte(ptx), log, err
	})
	return string(out), log, hit, err
}

// elfMagic starts every CUBIN: a cached file without it is not one (and
// is compiled again).
var elfMagic = []byte("\x7fELF")

// CompileCUBIN is Compile for machine code: arch is a real architecture
// ("sm_90", see CUBINArch), and the entry is the CUBIN NVRTC wrote.
func (c *PTXCache) CompileCUBIN(src, name, arch string, opts []string) (cubin []byte, log string, hit bool, err error) {
	return c.build(src, name, arch, opts, ".cubin", elfMagic, func(all []string) ([]byte, string, error) {
		return CompileCUBIN(src, name, all)
	})
}

// build returns the cached entry for (src, name, arch, opts) under ext if
// there is one starting with magic, else compiles it and stores it.
func (c *PTXCache) build(src, name, arch string, opts []string, ext string, magic []byte,
	compile func(all []string) ([]byte, string, error)) (out []byte, log string, hit bool, err error) {
	all := append([]string{"--gpu-architecture=" + arch}, opts...)
	if c == nil {
		out, log, err = compile(all)
		return out, log, false, err
	}
	major, minor, err := NVRTCVersion()
	if err != nil {
		return nil, "", false, err
	}
	key := ptxCacheKey(src, name, arch, opts, fmt.Sprintf("%d.%d", major, minor))
	path := filepath.Join(c.Dir, key+ext)
	if b, rerr := os.ReadFile(path); rerr == nil && len(b) > 0 && bytes.HasPrefix(b, magic) {
		return b, "", true, nil
	}
	out, log, err = compile(all)
	if err != nil {
		return nil, log, false, err
	}
	_ = writeFileAtomic(path, out)
	return out, log, false, nil
}

// writeFileAtomic writes data to path so that readers see either the old
// file or the whole new one.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file private; a cache is shared with the user's
	// other processes, nothing secret, so widen it as WriteFile would.
	_ = os.Chmod(f.Name(), 0o644)
	return os.Rename(f.Name(), path)
}

// CompileModule compiles src for this device (through DefaultPTXCache)
// and loads it: as machine code for the device's own architecture when
// NVRTC can make it (CUBINArch), as PyTorch's NVRTC kernels are, since
// the driver loads that without its JIT whatever NVRTC's minor release;
// else, or if the driver refuses the CUBIN, as PTX. A compilation error
// is the source's and is returned at once.
func (d *Device) CompileModule(src, name string, opts []string) (*Module, error) {
	cache := DefaultPTXCache()
	var cubinErr error
	arch, cubin := CUBINArch(d)
	if cubin {
		img, _, _, err := cache.CompileCUBIN(src, name, arch, opts)
		if err == nil {
			var m *Module
			if m, err = d.LoadCUBIN(img); err == nil {
				return m, nil
			}
		}
		if _, ok := errors.AsType[*CompileError](err); ok {
			return nil, err
		}
		cubinErr = err
	}
	ptx, _, _, err := cache.Compile(src, name, Arch(d), opts)
	var m *Module
	if err == nil {
		m, err = d.LoadPTX(ptx)
	}
	if err != nil && cubinErr != nil {
		return nil, fmt.Errorf("%w (as machine code for %s, before: %v)", err, arch, cubinErr)
	}
	return m, err
}
