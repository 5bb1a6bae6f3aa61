package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	native "github.com/alexnet-repro/alexnet/internal/dl"
)

// NotFoundError says a shared library could not be opened anywhere, and
// lists every place tried with the reason it failed there.
type NotFoundError struct {
	Lib    string   // the library wanted, "libcuda.so.1"
	Family string   // what it is, "cuBLAS"; "" reads as Lib
	Tried  []string // "place: why it failed", in search order
}

func (e *NotFoundError) Error() string {
	what := e.Lib + " not found"
	if e.Unusable() != "" {
		// Not the preferred soname: it may be the very one refused.
		fam := e.Family
		if fam == "" {
			fam = e.Lib
		}
		what = "no usable " + fam + " found"
	}
	return fmt.Sprintf("cuda: %s (set ALEXNET_CUDA_LIB to its directory); tried:\n  %s",
		what, strings.Join(e.Tried, "\n  "))
}

// Unusable is the first place where the library opened but was refused
// (too old, or built for a newer CUDA than the driver's), or "".
func (e *NotFoundError) Unusable() string {
	for _, t := range e.Tried {
		if strings.Contains(t, ": unusable: ") {
			return t
		}
	}
	return ""
}

// libSpec describes one library family: the sonames to try, newest first,
// and what must be opened from the same directory before it.
type libSpec struct {
	family  string   // for messages: "cuBLAS"
	name    string   // for messages: the preferred soname
	sonames []string // tried in this order in every directory
	// sonameFirst: search every folder for one soname before any folder
	// for the next, so that libcuda.so.1 anywhere wins over a bare
	// libcuda.so (a development symlink, or a stub) in an earlier folder.
	sonameFirst bool
	// pip: also look in Python site-packages nvidia/*/lib folders, where
	// NVIDIA's wheels put cuBLAS, cuDNN and NVRTC (nvidia/cu13/lib for the
	// CUDA 13 wheels, nvidia/<component>/lib for CUDA 12 and cuDNN).
	pip bool
	// companions lists files in dir to open before dir/soname. When a
	// library is opened by absolute path from a folder the loader does not
	// search, its own dlopen-by-soname of sibling libraries (cuBLASLt for
	// cuBLAS, nvrtc-builtins for NVRTC, cuDNN 9's sub-libraries) would
	// fail; glibc satisfies those lookups from already-loaded objects with
	// the same soname, so opening them first, by path, makes them work.
	companions func(dir, soname string) []string
}

var (
	specDriver = libSpec{
		family: "CUDA driver",
		name:   "libcuda.so.1",
		// Never the toolkit's stubs/libcuda.so: it loads and then fails
		// every call with CUDA_ERROR_STUB_LIBRARY.
		sonames:     []string{"libcuda.so.1", "libcuda.so"},
		sonameFirst: true,
	}
	specCUBLAS = libSpec{
		family:     "cuBLAS",
		name:       "libcublas.so.13",
		sonames:    []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"},
		pip:        true,
		companions: cublasCompanions,
	}
	specNVRTC = libSpec{
		family:     "NVRTC",
		name:       "libnvrtc.so.13",
		sonames:    []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"},
		pip:        true,
		companions: nvrtcCompanions,
	}
	specCUDNN = libSpec{
		family:     "cuDNN",
		name:       "libcudnn.so.9",
		sonames:    []string{"libcudnn.so.9"},
		pip:        true,
		companions: cudnnCompanions,
	}
)

// sonameSuffix returns what follows ".so" in a soname: "13" for
// libcublas.so.13, "" for libcublas.so.
func sonameSuffix(soname string) string {
	_, after, _ := strings.Cut(soname, ".so")
	return strings.TrimPrefix(after, ".")
}

// cublasCompanions: cuBLAS needs cuBLASLt of the same major version.
func cublasCompanions(dir, soname string) []string {
	lt := "libcublasLt.so"
	if v := sonameSuffix(soname); v != "" {
		lt += "." + v
	}
	return existing(filepath.Join(dir, lt))
}

