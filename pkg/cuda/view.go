package cuda

import (
	"fmt"
	"unsafe"
)

// Number is an element type whose bytes can be copied to the GPU as they
// are laid out in memory.
type Number interface {
	~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32 | ~uint64 | ~int64 | ~float32 | ~float64
}

// Bytes views s as its bytes, without copying, for the Memcpy functions.
func Bytes[T Number](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// Float32s views b as float32s, without copying: for pinned buffers from
// HostAlloc, which are page-aligned. It panics when b's length or address
// is not a multiple of 4.
func Float32s(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	if len(b)%4 != 0 || uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		panic(fmt.Sprintf("cuda: Float32s: %d bytes at %p are not a whole, aligned number of float32s", len(b), &b[0]))
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}
