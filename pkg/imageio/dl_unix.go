//go:build darwin || freebsd || linux || netbsd

package imageio

import (
	"runtime"

	"github.com/ebitengine/purego"
)

// dlopen opens a library on one OS thread: purego reads dlerror in a call
// of its own after dlopen's, and glibc keeps that text per thread, so a
// goroutine moved between the two got an empty reason.
func dlopen(name string) (uintptr, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
}

func dlsym(handle uintptr, name string) (uintptr, error) { return purego.Dlsym(handle, name) }
