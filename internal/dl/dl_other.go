//go:build !(darwin || freebsd || linux || netbsd)

// Package dl owns opening native libraries at run time. Here it has no
// loader, so every caller takes its pure-Go path.
package dl

import (
	"errors"
	"runtime"
)

var errNoLoader = errors.New("loading native libraries is not implemented on " + runtime.GOOS)

// Open always fails here.
func Open(string, bool) (uintptr, error) { return 0, errNoLoader }

// Sym always fails here.
func Sym(uintptr, string) (uintptr, error) { return 0, errNoLoader }

// Close does nothing here.
func Close(uintptr) error { return nil }