// nvrtcCompanions: NVRTC dlopens libnvrtc-builtins.so.<major>.<minor> when
// it compiles; the exact minor is unknown (CUDA 11's libnvrtc.so.11.2 goes
// with libnvrtc-builtins.so.11.8), so take whatever has the same major.
func nvrtcCompanions(dir, soname string) []string {
	pats := []string{"libnvrtc-builtins.so*"}
	if v := sonameSuffix(soname); v != "" {
		major, _, _ := strings.Cut(v, ".")
		pats = []string{"libnvrtc-builtins.so." + major, "libnvrtc-builtins.so." + major + ".*"}
	}
	var m []string
	for _, p := range pats {
		g, _ := filepath.Glob(filepath.Join(dir, p))
		m = append(m, g...)
	}
	slices.Sort(m)
	return m
}

// cudnnSubLibraries is cuDNN 9's split, in dependency order: graph is
// needed by all, ops by cnn, and adv by nothing we use (it is loaded so
// the shim finds it if it asks).
var cudnnSubLibraries = []string{
	"libcudnn_graph.so.9",
	"libcudnn_engines_precompiled.so.9",
	"libcudnn_engines_runtime_compiled.so.9",
	"libcudnn_heuristic.so.9",
	"libcudnn_ops.so.9",
	"libcudnn_cnn.so.9",
	"libcudnn_adv.so.9",
}

