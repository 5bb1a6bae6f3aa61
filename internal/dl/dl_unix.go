//go:build darwin || freebsd || linux || netbsd

// Package dl owns opening native libraries at run time (libjpeg-turbo,
// OpenBLAS, CUDA's), so that the one rule they share is kept in one place:
// dlopen and the dlerror read that gives its reason run on one OS thread.
package dl

import (
	"runtime"

	"github.com/ebitengine/purego"
)

// Open dlopens path, resolving every symbol now. global exports its
// symbols to libraries opened later (cuBLASLt for cuBLAS, cuDNN's
// sub-libraries); otherwise they stay its own.
//
// purego reads dlerror in a call of its own after dlopen's, and glibc keeps
// that text per thread: a goroutine moved between the two got an empty
// reason, so the calls are pinned to one thread.
func Open(path string, global bool) (uintptr, error) {
	mode := purego.RTLD_NOW | purego.RTLD_LOCAL
	if global {
		mode = purego.RTLD_NOW | purego.RTLD_GLOBAL
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return purego.Dlopen(path, mode)
}

// Sym looks name up in the library h.
func Sym(h uintptr, name string) (uintptr, error) { return purego.Dlsym(h, name) }

// Close drops the reference Open took.
func Close(h uintptr) error { return purego.Dlclose(h) }
