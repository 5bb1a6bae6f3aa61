package imageio

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/alexnet-repro/alexnet/internal/dl"
	"github.com/ebitengine/purego"
)

// TurboJPEG 2.x constants (turbojpeg.h). The 2.x API is what Debian 12
// ships (2.1.5); the 3.x library still exports these functions.
const (
	tjpfRGB  = 0
	tjpfCMYK = 11

	tjcsCMYK = 3
	tjcsYCCK = 4

	tjerrWarning = 0

	// tjflagLimitScans makes libjpeg-turbo refuse progressive files with more
	// than 500 scans, which otherwise take minutes to decode (a known
	// denial-of-service shape in fuzzed input).
	tjflagLimitScans = 32768
)

// turboLibNames are tried in order, after $TURBOJPEG_LIB when it is set;
// the unversioned name exists only where the -dev package is installed.
var turboLibNames = libNames(runtime.GOOS)

// libNames is turboLibNames on goos. On macOS, dlopen finds a bare name in
// /usr/local/lib (Homebrew on Intel) but not in /opt/homebrew (Apple
// silicon) or MacPorts' /opt/local, which are named outright. (Untested
// here: no Mac.)
func libNames(goos string) []string {
	if goos == "darwin" {
		return []string{"libturbojpeg.dylib", "libturbojpeg.0.dylib",
			"/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.dylib", "/opt/homebrew/lib/libturbojpeg.dylib",
			"/usr/local/opt/jpeg-turbo/lib/libturbojpeg.dylib", "/opt/local/lib/libturbojpeg.dylib"}
	}
	return []string{"libturbojpeg.so.0", "libturbojpeg.so"}
}

type scalingFactor struct{ num, denom int32 }

// turboLib holds the resolved entry points. Function values are bound once
// per process; handles are per Decoder.
type turboLib struct {
	path              string
	initDecompress    func() uintptr
	decompressHeader3 func(h uintptr, buf unsafe.Pointer, size uint64, w, ht, subsamp, colorspace *int32) int32
	getScalingFactors func(n *int32) unsafe.Pointer
	decompress2       func(h uintptr, buf unsafe.Pointer, size uint64, dst unsafe.Pointer, w, pitch, ht, pf, flags int32) int32
	getErrorStr2      func(h uintptr) string
	getErrorCode      func(h uintptr) int32
	destroy           func(h uintptr) int32
	// downscales are the library's scaling factors with num < denom,
	// largest first (e.g. 7/8 ... 1/8).
	downscales []scalingFactor
}

var (
	turboOnce sync.Once
	turbo     *turboLib
	turboErr  error
)

// loadTurbo dlopens libturbojpeg once per process. A missing library or
// symbol is an ordinary error: the caller falls back to the stdlib decoder.
func loadTurbo() (*turboLib, error) {
	turboOnce.Do(func() { turbo, turboErr = openTurbo() })
	return turbo, turboErr
}

