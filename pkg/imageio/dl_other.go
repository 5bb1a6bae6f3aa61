//go:build !(darwin || freebsd || linux || netbsd)

package imageio

import (
	"errors"
	"runtime"
)

// Elsewhere libturbojpeg is not looked for; the Go decoders are used.
func dlopen(string) (uintptr, error) {
	return 0, errors.New("loading libturbojpeg is not implemented on " + runtime.GOOS)
}

func dlsym(uintptr, string) (uintptr, error) { return 0, errors.New("unreachable") }