// cudnnCompanions: libcudnn.so.9 is a thin shim that dlopens its
// sub-libraries by soname on first use. Known ones go first in dependency
// order, then any others a newer cuDNN ships.
func cudnnCompanions(dir, _ string) []string {
	var out []string
	for _, n := range cudnnSubLibraries {
		out = append(out, existing(filepath.Join(dir, n))...)
	}
	more, _ := filepath.Glob(filepath.Join(dir, "libcudnn_*.so.9"))
	slices.Sort(more)
	for _, m := range more {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func existing(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// searchDir is one place to look. An empty path means the system loader:
// dlopen of the bare soname, which honours LD_LIBRARY_PATH, the
// executable's RUNPATH, ld.so.cache and the default directories.
type searchDir struct {
	path   string
	origin string // why it is searched: "ALEXNET_CUDA_LIB", "CUDA_HOME", ...
}

// searchEnv is what the search reads from the process, so tests can give
// it fake trees: getenv for the variables, root as a prefix for the fixed
// system paths ("" in production).
type searchEnv struct {
	getenv func(string) string
	root   string
	home   string
	cwd    string
}

func processEnv() searchEnv {
	home, _ := os.UserHomeDir()
	cwd, _ := os.Getwd()
	return searchEnv{getenv: os.Getenv, home: home, cwd: cwd}
}

// multiarchDir is Debian's per-architecture library folder.
func multiarchDir() string {
	if runtime.GOARCH == "arm64" {
		return "/usr/lib/aarch64-linux-gnu"
	}
	return "/usr/lib/x86_64-linux-gnu"
}

// dirs lists the places to search for spec, in order, without duplicates:
// the user's explicit choice first, then what the loader would do anyway,
// then the places CUDA installs usually live.
func (e searchEnv) dirs(spec libSpec) []searchDir {
	var out []searchDir
	seen := map[string]bool{}
	add := func(path, origin string) {
		if path != "" {
			path = filepath.Clean(path)
		}
		if seen[path] {
			return
		}
		seen[path] = true
		out = append(out, searchDir{path: path, origin: origin})
	}
	for _, p := range filepath.SplitList(e.getenv("ALEXNET_CUDA_LIB")) {
		if p != "" {
			add(p, "ALEXNET_CUDA_LIB")
		}
	}
	for _, p := range filepath.SplitList(e.getenv("LD_LIBRARY_PATH")) {
		if p != "" {
			add(p, "LD_LIBRARY_PATH")
		}
	}
	add("", "system loader")
	for _, v := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if p := e.getenv(v); p != "" {
			add(filepath.Join(p, "lib64"), v)
		}
	}
	for _, p := range []string{
		"/usr/local/cuda/lib64",
		multiarchDir(),
		"/usr/lib64",
		"/usr/local/nvidia/lib64", // where container runtimes mount the driver
		"/usr/lib/wsl/lib",        // the driver under WSL2
	} {
		add(e.root+p, "system")
	}
	if spec.pip {
		for _, d := range e.pythonLibDirs() {
			add(d, "python")
		}
	}
	return out
}

// siteRoots returns the glob patterns of Python package directories that
// may hold NVIDIA's wheels. Running python to ask (site.getsitepackages)
// would be exact but costs a subprocess and fails where there is none.
func (e searchEnv) siteRoots() []string {
	var pats []string
	for _, v := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := e.getenv(v); p != "" {
			pats = append(pats, filepath.Join(p, "lib/python3*/site-packages"))
		}
	}
	for _, p := range filepath.SplitList(e.getenv("PYTHONPATH")) {
		if p != "" {
			pats = append(pats, p)
		}
	}
	if e.cwd != "" {
		// A project-local environment, as uv and "python -m venv .venv"
		// make, found without activating it.
		pats = append(pats,
			filepath.Join(e.cwd, ".venv/lib/python3*/site-packages"),
			filepath.Join(e.cwd, "venv/lib/python3*/site-packages"))
	}
	if e.home != "" {
		pats = append(pats,
			filepath.Join(e.home, ".local/lib/python3*/site-packages"),
			filepath.Join(e.home, ".venv/lib/python3*/site-packages"))
	}
	for _, p := range []string{
		"/usr/local/lib/python3*/dist-packages",
		"/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3/dist-packages",
		"/usr/lib/python3*/site-packages",
		"/usr/lib/python3*/dist-packages",
		"/opt/conda/lib/python3*/site-packages",
		"/opt/*/lib/python3*/site-packages", // venvs in images: /opt/venv, /opt/pytorch
	} {
		pats = append(pats, e.root+p)
	}
	return pats
}

// pythonLibDirs expands siteRoots to the nvidia/*/lib folders that exist.
// Within one site directory the order is lexical, so nvidia/cu13/lib (the
// CUDA 13 wheels) comes before nvidia/cublas/lib (CUDA 12's).
func (e searchEnv) pythonLibDirs() []string {
	var out []string
	for _, pat := range e.siteRoots() {
		sites, _ := filepath.Glob(pat)
		slices.Sort(sites)
		for _, s := range sites {
			libs, _ := filepath.Glob(filepath.Join(s, "nvidia/*/lib"))
			slices.Sort(libs)
			out = append(out, libs...)
		}
	}
	return out
}

// loader opens and closes shared libraries: dlopen and dlclose in
// production, a fake in tests.
type loader interface {
	open(path string) (uintptr, error)
	close(handle uintptr) error
	// resident lists which of files (paths as opened) are still mapped
	// into the process.
	resident(files []string) []string
}

type dl struct{}

func (dl) open(path string) (uintptr, error) {
	// Global, so that libraries opened here satisfy the soname lookups of
	// those opened later (cuBLASLt for cuBLAS, sub-libraries for cuDNN).
	return native.Open(path, true)
}

func (dl) close(h uintptr) error { return native.Close(h) }

// resident reads /proc/self/maps. A file opened by a bare soname is
// looked up by its stem, as mappedPath does; one opened by path is
// matched by the file it resolves to, as the kernel names mappings.
func (dl) resident(files []string) []string {
	mapped := map[string]bool{}
	for _, p := range mappedFiles() {
		mapped[p] = true
	}
	var out []string
	for _, f := range files {
		if !filepath.IsAbs(f) {
			if mappedPath(f) != "" {
				out = append(out, f)
			}
			continue
		}
		if r, err := filepath.EvalSymlinks(f); err == nil && mapped[r] || mapped[f] {
			out = append(out, f)
		}
	}
	return out
}

// acceptFunc vets a library that opened: it binds what the package needs
// and checks its version against the driver. An error makes the search
// close it and go on to the next place, as for a file that did not open,
// so an old or mismatched copy early in the path does not hide a good one
// later. nil accepts anything.
type acceptFunc func(path string, handle uintptr) error

// located is the outcome of a search.
type located struct {
	path      string   // what was opened: an absolute path or a bare soname
	handle    uintptr  // dlopen handle
	preloaded []string // companions opened first
	tried     []string // every failure before success, with reasons
	skipped   []string // the libraries that opened but were refused, with reasons
}

// ResidentError stops a search: a refused library, or a sibling opened
// for it, is still loaded after dlclose (a library may refuse to unload,
// or another may hold it). Every library here is opened RTLD_GLOBAL, and
// the loader answers a later lookup of the same soname with the copy
// already loaded, so going on could mix the refused build into the one
// taken, which fails later with errors that do not say why.
type ResidentError struct {
	Lib      string
	Refused  string   // the candidate refused, and why
	Resident []string // what stayed loaded
}

func (e *ResidentError) Error() string {
	return fmt.Sprintf("cuda: %s was refused (%s) but %s stayed loaded, so no other copy can be used safely in this process: set ALEXNET_CUDA_LIB to the folder of a usable one",
		e.Lib, e.Refused, strings.Join(e.Resident, ", "))
}

// isStubDir reports a CUDA toolkit's stubs folder (lib64/stubs): its
// libcuda.so and friends exist for linking, load, and fail every call
// (CUDA_ERROR_STUB_LIBRARY), so a build environment's LD_LIBRARY_PATH
// pointing there must not shadow the real driver.
func isStubDir(dir string) bool { return filepath.Base(dir) == "stubs" }

// locate walks dirs in order and, in each, the sonames in order, and
// returns the first that opens and that accept takes. With
// spec.sonameFirst the sonames are the outer loop instead: every folder is
// searched for the first soname before any for the next. Directories that
// do not exist and files that are absent cost one stat and are listed as
// such, so the error explains the whole search. A candidate that fails is
// closed with the companions opened for it, so nothing from a rejected
// folder stays loaded to satisfy a later library's lookups.
func locate(spec libSpec, dirs []searchDir, ld loader, accept acceptFunc) (located, error) {
	var res located
	pipSeen := false
	passes := [][]string{spec.sonames}
	if spec.sonameFirst {
		passes = passes[:0]
		for _, so := range spec.sonames {
			passes = append(passes, []string{so})
		}
	}
	noted := map[string]bool{} // folders already reported missing or skipped
	note := func(key, msg string) {
		if !noted[key] {
			noted[key] = true
			res.tried = append(res.tried, msg)
		}
	}
	// vet runs accept on a candidate that opened; on a refusal it closes
	// it and the companions opened for it, and fails the whole search
	// (a *ResidentError) if any of them is still loaded.
	vet := func(path string, h uintptr, pre []openedLib) (err, stop error) {
		if accept == nil {
			return nil, nil
		}
		aerr := accept(path, h)
		if aerr == nil {
			return nil, nil
		}
		files := []string{path}
		if !filepath.IsAbs(path) {
			// The loader chose the file: name it while it is mapped.
			if m := mappedPath(path); m != "" {
				files[0] = m
			}
		}
		ld.close(h)
		closeAll(ld, pre)
		for _, c := range pre {
			files = append(files, c.path)
		}
		err = fmt.Errorf("unusable: %w", aerr)
		res.skipped = append(res.skipped, fmt.Sprintf("%s: %v", path, err))
		if left := ld.resident(files); len(left) > 0 {
			return err, &ResidentError{Lib: spec.family, Refused: fmt.Sprintf("%s: %v", path, aerr), Resident: left}
		}
		return err, nil
	}
	for _, sonames := range passes {
		for _, d := range dirs {
			if d.path == "" {
				for _, so := range sonames {
					h, err := ld.open(so)
					if err == nil {
						var stop error
						if err, stop = vet(so, h, nil); stop != nil {
							return res, stop
						}
						if err == nil {
							res.path, res.handle = so, h
							return res, nil
						}
					}
					res.tried = append(res.tried, fmt.Sprintf("%s via %s: %v", so, d.origin, err))
				}
				continue
			}
			if d.origin == "python" {
				pipSeen = true
			}
			if isStubDir(d.path) {
				note(d.path, fmt.Sprintf("%s (%s): a CUDA toolkit's link-time stubs, skipped", d.path, d.origin))
				continue
			}
			if fi, err := os.Stat(d.path); err != nil || !fi.IsDir() {
				note(d.path, fmt.Sprintf("%s (%s): no such directory", d.path, d.origin))
				continue
			}
			for _, so := range sonames {
				p := filepath.Join(d.path, so)
				if _, err := os.Stat(p); err != nil {
					res.tried = append(res.tried, fmt.Sprintf("%s (%s): no such file", p, d.origin))
					continue
				}
				var pre []openedLib
				if spec.companions != nil {
					pre = openCompanions(spec.companions(d.path, so), ld, &res.tried)
				}
				h, err := ld.open(p)
				if err != nil {
					closeAll(ld, pre)
				} else {
					var stop error
					if err, stop = vet(p, h, pre); stop != nil {
						return res, stop
					}
					if err == nil {
						res.path, res.handle = p, h
						for _, c := range pre {
							res.preloaded = append(res.preloaded, c.path)
						}
						return res, nil
					}
				}
				res.tried = append(res.tried, fmt.Sprintf("%s (%s): %v", p, d.origin, err))
			}
		}
	}
	if spec.pip && !pipSeen {
		res.tried = append(res.tried, "python site-packages: no nvidia/*/lib folder found (VIRTUAL_ENV, CONDA_PREFIX, PYTHONPATH, ./.venv, ./venv, ~/.local, ~/.venv, /usr/lib/python3*, /usr/local/lib/python3*, /opt/conda, /opt/*)")
	}
	return res, &NotFoundError{Lib: spec.name, Family: spec.family, Tried: res.tried}
}

// openedLib is a companion the search opened, to close if its main
// library is not taken.
type openedLib struct {
	path   string
	handle uintptr
}

// closeAll closes libraries in the reverse of the order they were opened,
// so none is closed while one opened after it may still refer to it.
func closeAll(ld loader, libs []openedLib) {
	for i := len(libs) - 1; i >= 0; i-- {
		ld.close(libs[i].handle)
	}
}

// openCompanions opens paths, retrying those that fail until a pass makes
// no progress, since a sub-library may need one listed after it. Failures
// are noted, not fatal: the main library may not need that companion.
func openCompanions(paths []string, ld loader, tried *[]string) []openedLib {
	var done []openedLib
	pending := paths
	errs := map[string]error{}
	for len(pending) > 0 {
		var next []string
		for _, p := range pending {
			h, err := ld.open(p)
			if err != nil {
				errs[p] = err
				next = append(next, p)
				continue
			}
			done = append(done, openedLib{p, h})
		}
		if len(next) == len(pending) {
			for _, p := range next {
				*tried = append(*tried, fmt.Sprintf("%s (companion, not fatal): %v", p, errs[p]))
			}
			break
		}
		pending = next
	}
	return done
}

// loadedLib is a library this process has searched for, once.
type loadedLib struct {
	spec libSpec
	once sync.Once
	res  located
	err  error
}

var (
	libDriver = &loadedLib{spec: specDriver}
	libCUBLAS = &loadedLib{spec: specCUBLAS}
	libNVRTC  = &loadedLib{spec: specNVRTC}
	libCUDNN  = &loadedLib{spec: specCUDNN}
)

// load searches for l once per process; accept vets each candidate (it is
// used only by the first call).
func (l *loadedLib) load(accept acceptFunc) (located, error) {
	l.once.Do(func() {
		l.res, l.err = locate(l.spec, processEnv().dirs(l.spec), dl{}, accept)
	})
	return l.res, l.err
}

// driverCUDA is the CUDA version the loaded driver supports (13000 for
// 13.0), or 0 when no driver answered: a library's version is then not
// held against it, as nothing will run anyway and the driver's own error
// says why.
func driverCUDA() int {
	a, _ := driver()
	if a == nil {
		return 0
	}
	return a.driverVersion
}

// checkCUDAMajor refuses a library built for a newer CUDA major than the
// driver runs. CUDA's minor-version compatibility lets a 13.x library run
// on any 13 driver, never on a 12 one, where it would fail on first use
// with an error that does not name the mismatch.
func checkCUDAMajor(lib string, libMajor, driverVersion int) error {
	if driverVersion <= 0 || libMajor <= driverVersion/1000 {
		return nil
	}
	return fmt.Errorf("%s is built for CUDA %d, and the driver supports CUDA %s: use libraries for CUDA %d (ALEXNET_CUDA_LIB names their folder) or a newer driver",
		lib, libMajor, VersionString(driverVersion), driverVersion/1000)
}

// checkNVRTCVersion refuses an NVRTC the driver cannot take kernels from.
// The PTX NVRTC writes declares its release's ISA version (CUDA 13.1
// writes 9.1), and a driver's JIT loads no PTX newer than its own release
// (CUDA_ERROR_UNSUPPORTED_PTX_VERSION), whatever the code uses. Machine
// code (CUBIN) needs no JIT and, as cuBLAS's and cuDNN's does, runs on an
// older driver of the same major; so with cubin (nvrtcGetCUBIN bound) a
// newer minor is taken, and Device.CompileModule makes CUBINs. A newer
// major is refused either way.
func checkNVRTCVersion(major, minor, driverVersion int, cubin bool) error {
	if driverVersion <= 0 || major*1000+minor*10 <= driverVersion {
		return nil
	}
	if cubin && major == driverVersion/1000 {
		return nil
	}
	if major > driverVersion/1000 {
		return fmt.Errorf("NVRTC %d.%d is for CUDA %d, and the driver supports CUDA %s: use an NVRTC of CUDA %d (a toolkit's, in /usr/local/cuda/lib64; ALEXNET_CUDA_LIB names its folder) or a newer driver",
			major, minor, major, VersionString(driverVersion), driverVersion/1000)
	}
	return fmt.Errorf("NVRTC %d.%d writes PTX that the driver, which supports CUDA %s, cannot load, and cannot write machine code (no nvrtcGetCUBIN): use an NVRTC no newer than %s (a toolkit's, in /usr/local/cuda/lib64; ALEXNET_CUDA_LIB names its folder) or a newer driver",
		major, minor, VersionString(driverVersion), VersionString(driverVersion))
}

// loadedPath is where l was found, resolved through /proc/self/maps when
// the system loader chose; "" if it is not loaded.
func loadedPath(l *loadedLib) string {
	if l.res.handle == 0 {
		return ""
	}
	if filepath.IsAbs(l.res.path) {
		return l.res.path
	}
	if p := mappedPath(l.res.path); p != "" {
		return l.res.path + " => " + p
	}
	return l.res.path
}

// mappedPath finds the file the loader chose for a bare soname by reading
// /proc/self/maps (there is no dladdr without cgo). libcuda.so.1 is
// usually a symlink to libcuda.so.<driver version>, so it matches the
// soname's stem.
func mappedPath(soname string) string {
	stem, _, _ := strings.Cut(soname, ".so")
	stem += ".so"
	for _, p := range mappedFiles() {
		base := filepath.Base(p)
		if base == stem || strings.HasPrefix(base, stem+".") {
			return p
		}
	}
	return ""
}

// mappedFiles lists the files mapped into this process, as the kernel
// names them in /proc/self/maps (resolved, absolute), in map order; nil
// where there is no /proc.
func mappedFiles() []string {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '/'); i >= 0 {
			out = append(out, line[i:])
		}
	}
	return out
}
