//go:build linux

package pipeline

import (
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"unsafe"
)

// residentPages counts the pages of b that are mapped in memory now.
func residentPages(t *testing.T, b []byte) (in, total int) {
	t.Helper()
	ps := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0])) &^ (ps - 1)
	end := uintptr(unsafe.Pointer(&b[len(b)-1])) + 1
	vec := make([]byte, (end-start+ps-1)/ps)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, start, end-start, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Skipf("mincore: %v", e)
	}
	runtime.KeepAlive(b)
	for _, v := range vec {
		in += int(v & 1)
	}
	return in, len(vec)
}

// A new slot's pixel memory is mapped before the decoders write to it:
// first-touch page faults would land in the first batches' crop copies.
func TestNewSlotPrefaults(t *testing.T) {
	runtime.GC()
	debug.FreeOSMemory() // freed heap goes back to the OS, so the slot is fresh memory
	s := NewSlot(128, 1, 224)
	if in, total := residentPages(t, s.Pixels); in != total {
		t.Errorf("%d of the slot's %d pages are mapped, want all", in, total)
	}
}