func openTurbo() (*turboLib, error) {
	names := turboLibNames
	env := os.Getenv("TURBOJPEG_LIB")
	switch env {
	case "none":
		// As OPENBLAS_LIB=none: the Go decoders on a machine that has
		// the library, to compare the two or to step round a broken one.
		return nil, errors.New("TURBOJPEG_LIB=none")
	case "":
	default:
		names = append([]string{env}, names...)
	}
	// Each candidate is opened and bound in turn: one that loads but is
	// not libturbojpeg 2 (TURBOJPEG_LIB naming another library, an old
	// 1.x) gives way to the next, as one that does not load does.
	var errs []string
	for i, name := range names {
		lib, err := tryTurbo(name)
		if err == nil {
			if i > 0 && env != "" {
				// The one named was passed over: said where the decoder
				// is named (ingest's "decoder" line, the report).
				lib.path += "; TURBOJPEG_LIB=" + env + " could not be used: " + errs[0]
			}
			return lib, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

// tryTurbo opens name and binds libturbojpeg's entry points from it.
func tryTurbo(name string) (lib *turboLib, err error) {
	h, err := dl.Open(name, false)
	if err != nil {
		msg := err.Error()
		if !strings.Contains(msg, name) { // the loader's text names it, when there is one
			msg = strings.TrimSuffix(name+": "+msg, ": ")
		}
		return nil, errors.New(msg)
	}
	lib = &turboLib{path: name}
	defer func() {
		// purego panics on malformed registrations; a broken library
		// must not take the process down with it.
		if r := recover(); r != nil {
			lib, err = nil, fmt.Errorf("binding libturbojpeg from %s: %v", name, r)
		}
		if err != nil {
			dl.Close(h)
		}
	}()
	bind := func(fptr any, sym string) error {
		addr, err := dl.Sym(h, sym)
		if err != nil {
			return fmt.Errorf("%s: symbol %s: %w", name, sym, err)
		}
		purego.RegisterFunc(fptr, addr)
		return nil
	}
	for _, b := range []struct {
		fptr any
		name string
	}{
		{&lib.initDecompress, "tjInitDecompress"},
		{&lib.decompressHeader3, "tjDecompressHeader3"},
		{&lib.getScalingFactors, "tjGetScalingFactors"},
		{&lib.decompress2, "tjDecompress2"},
		{&lib.getErrorStr2, "tjGetErrorStr2"},
		{&lib.getErrorCode, "tjGetErrorCode"}, // 2.0+: without it warnings and errors are indistinguishable
		{&lib.destroy, "tjDestroy"},
	} {
		if err := bind(b.fptr, b.name); err != nil {
			return nil, err
		}
	}
	if p, ok := dlPath(); ok {
		lib.path = p
	}
	var n int32
	p := lib.getScalingFactors(&n)
	if p == nil || n <= 0 || n > 64 {
		return nil, fmt.Errorf("%s: tjGetScalingFactors returned %d factors", lib.path, n)
	}
	for _, f := range unsafe.Slice((*scalingFactor)(p), int(n)) {
		if f.num > 0 && f.num < f.denom {
			lib.downscales = append(lib.downscales, f)
		}
	}
	// Largest factor first, so the search for the smallest acceptable one
	// can stop at the first failure.
	slices.SortFunc(lib.downscales, func(a, b scalingFactor) int {
		return cmp.Compare(int64(b.num)*int64(a.denom), int64(a.num)*int64(b.denom))
	})
	return lib, nil
}

// scaled is TJSCALED: libjpeg rounds scaled dimensions up.
func scaled(dim int, f scalingFactor) int {
	return (dim*int(f.num) + int(f.denom) - 1) / int(f.denom)
}

// dlPath finds the file the dynamic loader actually mapped, for Backend's
// report, in /proc/self/maps. It is best effort: elsewhere the soname that
// dlopen accepted is reported.
func dlPath() (string, bool) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return "", false
	}
	for line := range strings.Lines(string(maps)) {
		i := strings.Index(line, "/")
		if i >= 0 && strings.Contains(line[i:], "libturbojpeg") {
			return strings.TrimSpace(line[i:]), true
		}
	}
	return "", false
}

// Backend reports the decoder NewDecoder will use and why, e.g.
// "libjpeg-turbo (/usr/lib/x86_64-linux-gnu/libturbojpeg.so.0)" or
// "stdlib image/jpeg (libturbojpeg not loaded: <reason>)".
// BackendKind is Backend without the path: "libjpeg-turbo" or "stdlib".
// The two decode the same JPEG to slightly different pixels, and skip
// different files, so ingest's resume keys shards by it.
func BackendKind() string {
	if _, err := loadTurbo(); err != nil {
		return "stdlib"
	}
	return "libjpeg-turbo"
}

// PixelsVersion numbers Preprocess's output rules: it changes whenever the
// same file and size can give other pixels (2: DCT-scaled JPEGs take their
// resize and crop from the file's own size, and lossy WebP is read as video
// range; 3: a GIF's transparent pixels keep their palette colour; 4: a
// JPEG sampling TurboJPEG cannot name goes to image/jpeg, kept where it
// decodes there, not skipped; 5: such a JPEG is decoded by libjpeg-turbo
// where it is installed, as every other JPEG there), so ingest redoes
// shards made under other rules rather than mix them.
const PixelsVersion = 5

// DamageRules names the rules by which the decoder NewDecoder gives calls
// a kept file damaged (Decoder.Warning), where they differ from the first
// ones: "" for libjpeg-turbo, whose own warnings decide; for image/jpeg,
// which says nothing itself, the version of jpegScanWarning's walk. A
// resumed ingest redoes shards made under other rules, as their reports'
// damaged lists would differ although their pixels do not.
func DamageRules() string {
	if _, err := loadTurbo(); err != nil {
		return "scan-walk-2"
	}
	return ""
}

func Backend() string {
	lib, err := loadTurbo()
	if err != nil {
		return "stdlib image/jpeg (libturbojpeg not loaded: " + err.Error() + ")"
	}
	return "libjpeg-turbo (" + lib.path + ")"
}
